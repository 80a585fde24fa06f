"""Room key export files: the passphrase format Element and nio use.

Client-Server API, "Key export format": the JSON list of sessions is
encrypted with AES-256-CTR and authenticated with HMAC-SHA-256, both keys
derived from the passphrase with PBKDF2-HMAC-SHA-512, and wrapped in
`-----BEGIN MEGOLM SESSION DATA-----` armour.

Written here rather than taken from nio because nio derives the keys with a
pure-Python PRF (one Python call per PBKDF2 round): with the 500,000 rounds
Element uses, that costs tens of seconds where `hashlib.pbkdf2_hmac` takes a
fraction of one. Decryption checks the MAC before anything is parsed, so a
wrong passphrase or a damaged file changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from Crypto.Util import Counter

HEADER = "-----BEGIN MEGOLM SESSION DATA-----"
FOOTER = "-----END MEGOLM SESSION DATA-----"
EXPORT_ROUNDS = 500_000
MAX_ROUNDS = 10_000_000  # refuse files that would make us spin for minutes
VERSION = 1


class KeyFileError(ValueError):
    """The file is damaged or the passphrase is wrong (the message says which)."""


def _derive(passphrase: str, salt: bytes, rounds: int) -> tuple[bytes, bytes]:
    key = hashlib.pbkdf2_hmac("sha512", passphrase.encode("utf-8"), salt, rounds, 64)
    return key[:32], key[32:]


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    counter = Counter.new(128, initial_value=int.from_bytes(iv, "big"))
    return AES.new(key, AES.MODE_CTR, counter=counter).encrypt(data)


def encrypt_export(plaintext: bytes, passphrase: str, rounds: int = EXPORT_ROUNDS) -> str:
    salt = secrets.token_bytes(16)
    iv = bytearray(secrets.token_bytes(16))
    iv[8] &= 0x7F  # bit 63 cleared, as the spec asks, so the counter cannot wrap
    aes_key, mac_key = _derive(passphrase, salt, rounds)
    ciphertext = _aes_ctr(aes_key, bytes(iv), plaintext)
    body = bytes([VERSION]) + salt + bytes(iv) + struct.pack(">I", rounds) + ciphertext
    mac = hmac.new(mac_key, body, hashlib.sha256).digest()
    encoded = base64.b64encode(body + mac).decode()
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    return "\n".join([HEADER, *lines, FOOTER]) + "\n"


def decrypt_export(armoured: str, passphrase: str) -> bytes:
    text = armoured.strip()
    if not text.startswith(HEADER) or not text.endswith(FOOTER):
        raise KeyFileError("this is not a room key export file (missing its header)")
    payload = "".join(text[len(HEADER) : -len(FOOTER)].split())
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except ValueError:
        raise KeyFileError("the key file is damaged (invalid base64)") from None
    if len(data) < 1 + 16 + 16 + 4 + 32:
        raise KeyFileError("the key file is damaged (too short)")
    if data[0] != VERSION:
        raise KeyFileError(f"unsupported key file version {data[0]}")
    salt, iv = data[1:17], data[17:33]
    (rounds,) = struct.unpack(">I", data[33:37])
    if not 1 <= rounds <= MAX_ROUNDS:
        raise KeyFileError(f"the key file asks for {rounds} PBKDF2 rounds; refusing")
    body, mac = data[:-32], data[-32:]
    aes_key, mac_key = _derive(passphrase, salt, rounds)
    if not hmac.compare_digest(hmac.new(mac_key, body, hashlib.sha256).digest(), mac):
        raise KeyFileError("wrong passphrase, or the file is damaged")
    return _aes_ctr(aes_key, iv, body[37:])


@dataclass(frozen=True)
class ExportedSession:
    room_id: str
    sender_key: str
    session_id: str
    session_key: str
    sender_claimed_ed25519: str
    forwarding_chain: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": self.room_id,
            "sender_key": self.sender_key,
            "session_id": self.session_id,
            "session_key": self.session_key,
            "sender_claimed_keys": {"ed25519": self.sender_claimed_ed25519},
            "forwarding_curve25519_key_chain": list(self.forwarding_chain),
        }


def sessions_to_file(
    sessions: Iterable[ExportedSession], passphrase: str, rounds: int = EXPORT_ROUNDS
) -> str:
    plaintext = json.dumps([s.as_json() for s in sessions]).encode()
    return encrypt_export(plaintext, passphrase, rounds)


def sessions_from_file(
    armoured: str,
    passphrase: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ExportedSession], int]:
    """Decrypt and parse an export: (valid sessions, number of invalid entries)."""
    plaintext = decrypt_export(armoured, passphrase)
    try:
        entries = json.loads(plaintext)
    except ValueError:
        raise KeyFileError("the key file is damaged (its content is not JSON)") from None
    if not isinstance(entries, list):
        raise KeyFileError("the key file is damaged (not a list of sessions)")
    sessions: list[ExportedSession] = []
    invalid = 0
    for position, entry in enumerate(entries, 1):
        try:
            if entry["algorithm"] != "m.megolm.v1.aes-sha2":
                raise ValueError("algorithm")
            claimed = entry.get("sender_claimed_keys") or {}
            chain = entry.get("forwarding_curve25519_key_chain") or []
            fields = (
                entry["room_id"],
                entry["sender_key"],
                entry["session_id"],
                entry["session_key"],
                claimed["ed25519"],
            )
            if not all(isinstance(f, str) and f for f in fields) or not isinstance(chain, list):
                raise ValueError("types")
            sessions.append(ExportedSession(*fields, tuple(str(c) for c in chain)))
        except (KeyError, TypeError, ValueError):
            invalid += 1
        if progress is not None and position % 100 == 0:
            progress(position, len(entries))
    if progress is not None:
        progress(len(entries), len(entries))
    return sessions, invalid
