"""Reading values sealed before `sealing.py`, so they can be sealed again.

Nothing is written in these formats. Each store that had one calls the
reader here when it meets an old value and seals it again in the current
format; a value that does not open stays unreadable, as it was.

All of them are AES-256-GCM as `nonce (12) | tag (16) | ciphertext`, with
no version mark, under two key derivations from the profile's pickle key:

- HKDF-SHA-256 (no salt) with info `tuichat outbox v1` (raw bytes in the
  outbox, associated data `room\\ntxn\\ntype`) or `tuichat tokens v1`
  (base64 in the session file, associated data `user\\ndevice`);
- SHA-256 of `<label>|<pickle key>` with the labels `tuichat cross-signing`
  and `tuichat backup key` (base64 in the crypto extras store, no
  associated data).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from tuichat.matrix.storage.sealing import SealError

OUTBOX_INFO = b"tuichat outbox v1"
TOKENS_INFO = b"tuichat tokens v1"
CROSS_SIGNING_LABEL = "tuichat cross-signing"
BACKUP_KEY_LABEL = "tuichat backup key"


def _hkdf_key(pickle_key: str, info: bytes) -> bytes:
    key = HKDF(pickle_key.encode(), 32, b"", SHA256, context=info)
    assert isinstance(key, bytes)
    return key


def _open(key: bytes, raw: bytes, associated: bytes | None) -> bytes:
    if len(raw) < 28:
        raise SealError("an old sealed value is too short")
    cipher = AES.new(key, AES.MODE_GCM, nonce=raw[:12])
    if associated is not None:
        cipher.update(associated)
    try:
        return cipher.decrypt_and_verify(raw[28:], raw[12:28])
    except ValueError:
        raise SealError("an old sealed value does not open") from None


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise SealError("an old sealed value is not base64") from None


def open_outbox_entry(
    pickle_key: str, room_id: str, txn_id: str, event_type: str, sealed: bytes
) -> bytes:
    associated = f"{room_id}\n{txn_id}\n{event_type}".encode()
    return _open(_hkdf_key(pickle_key, OUTBOX_INFO), sealed, associated)


def open_token(pickle_key: str, user_id: str, device_id: str, sealed: str) -> str:
    associated = f"{user_id}\n{device_id}".encode()
    try:
        return _open(_hkdf_key(pickle_key, TOKENS_INFO), _b64(sealed), associated).decode()
    except UnicodeDecodeError:
        raise SealError("an old sealed token is not text") from None


def open_labelled(pickle_key: str, label: str, sealed: str) -> str:
    """A value sealed with the SHA-256 derivation (cross-signing keys,
    the backup key)."""
    key = hashlib.sha256(f"{label}|{pickle_key}".encode()).digest()
    try:
        return _open(key, _b64(sealed), None).decode()
    except UnicodeDecodeError:
        raise SealError("an old sealed value is not text") from None
