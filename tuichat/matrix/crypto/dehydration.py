"""Dehydrated devices (MSC3814): the formats, and decrypting what one received.

A dehydrated device is an Olm device whose private keys are stored on the
server, encrypted with a key kept in secret storage (`org.matrix.msc3814`,
32 random bytes, base64). Others send it room keys like to any device; a
new login that can open secret storage downloads its private keys, reads the
to-device messages it received, and keeps the room keys.

The private keys travel in `device_data`, in one of two formats:

- `org.matrix.msc3814.v2` (what Element writes today): `device_pickle` is
  ChaCha20-Poly1305 under the key itself, with a random 12-byte `nonce`;
  the plaintext is version 1 (u32, big-endian), the Curve25519 private key,
  the Ed25519 seed, the number of one-time keys (u32) and their private
  keys, then a flag byte and, if set, the fallback key's private key.
- `org.matrix.msc3814.v1.olm` (an older draft, still read): a libolm account
  pickle (version 4), encrypted as libolm pickles are (AES-256-CBC and a
  truncated HMAC-SHA-256, keys from HKDF "Pickle") under
  HKDF-SHA-256(salt = the device id, the key, "dehydrated-device-pickle-key").

tuichat writes v2 and reads both. vodozemac's Python binding has no call for
either format, so the bytes are laid out here, and the keys become a
vodozemac `Account` through the one import it offers, a libolm pickle
(encrypted under a throwaway key). The device id is the unpadded base64 of
the Curve25519 public key, as the proposal asks. The room keys a rehydrated
device finds are kept like any others (`import_received_keys`), marked as
having come through it. Nothing here touches the network;
`service/dehydrated_device.py` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import vodozemac
from Crypto.Cipher import AES, ChaCha20_Poly1305
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.PublicKey import ECC
from Crypto.Util.Padding import pad
from nio.crypto.sessions import InboundGroupSession

from tuichat.matrix.crypto.cross_signing import SigningKey, signable
from tuichat.matrix.crypto.nio_extensions import TuichatOlm

log = logging.getLogger(__name__)

SECRET_NAME = "org.matrix.msc3814"
ALGORITHM_V1 = "org.matrix.msc3814.v1.olm"
ALGORITHM_V2 = "org.matrix.msc3814.v2"
UNSTABLE_PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1"
DISPLAY_NAME = "Dehydrated device"
ONE_TIME_KEYS = 50
OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"

_V2_PICKLE_VERSION = 1
_LIBOLM_ACCOUNT_VERSION = 4
_NONCE = 12


class DehydrationError(ValueError):
    """The message says what is wrong, for the user (no secret in it)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise DehydrationError("the dehydrated device's data is not base64") from None


def new_key() -> bytes:
    return secrets.token_bytes(32)


def key_to_secret(key: bytes) -> str:
    """The key as secret storage holds it (padded base64, as Element)."""
    return base64.b64encode(key).decode()


