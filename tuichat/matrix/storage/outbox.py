"""Messages not yet confirmed by the server, kept on disk until they are.

A message goes into the outbox before it is first sent and leaves it when
the server answers with its event id. On the next start whatever is still
here is sent again, in the order it was written, with its original
transaction id: the server recognises a transaction it already has and
answers with the same event, so nothing is sent twice, even after a crash
between the server's reply and the removal here.

The content is encrypted at rest (AES-256-GCM, with a key derived from the
profile's pickle key by HKDF-SHA-256) so that no message text lies in the
profile in the clear. The file is mode 0600 inside the 0700 profile.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from tuichat.matrix.account.session import FILE_MODE, Profile, private_umask

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id TEXT NOT NULL,
    txn_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    sealed BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
"""
_NONCE = 12
_TAG = 16


@dataclass(frozen=True)
class OutboxEntry:
    room_id: str
    txn_id: str
    event_type: str
    content: dict[str, Any]
    created_ms: int


class Outbox:
    FILE_NAME = Profile.OUTBOX_FILE  # logout removes it by that name

    def __init__(self, directory: Path, pickle_key: str) -> None:
        self.path = Path(directory) / self.FILE_NAME
        with private_umask():
            self._db = sqlite3.connect(self.path, isolation_level=None)
        self.path.chmod(FILE_MODE)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A message the user wrote must survive a power cut once accepted.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._key = HKDF(pickle_key.encode(), 32, b"", SHA256, context=b"tuichat outbox v1")

    def close(self) -> None:
        self._db.close()

    def _seal(self, entry: OutboxEntry) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(f"{entry.room_id}\n{entry.txn_id}\n{entry.event_type}".encode())
        plaintext = json.dumps(entry.content, ensure_ascii=False).encode()
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return nonce + tag + ciphertext

    def _open(self, room_id: str, txn_id: str, event_type: str, sealed: bytes) -> dict[str, Any]:
        nonce, tag = sealed[:_NONCE], sealed[_NONCE : _NONCE + _TAG]
        ciphertext = sealed[_NONCE + _TAG :]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(f"{room_id}\n{txn_id}\n{event_type}".encode())
        content = json.loads(cipher.decrypt_and_verify(ciphertext, tag))
        if not isinstance(content, dict):
            raise ValueError("not an object")
        return content

    def add(self, room_id: str, txn_id: str, event_type: str, content: dict[str, Any]) -> None:
        entry = OutboxEntry(room_id, txn_id, event_type, content, int(time.time() * 1000))
        self._db.execute(
            "INSERT OR IGNORE INTO outbox (room_id, txn_id, event_type, sealed, created_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (room_id, txn_id, event_type, self._seal(entry), entry.created_ms),
        )

    def remove(self, txn_id: str) -> None:
        self._db.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))

    def pending(self) -> tuple[list[OutboxEntry], int]:
        """Entries in the order they were written, and how many could not
        be opened (another pickle key, or damage); those are dropped."""
        entries, broken = [], []
        for room_id, txn_id, event_type, sealed, created_ms in self._db.execute(
            "SELECT room_id, txn_id, event_type, sealed, created_ms FROM outbox ORDER BY seq"
        ).fetchall():
            try:
                content = self._open(room_id, txn_id, event_type, bytes(sealed))
            except (ValueError, KeyError):
                broken.append(txn_id)
                continue
            entries.append(OutboxEntry(room_id, txn_id, event_type, content, created_ms))
        for txn_id in broken:
            self.remove(txn_id)
        return entries, len(broken)
