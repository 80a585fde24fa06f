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
import codecs
import hashlib
import hmac
import json
import os
import secrets
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES
from Crypto.Util import Counter

HEADER = "-----BEGIN MEGOLM SESSION DATA-----"
FOOTER = "-----END MEGOLM SESSION DATA-----"
EXPORT_ROUNDS = 500_000
# A file chooses its own PBKDF2 round count (a 32-bit number), and the
# derivation runs before the MAC can say the file is bad: a crafted file
# asking for billions of rounds would keep us busy for hours. 2,000,000 is
# four times what Element writes and about two seconds on a slow machine.
MAX_ROUNDS = 2_000_000
VERSION = 1
# The header, the version, salt, IV and round count fit in this many bytes
# of the file's start: enough to check a file before asking its passphrase.
HEAD_BYTES = 4096
# Element asks for a zxcvbn score of at least 3 ("safely unguessable") for
# an export's passphrase (ExportE2eKeysDialog, PassphraseField minScore=3).
MIN_PASSPHRASE_SCORE = 3
# zxcvbn's cost grows with the length; a longer passphrase is scored on its
# start, which can only make the score lower, never let a weak one through.
SCORED_PASSPHRASE_CHARS = 100


class KeyFileError(ValueError):
    """A key file cannot be used (damaged, wrong passphrase, not there, not
    writable); the message is a sentence that says which."""


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


def _check_rounds(rounds: int) -> None:
    if rounds < 1:
        raise KeyFileError("the key file is damaged (it asks for 0 rounds of key derivation)")
    if rounds > MAX_ROUNDS:
        raise KeyFileError(
            f"the key file asks for {rounds:,} rounds of key derivation, more than the "
            f"{MAX_ROUNDS:,} tuichat accepts (Element writes {EXPORT_ROUNDS:,}); it is "
            "refused, as a file made to keep tuichat busy or a damaged one"
        )


NOT_TEXT = "this is not a room key export file: it is binary, not text"


def check_file_start(head: bytes) -> None:
    """Raise KeyFileError, with a sentence, unless `head` (the first bytes
    of a file, up to HEAD_BYTES) can start a key export: text, the armour
    header, then a version and round count tuichat accepts. Cheap, so it
    runs before anyone is asked for a passphrase."""
    try:
        # Not final: the cut at HEAD_BYTES may split a character.
        text = codecs.getincrementaldecoder("utf-8")().decode(head[:HEAD_BYTES], final=False)
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise KeyFileError(NOT_TEXT)
    stripped = text.lstrip()
    if not stripped.startswith(HEADER):
        raise KeyFileError(
            "this is not a room key export file: it does not start with the line " + HEADER
        )
    payload = "".join(stripped[len(HEADER) :].split("-----END")[0].split())[:52]
    if len(payload) < 52:
        return  # a short file: decrypt_export says what is wrong with it
    try:
        start = base64.b64decode(payload, validate=True)
    except ValueError:
        raise KeyFileError("the key file is damaged (invalid base64)") from None
    if start[0] != VERSION:
        raise KeyFileError(f"unsupported key file version {start[0]}")
    _check_rounds(struct.unpack(">I", start[33:37])[0])


def read_key_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a file to import (its first `limit` bytes), checked with
    `check_file_start`; every problem is a KeyFileError naming the file."""
    try:
        with path.open("rb") as handle:
            data = handle.read() if limit is None else handle.read(limit)
    except FileNotFoundError:
        raise KeyFileError(f"there is no file {path}") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path} is a directory, not a key file") from None
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        check_file_start(data)
    except KeyFileError as error:
        raise KeyFileError(f"{path}: {error}") from None
    return data


def key_file_text(path: Path) -> str:
    """The whole text of a file to import, checked before any passphrase is
    asked (see `read_key_file`)."""
    read_key_file(path, HEAD_BYTES)  # a wrong file is told before all of it is read
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: {NOT_TEXT}") from None


def check_export_target(path: Path, *, force: bool) -> None:
    """Raise KeyFileError, with a sentence, if the export cannot or should
    not be written to `path`: checked before the passphrase is asked, so a
    typo does not cost a passphrase and a minute of key derivation."""
    folder = path.parent
    if path.is_dir():
        raise KeyFileError(f"{path} is a directory; give the name of the file to write")
    if not folder.is_dir():
        raise KeyFileError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise KeyFileError(f"cannot write {path}: you may not write in {folder}")
    if path.exists() and not force:
        raise KeyFileError(f"{path} exists already; --force replaces it")


def passphrase_problem(passphrase: str) -> str | None:
    """Why `passphrase` is too weak to protect a key export, or None. The
    rule is Element's: a zxcvbn score of at least MIN_PASSPHRASE_SCORE."""
    from zxcvbn import zxcvbn  # here: it loads its word lists (20 ms)

    if not passphrase:
        return "the passphrase is empty"
    result = zxcvbn(passphrase[:SCORED_PASSPHRASE_CHARS])
    score = int(result["score"])
    if score >= MIN_PASSPHRASE_SCORE:
        return None
    feedback = result.get("feedback") or {}
    hints = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
    hint = " ".join(h.strip() for h in hints if h and h.strip())
    return (
        f"this passphrase is too easy to guess (strength {score} of 4, at least "
        f"{MIN_PASSPHRASE_SCORE} is needed, as in Element)" + (f". {hint}" if hint else "")
    )


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
    _check_rounds(rounds)
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