def key_from_secret(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.strip() + "=" * (-len(secret.strip()) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DehydrationError("the dehydration key in secret storage is not base64") from None
    if len(key) != 32:
        raise DehydrationError("the dehydration key in secret storage is not 32 bytes")
    return key


@dataclass(frozen=True)
class DeviceSecrets:
    """The private keys of a dehydrated device (never printed)."""

    curve25519: bytes
    ed25519_seed: bytes
    one_time_keys: tuple[bytes, ...] = field(default=())
    fallback_key: bytes | None = None

    def __repr__(self) -> str:
        return f"DeviceSecrets(<{len(self.one_time_keys)} one-time keys>)"

    @classmethod
    def generate(cls, one_time_keys: int = ONE_TIME_KEYS) -> DeviceSecrets:
        return cls(
            curve25519=secrets.token_bytes(32),
            ed25519_seed=secrets.token_bytes(32),
            one_time_keys=tuple(secrets.token_bytes(32) for _ in range(one_time_keys)),
            fallback_key=secrets.token_bytes(32),
        )

    def expanded_ed25519(self) -> bytes:
        """The seed expanded as libolm keeps it (SHA-512, the scalar clamped)."""
        digest = bytearray(hashlib.sha512(self.ed25519_seed).digest())
        digest[0] &= 248
        digest[31] &= 63
        digest[31] |= 64
        return bytes(digest)

    def ed25519_public(self) -> bytes:
        key = ECC.construct(curve="Ed25519", seed=self.ed25519_seed)
        return bytes(key.public_key().export_key(format="raw"))


def _curve_public(private: bytes) -> bytes:
    return vodozemac.Curve25519SecretKey.from_bytes(private).public_key().to_bytes()


# -- v2: ChaCha20-Poly1305 ----------------------------------------------------------------


def encode_v2(device: DeviceSecrets, key: bytes) -> dict[str, Any]:
    plain = bytearray(struct.pack(">I", _V2_PICKLE_VERSION))
    plain += device.curve25519 + device.ed25519_seed
    plain += struct.pack(">I", len(device.one_time_keys))
    for one_time in device.one_time_keys:
        plain += one_time
    if device.fallback_key is not None:
        plain += b"\x01" + device.fallback_key
    else:
        plain += b"\x00"
    nonce = secrets.token_bytes(_NONCE)
    cipher = ChaCha20_Poly1305.new(key=key, nonce=nonce)
    ciphertext, tag = cipher.encrypt_and_digest(bytes(plain))
    pickle = _b64(ciphertext + tag)
    return {"algorithm": ALGORITHM_V2, "device_pickle": pickle, "nonce": _b64(nonce)}


def decode_v2(device_data: dict[str, Any], key: bytes) -> DeviceSecrets:
    pickle, nonce = device_data.get("device_pickle"), device_data.get("nonce")
    if not isinstance(pickle, str) or not isinstance(nonce, str):
        raise DehydrationError("the dehydrated device's data lacks its pickle or nonce")
    raw, iv = _unb64(pickle), _unb64(nonce)
    if len(iv) != _NONCE or len(raw) < 16:
        raise DehydrationError("the dehydrated device's data is malformed")
    try:
        plain = ChaCha20_Poly1305.new(key=key, nonce=iv).decrypt_and_verify(raw[:-16], raw[-16:])
    except ValueError:
        raise DehydrationError(
            "the dehydration key does not open the dehydrated device (another key made it)"
        ) from None
    try:
        (version,) = struct.unpack_from(">I", plain, 0)
        if version != _V2_PICKLE_VERSION:
            raise DehydrationError(f"unknown dehydrated device pickle version {version}")
        curve, seed = plain[4:36], plain[36:68]
        (count,) = struct.unpack_from(">I", plain, 68)
        at = 72
        if count > 10_000 or len(plain) < at + 32 * count + 1:
            raise DehydrationError("the dehydrated device's pickle is malformed")
        one_time = tuple(plain[at + 32 * i : at + 32 * (i + 1)] for i in range(count))
        at += 32 * count
        fallback = plain[at + 1 : at + 33] if plain[at] else None
        if (fallback is not None and len(fallback) != 32) or len(curve) != 32 or len(seed) != 32:
            raise DehydrationError("the dehydrated device's pickle is malformed")
    except struct.error:
        raise DehydrationError("the dehydrated device's pickle is malformed") from None
    return DeviceSecrets(curve, seed, one_time, fallback)


# -- v1 and the way into vodozemac: libolm account pickles -------------------------------


def legacy_pickle_key(key: bytes, device_id: str) -> bytes:
    """v1's per-device pickle key."""
    derived = HKDF(key, 32, device_id.encode(), SHA256, context=b"dehydrated-device-pickle-key")
    assert isinstance(derived, bytes)
    return derived


def libolm_pickle(device: DeviceSecrets, pickle_key: bytes, *, published: bool) -> str:
    """The device as a libolm account pickle (version 4), encrypted as
    libolm does, under `pickle_key`."""

    def one_time_key(key_id: int, private: bytes) -> bytes:
        return (
            struct.pack(">I", key_id)
            + (b"\x01" if published else b"\x00")
            + _curve_public(private)
            + private
        )

    plain = bytearray(struct.pack(">I", _LIBOLM_ACCOUNT_VERSION))
    plain += device.ed25519_public() + device.expanded_ed25519()
    plain += _curve_public(device.curve25519) + device.curve25519
    plain += struct.pack(">I", len(device.one_time_keys))
    for index, private in enumerate(device.one_time_keys, start=1):
        plain += one_time_key(index, private)
    next_id = len(device.one_time_keys) + 1
    if device.fallback_key is not None:
        plain += b"\x01" + one_time_key(next_id, device.fallback_key)
        next_id += 1
    else:
        plain += b"\x00"
    plain += struct.pack(">I", next_id)
    expanded = HKDF(pickle_key, 80, b"", SHA256, context=b"Pickle")
    assert isinstance(expanded, bytes)
    aes_key, mac_key, iv = expanded[:32], expanded[32:64], expanded[64:]
    ciphertext = AES.new(aes_key, AES.MODE_CBC, iv=iv).encrypt(pad(bytes(plain), 16))
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()[:8]
    return _b64(ciphertext + mac)


def account_from_secrets(device: DeviceSecrets, *, published: bool = True) -> vodozemac.Account:
    """A vodozemac account with these keys (`published=False`: its one-time
    and fallback keys are listed as still to upload)."""
    throwaway = secrets.token_bytes(32)
    try:
        return vodozemac.Account.from_libolm_pickle(
            libolm_pickle(device, throwaway, published=published), throwaway
        )
    except vodozemac.LibolmPickleException as error:
        raise DehydrationError(f"the dehydrated device's keys are unusable: {error}") from None


def account_from_device_data(
    device_data: dict[str, Any], key: bytes, device_id: str
) -> vodozemac.Account:
    """Rehydrate: the account inside `device_data` (v1 or v2)."""
    algorithm = device_data.get("algorithm")
    if algorithm == ALGORITHM_V2:
        return account_from_secrets(decode_v2(device_data, key))
    if algorithm == ALGORITHM_V1:
        pickle = device_data.get("device_pickle")
        if not isinstance(pickle, str):
            raise DehydrationError("the dehydrated device's data lacks its pickle")
        try:
            return vodozemac.Account.from_libolm_pickle(pickle, legacy_pickle_key(key, device_id))
        except vodozemac.LibolmPickleException:
            raise DehydrationError(
                "the dehydration key does not open the dehydrated device (another key made it)"
            ) from None
    raise DehydrationError(f"unknown dehydrated device format {str(algorithm)[:80]!r}")


# -- creating one ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDevice:
    device_id: str
    body: dict[str, Any]  # PUT /dehydrated_device


def new_device(
    user_id: str, key: bytes, self_signing: SigningKey | None, display_name: str = DISPLAY_NAME
) -> NewDevice:
    """A fresh dehydrated device, its keys signed by itself and (if given)
    by our self-signing key, ready to upload."""
    device = DeviceSecrets.generate()
    account = account_from_secrets(device, published=False)
    device_id = account.curve25519_key.to_base64()

    def self_signed(obj: dict[str, Any]) -> dict[str, Any]:
        signature = account.sign(signable(obj)).to_base64()
        return {**obj, "signatures": {user_id: {f"ed25519:{device_id}": signature}}}

    device_keys = self_signed(
        {
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": [OLM_ALGORITHM, MEGOLM_ALGORITHM],
            "keys": {
                f"curve25519:{device_id}": device_id,
                f"ed25519:{device_id}": account.ed25519_key.to_base64(),
            },
            "dehydrated": True,
        }
    )
    if self_signing is not None:
        cross_signed = self_signing.sign(device_keys, user_id)
        device_keys["signatures"][user_id].update(cross_signed["signatures"][user_id])
    one_time = {
        f"signed_curve25519:{key_id}": self_signed({"key": public.to_base64()})
        for key_id, public in account.one_time_keys.items()
    }
    fallback = {
        f"signed_curve25519:{key_id}": self_signed({"key": public.to_base64(), "fallback": True})
        for key_id, public in account.fallback_key.items()
    }
    body = {
        "device_id": device_id,
        "device_data": encode_v2(device, key),
        "initial_device_display_name": display_name,
        "device_keys": device_keys,
        "one_time_keys": one_time,
        "fallback_keys": fallback,
    }
    return NewDevice(device_id, body)


# -- what a rehydrated device received ----------------------------------------------------


@dataclass(frozen=True)
class ReceivedRoomKey:
    room_id: str
    session_id: str
    session_key: str
    sender: str
    sender_key: str  # the sending device's Curve25519 key (Olm authenticated it)
    sender_ed25519: str  # the sending device's claimed Ed25519 key

    def __repr__(self) -> str:
        return f"ReceivedRoomKey({self.room_id}, {self.session_id})"


class RehydratedDevice:
    """A dehydrated device's account, brought back to read its to-device
    messages: Olm sessions are made as the messages need them."""

    def __init__(self, user_id: str, device_id: str, account: vodozemac.Account) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.account = account
        self.curve25519 = account.curve25519_key.to_base64()
        self.ed25519 = account.ed25519_key.to_base64()
        self._sessions: dict[str, list[vodozemac.Session]] = {}
        self.undecryptable = 0

    def room_keys(self, events: list[Any]) -> list[ReceivedRoomKey]:
        """The room keys among `events` (to-device events as /sync gives
        them). What does not decrypt or is not for us is counted, skipped."""
        found = []
        for event in events:
            if not isinstance(event, dict) or event.get("type") != "m.room.encrypted":
                continue
            payload = self._decrypt(event)
            if payload is None:
                self.undecryptable += 1
                continue
            key = self._room_key(event, payload)
            if key is not None:
                found.append(key)
        return found

    def _decrypt(self, event: dict[str, Any]) -> dict[str, Any] | None:
        content = event.get("content")
        if not isinstance(content, dict) or content.get("algorithm") != OLM_ALGORITHM:
            return None
        sender_key = content.get("sender_key")
        ours = (content.get("ciphertext") or {}).get(self.curve25519)
        if not isinstance(sender_key, str) or not isinstance(ours, dict):
            return None
        body, kind = ours.get("body"), ours.get("type")
        if not isinstance(body, str):
            return None
        sessions = self._sessions.setdefault(sender_key, [])
        try:
            if kind == 0:
                plain = self._decrypt_pre_key(sender_key, sessions, body)
            elif kind == 1:
                plain = self._decrypt_normal(sessions, body)
            else:
                return None
        except (
            vodozemac.DecodeException,
            vodozemac.KeyException,
            vodozemac.OlmDecryptionException,
            vodozemac.SessionCreationException,
            DehydrationError,
        ):
            return None
        if plain is None:
            return None
        try:
            payload = json.loads(plain)
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _decrypt_pre_key(
        self, sender_key: str, sessions: list[vodozemac.Session], body: str
    ) -> bytes:
        message = vodozemac.PreKeyMessage.from_base64(body)
        for session in sessions:
            if session.session_matches(message):
                return session.decrypt(message.to_any())
        session, plain = self.account.create_inbound_session(
            vodozemac.Curve25519PublicKey.from_base64(sender_key), message
        )
        sessions.append(session)
        return plain

    def _decrypt_normal(self, sessions: list[vodozemac.Session], body: str) -> bytes | None:
        message = vodozemac.AnyOlmMessage.normal(_unb64(body))
        for session in sessions:
            try:
                return session.decrypt(message)
            except vodozemac.OlmDecryptionException:
                continue
        return None

    def _room_key(self, event: dict[str, Any], payload: dict[str, Any]) -> ReceivedRoomKey | None:
        """An m.room_key meant for this device, from the device Olm says sent it."""
        sender = event.get("sender")
        recipient_keys = payload.get("recipient_keys") or {}
        claimed = (payload.get("keys") or {}).get("ed25519")
        content = payload.get("content") or {}
        if (
            payload.get("type") != "m.room_key"
            or payload.get("sender") != sender
            or payload.get("recipient") != self.user_id
            or not isinstance(recipient_keys, dict)
            or recipient_keys.get("ed25519") != self.ed25519
            or not isinstance(claimed, str)
            or not isinstance(content, dict)
            or content.get("algorithm") != MEGOLM_ALGORITHM
        ):
            return None
        room_id, session_id = content.get("room_id"), content.get("session_id")
        session_key = content.get("session_key")
        if not all(isinstance(v, str) for v in (sender, room_id, session_id, session_key)):
            return None
        return ReceivedRoomKey(
            room_id=str(room_id),
            session_id=str(session_id),
            session_key=str(session_key),
            sender=str(sender),
            sender_key=str(event["content"]["sender_key"]),
            sender_ed25519=claimed,
        )


KEY_SOURCE = "dehydrated"  # how the timeline names where such a key came from


def import_received_keys(olm: TuichatOlm, keys: list[ReceivedRoomKey]) -> int:
    """Keep the room keys (one store transaction); returns how many were new
    or better than the copy held. The caller retries waiting events."""
    imported = 0
    with olm.store_transaction():
        for key in keys:
            try:
                session = InboundGroupSession(
                    key.session_key, key.sender_ed25519, key.sender_key, key.room_id
                )
            except Exception:  # noqa: BLE001 - a malformed key from a peer
                log.warning("a room key the dehydrated device received is malformed")
                continue
            if session.id != key.session_id:
                log.warning("a room key the dehydrated device received names another session")
                continue
            if olm.import_inbound_session(session, KEY_SOURCE):
                imported += 1
    return imported
