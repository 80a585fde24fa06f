"""Secret storage (SSSS): the recovery key, passphrases, encrypted secrets.

Client-Server API, "Secrets" > "Storage": secrets (the key-backup key, the
cross-signing keys) live in account data, encrypted with a secret storage
key (`m.secret_storage.v1.aes-hmac-sha2`): AES-256-CTR and HMAC-SHA-256
with keys from HKDF-SHA-256 over the secret's name. The key is given as a
recovery key (base58, as Element prints it) or derived from a passphrase
(`m.pbkdf2`). nio has none of this; it is built here on pycryptodome and
hashlib.

Base58 is written out below rather than taken from a package: it is ten
lines, and the recovery key's framing (prefix and parity byte) has to be
handled here anyway.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from Crypto.Util import Counter

ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
DEFAULT_KEY_TYPE = "m.secret_storage.default_key"
KEY_TYPE_PREFIX = "m.secret_storage.key."
RECOVERY_PREFIX = bytes([0x8B, 0x01])
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class SecretStorageError(ValueError):
    """The message says what is wrong, for the user."""


# -- encodings ----------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    text = text.strip()
    return base64.b64decode(text + "=" * (-len(text) % 4))


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_B58[remainder])
    leading = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading + "".join(reversed(digits))


def base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise SecretStorageError(f"{char!r} cannot appear in a recovery key")
        number = number * 58 + index
    leading = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading + body


def encode_recovery_key(key: bytes) -> str:
    """32 key bytes as Element shows a recovery key: groups of four."""
    framed = RECOVERY_PREFIX + key
    parity = 0
    for byte in framed:
        parity ^= byte
    encoded = base58_encode(framed + bytes([parity]))
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def decode_recovery_key(text: str) -> bytes:
    data = base58_decode("".join(text.split()))
    if len(data) != 35 or data[:2] != RECOVERY_PREFIX:
        raise SecretStorageError("that is not a recovery key (wrong length or prefix)")
    parity = 0
    for byte in data:
        parity ^= byte
    if parity != 0:
        raise SecretStorageError("that recovery key has a typo (its check digit is wrong)")
    return data[2:34]


# Bounds on the `m.pbkdf2` settings, which come from account data (the
# server's to change). Element (matrix-js-sdk, matrix-rust-sdk) writes
# 500,000 iterations and 256 bits; ten times that still derives in seconds,
# while an unbounded count could keep the derivation busy for hours.
MIN_PASSPHRASE_ITERATIONS = 1
MAX_PASSPHRASE_ITERATIONS = 5_000_000
PASSPHRASE_BITS = 256
MAX_SALT_LENGTH = 1024


def check_passphrase_info(info: dict[str, Any]) -> tuple[str, int]:
    """The salt and iteration count of a passphrase description, checked;
    SecretStorageError naming what is wrong otherwise."""
    if info.get("algorithm") != "m.pbkdf2":
        raise SecretStorageError("this key cannot be derived from a passphrase")
    salt, iterations = info.get("salt"), info.get("iterations")
    bits = info.get("bits", PASSPHRASE_BITS)
    if (
        not isinstance(salt, str)
        or not isinstance(iterations, int)
        or isinstance(iterations, bool)
        or not isinstance(bits, int)
        or isinstance(bits, bool)
    ):
        raise SecretStorageError("the passphrase settings on the server are malformed")
    # The values themselves are not quoted: they may be absurdly long.
    if not MIN_PASSPHRASE_ITERATIONS <= iterations <= MAX_PASSPHRASE_ITERATIONS:
        raise SecretStorageError(
            "the passphrase settings on the server ask for an iteration count out of range "
            f"(tuichat accepts {MIN_PASSPHRASE_ITERATIONS:,} to {MAX_PASSPHRASE_ITERATIONS:,}; "
            "Element uses 500,000); use the recovery key instead"
        )
    if bits != PASSPHRASE_BITS:
        raise SecretStorageError(
            f"the passphrase settings on the server ask for a key size other than "
            f"{PASSPHRASE_BITS} bits; use the recovery key instead"
        )
    if len(salt) > MAX_SALT_LENGTH:
        raise SecretStorageError(
            f"the passphrase settings on the server have a salt longer than "
            f"{MAX_SALT_LENGTH} characters; use the recovery key instead"
        )
    return salt, iterations


def key_from_passphrase(passphrase: str, info: dict[str, Any]) -> bytes:
    """The key a passphrase stands for (seconds of work: call it through
    `derive_key_from_passphrase` from the event loop)."""
    salt, iterations = check_passphrase_info(info)
    return hashlib.pbkdf2_hmac(
        "sha512",
        passphrase.encode("utf-8"),
        salt.encode("utf-8"),
        iterations,
        PASSPHRASE_BITS // 8,
    )


async def derive_key_from_passphrase(passphrase: str, info: dict[str, Any]) -> bytes:
    """`key_from_passphrase` in a worker thread, so the UI keeps drawing;
    the settings are checked first, at once."""
    check_passphrase_info(info)
    return await asyncio.to_thread(key_from_passphrase, passphrase, info)


# -- aes-hmac-sha2 ----------------------------------------------------------------------


def _derive(key: bytes, name: str) -> tuple[bytes, bytes]:
    derived = HKDF(key, 64, b"\0" * 32, SHA256, context=name.encode("utf-8"))
    assert isinstance(derived, bytes)
    return derived[:32], derived[32:]


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    counter = Counter.new(128, initial_value=int.from_bytes(iv, "big"))
    return AES.new(key, AES.MODE_CTR, counter=counter).encrypt(data)


def encrypt_secret(key: bytes, name: str, secret: str, iv: bytes | None = None) -> dict[str, str]:
    if iv is None:
        raw = bytearray(secrets.token_bytes(16))
        raw[8] &= 0x7F  # bit 63 cleared, as the spec recommends
        iv = bytes(raw)
    aes_key, mac_key = _derive(key, name)
    ciphertext = _ctr(aes_key, iv, secret.encode("utf-8"))
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    return {"iv": b64(iv), "ciphertext": b64(ciphertext), "mac": b64(mac)}


def decrypt_secret(key: bytes, name: str, encrypted: dict[str, Any]) -> str:
    try:
        iv = unb64(encrypted["iv"])
        ciphertext = unb64(encrypted["ciphertext"])
        mac = unb64(encrypted["mac"])
    except (KeyError, TypeError, ValueError):
        raise SecretStorageError(f"the stored secret {name} is malformed") from None
    aes_key, mac_key = _derive(key, name)
    if not hmac.compare_digest(hmac.new(mac_key, ciphertext, hashlib.sha256).digest(), mac):
        raise SecretStorageError(f"the key does not open the secret {name}")
    return _ctr(aes_key, iv, ciphertext).decode("utf-8")


def key_check(key: bytes, iv: bytes | None = None) -> dict[str, str]:
    """The `iv`/`mac` pair a key description carries: 32 zero bytes
    encrypted with the key under the empty name."""
    if iv is None:
        raw = bytearray(secrets.token_bytes(16))
        raw[8] &= 0x7F
        iv = bytes(raw)
    aes_key, mac_key = _derive(key, "")
    ciphertext = _ctr(aes_key, iv, b"\0" * 32)
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    return {"iv": b64(iv), "mac": b64(mac)}


@dataclass(frozen=True)
class KeyDescription:
    key_id: str
    content: dict[str, Any]

    @property
    def passphrase(self) -> dict[str, Any] | None:
        info = self.content.get("passphrase")
        return info if isinstance(info, dict) else None

    def check(self, key: bytes) -> bool:
        """Whether `key` is this key (constant-time on the MAC)."""
        if self.content.get("algorithm") != ALGORITHM:
            raise SecretStorageError(
                f"unsupported secret storage algorithm {self.content.get('algorithm')!r}"
            )
        iv, mac = self.content.get("iv"), self.content.get("mac")
        if not isinstance(iv, str) or not isinstance(mac, str):
            # Without a check value the key cannot be tested; the first secret
            # decryption will tell.
            return True
        expected = key_check(key, unb64(iv))["mac"]
        return hmac.compare_digest(unb64(expected), unb64(mac))


def new_key_description(
    key: bytes, passphrase_info: dict[str, Any] | None = None, name: str = "Recovery key"
) -> dict[str, Any]:
    content: dict[str, Any] = {"algorithm": ALGORITHM, "name": name, **key_check(key)}
    if passphrase_info:
        content["passphrase"] = passphrase_info
    return content
