"""QR code verification: the spec's binary payload and the side that shows it.

tuichat has no camera, so it only shows codes (`m.qr_code.show.v1`) and
answers the other side's scan (`m.reciprocate.v1`); it never offers
`m.qr_code.scan.v1`. The payload is the spec's:

    "MATRIX" | version 0x02 | mode | transaction id length (2 bytes, big
    endian) | transaction id | first key (32) | second key (32) | secret

with the modes
- 0x00, verifying another user: our master key, then theirs as we know it;
- 0x01, our own other device while we trust our master key: our master
  key, then that device's ed25519 key as we know it;
- 0x02, our own other device while we do not trust our master key: this
  device's ed25519 key, then the master key as the server gave it.

The scanner checks the keys against its own and sends a `start` with the
shared secret; the person here confirms that their device shows the code
was scanned; then each side trusts what the code said of the other
(`QrShown.outcome`).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from enum import IntEnum

SAS_METHOD = "m.sas.v1"
QR_SHOW = "m.qr_code.show.v1"
QR_SCAN = "m.qr_code.scan.v1"
RECIPROCATE = "m.reciprocate.v1"
# What tuichat offers in request and ready: emoji, and showing a code.
OUR_METHODS = (SAS_METHOD, QR_SHOW, RECIPROCATE)

PREFIX = b"MATRIX"
VERSION = 0x02
SECRET_BYTES = 16
MIN_SECRET_BYTES = 8
KEY_BYTES = 32


class QrMode(IntEnum):
    OTHER_USER = 0x00
    OWN_DEVICE_TRUSTED = 0x01
    OWN_DEVICE_UNTRUSTED = 0x02


def _key_bytes(key: str) -> bytes:
    raw = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
    if len(raw) != KEY_BYTES:
        raise ValueError("an ed25519 key is 32 bytes")
    return raw


def _key_text(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class QrPayload:
    """The content of a verification QR code (keys as unpadded base64)."""

    mode: QrMode
    transaction_id: str
    first_key: str
    second_key: str
    secret: bytes

    def encode(self) -> bytes:
        txn = self.transaction_id.encode()
        if len(txn) > 0xFFFF:
            raise ValueError("transaction id too long")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError("the shared secret is too short")
        return b"".join(
            (
                PREFIX,
                bytes((VERSION, int(self.mode))),
                len(txn).to_bytes(2, "big"),
                txn,
                _key_bytes(self.first_key),
                _key_bytes(self.second_key),
                self.secret,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> QrPayload:
        """Read a payload; ValueError if it is not one."""
        if not data.startswith(PREFIX) or len(data) < len(PREFIX) + 4:
            raise ValueError("not a Matrix verification code")
        at = len(PREFIX)
        if data[at] != VERSION:
            raise ValueError(f"unknown QR code version {data[at]}")
        mode = QrMode(data[at + 1])
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        at += 4
        txn = data[at : at + length]
        at += length
        first, second = data[at : at + KEY_BYTES], data[at + KEY_BYTES : at + 2 * KEY_BYTES]
        secret = data[at + 2 * KEY_BYTES :]
        if len(txn) != length or len(second) != KEY_BYTES or len(secret) < MIN_SECRET_BYTES:
            raise ValueError("truncated verification code")
        return cls(mode, txn.decode(), _key_text(first), _key_text(second), secret)

    @property
    def secret_text(self) -> str:
        """The secret as the scanner's `start` carries it (unpadded base64)."""
        return _key_text(self.secret)

    def secret_matches(self, sent: object) -> bool:
        if not isinstance(sent, str):
            return False
        try:
            raw = base64.b64decode(sent + "=" * (-len(sent) % 4), validate=True)
        except ValueError:
            return False
        return secrets.compare_digest(raw, self.secret)


@dataclass(frozen=True)
class QrKeys:
    """What this device knows when it is time to show a code."""

    own_user: str
    own_ed25519: str
    other_user: str
    # Our master key if this device trusts it (holds it or its SSK).
    trusted_own_master: str | None
    # The other user's master key as the server gave it (ours, for our own user).
    other_master: str | None
    # The other device's ed25519 key, if we know the device.
    other_device_key: str | None


def payload_for(transaction_id: str, keys: QrKeys) -> QrPayload | None:
    """The code to show in this verification, or None when this device
    cannot vouch for what a code would say (then it is emoji only)."""
    secret = secrets.token_bytes(SECRET_BYTES)
    if keys.other_user != keys.own_user:
        if not keys.trusted_own_master or not keys.other_master:
            return None
        return QrPayload(
            QrMode.OTHER_USER, transaction_id, keys.trusted_own_master, keys.other_master, secret
        )
    if keys.trusted_own_master:
        if not keys.other_device_key:
            return None
        return QrPayload(
            QrMode.OWN_DEVICE_TRUSTED,
            transaction_id,
            keys.trusted_own_master,
            keys.other_device_key,
            secret,
        )
    if not keys.other_master:
        return None
    return QrPayload(
        QrMode.OWN_DEVICE_UNTRUSTED, transaction_id, keys.own_ed25519, keys.other_master, secret
    )


@dataclass(frozen=True)
class QrOutcome:
    """What a confirmed scan proves: their device's key, or a master key."""

    device_key: str | None
    master_key: str | None


def outcome(payload: QrPayload, now: QrKeys) -> QrOutcome | None:
    """What the confirmed scan of `payload` lets us trust, checked against
    the keys as they are now (None if they changed since the code was made:
    then the code vouched for keys that are no longer theirs)."""
    expected = payload_for(payload.transaction_id, now)
    if expected is None or expected.mode is not payload.mode:
        return None
    if (expected.first_key, expected.second_key) != (payload.first_key, payload.second_key):
        return None
    if payload.mode is QrMode.OTHER_USER:
        return QrOutcome(device_key=None, master_key=payload.second_key)
    if payload.mode is QrMode.OWN_DEVICE_TRUSTED:
        return QrOutcome(device_key=payload.second_key, master_key=None)
    return QrOutcome(device_key=None, master_key=payload.second_key)


def they_can_scan(methods: object) -> bool:
    return isinstance(methods, list) and QR_SCAN in methods and RECIPROCATE in methods
