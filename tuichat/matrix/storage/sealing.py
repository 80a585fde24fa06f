"""Sealing data at rest with the profile's key: one derivation, one format.

What tuichat keeps in the profile that must not lie there readable is sealed
here: message text waiting in the outbox, the access and refresh tokens in
the session file, the cross-signing private keys, the key-backup key and the
dehydrated device's key in the crypto extras store; the search index is an
SQLCipher file keyed with this derivation (`search_index.py`). (nio seals its
own store with the pickle key; the cache keeps events as the server sent them,
ciphertext for encrypted rooms.)

Key: HKDF-SHA-256 over the profile's pickle key (its text), no salt, info
`tuichat seal v2 <purpose>`: each `Purpose` has a key of its own, so a
value sealed for one cannot be opened as another.

Format, version 2: one version byte (2), a random 12-byte nonce, the 16-byte
tag, then the ciphertext: AES-256-GCM. The associated data is the version
byte and the caller's context (what the value belongs to: an outbox entry's
room, transaction id and type; a token's user and device; an extras key's
name), so a sealed value copied to another place does not open there. The
text form, for JSON and text columns, is `v2:` and the bytes in base64.

Values sealed before this format are read by `legacy_sealing.py`, only to be
sealed again in this one (see the stores that use it).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from enum import StrEnum

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

VERSION = 2
TEXT_PREFIX = f"v{VERSION}:"
_NONCE = 12
_TAG = 16


class Purpose(StrEnum):
    OUTBOX = "outbox"
    TOKENS = "tokens"
    CROSS_SIGNING = "cross-signing keys"
    BACKUP_KEY = "backup key"
    DEHYDRATION_KEY = "dehydration key"  # dehydrated devices (issue 26)
    SEARCH_INDEX = "search index"  # the SQLCipher key of search.db (issue 24)


class SealError(ValueError):
    """The value cannot be opened: another key, another place, damage, or
    not this format."""


def derive_key(profile_key: str, purpose: Purpose) -> bytes:
    key = HKDF(
        profile_key.encode(),
        32,
        b"",
        SHA256,
        context=f"tuichat seal v{VERSION} {purpose.value}".encode(),
    )
    assert isinstance(key, bytes)
    return key


def _associated(context: tuple[str, ...]) -> bytes:
    return bytes([VERSION]) + json.dumps(list(context)).encode()


class Sealer:
    """Seals and opens values of one purpose with one profile's key."""

    def __init__(self, profile_key: str, purpose: Purpose) -> None:
        self.purpose = purpose
        self._key = derive_key(profile_key, purpose)

    def seal(self, plaintext: bytes, *context: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(_associated(context))
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return bytes([VERSION]) + nonce + tag + ciphertext

    def open(self, sealed: bytes, *context: str) -> bytes:
        if len(sealed) < 1 + _NONCE + _TAG or sealed[0] != VERSION:
            raise SealError(f"not a version {VERSION} sealed value")
        nonce = sealed[1 : 1 + _NONCE]
        tag = sealed[1 + _NONCE : 1 + _NONCE + _TAG]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(_associated(context))
        try:
            return cipher.decrypt_and_verify(sealed[1 + _NONCE + _TAG :], tag)
        except ValueError:
            raise SealError(f"a sealed {self.purpose.value} value does not open") from None

    def seal_text(self, plaintext: str, *context: str) -> str:
        return TEXT_PREFIX + base64.b64encode(self.seal(plaintext.encode(), *context)).decode()

    def open_text(self, sealed: str, *context: str) -> str:
        if not is_sealed_text(sealed):
            raise SealError(f"not a version {VERSION} sealed text")
        try:
            raw = base64.b64decode(sealed[len(TEXT_PREFIX) :], validate=True)
            return self.open(raw, *context).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SealError(f"a sealed {self.purpose.value} text is damaged") from None


def is_sealed_text(value: str) -> bool:
    """Whether `value` is in this format's text form (else: an older one)."""
    return value.startswith(TEXT_PREFIX)
