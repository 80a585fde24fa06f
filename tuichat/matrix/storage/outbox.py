"""Messages not yet confirmed by the server, kept on disk until they are.

A message goes into the outbox before it is first sent and leaves it when
the server answers with its event id. On the next start whatever is still
here is sent again, in the order it was written, with its original
transaction id: the server recognises a transaction it already has and
answers with the same event, so nothing is sent twice, even after a crash
between the server's reply and the removal here.

The content is sealed at rest (`sealing.py`, purpose "outbox", bound to
the entry's room, transaction id and type) so that no message text lies in
the profile in the clear. The file is opened through `sqlite_store.py`
(mode 0600 inside the 0700 profile). An outbox written before the current
sealing format is sealed again when it is opened.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuichat.matrix.account.session import Profile
from tuichat.matrix.storage import legacy_sealing, sqlite_store
from tuichat.matrix.storage.sealing import Purpose, Sealer, SealError

log = logging.getLogger(__name__)

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
        self._sealer = Sealer(pickle_key, Purpose.OUTBOX)
        # A message the user wrote must survive a power cut once accepted.
        self._db = sqlite_store.connect(self.path, synchronous="FULL")
        schema = sqlite_store.Schema(
            version=1,
            script=_SCHEMA,
            steps={0: lambda db: _reseal_unversioned(db, pickle_key, self._sealer)},
        )
        sqlite_store.apply_schema(self._db, schema, "the outbox")

    def close(self) -> None:
        self._db.close()

    def _seal(self, entry: OutboxEntry) -> bytes:
        plaintext = json.dumps(entry.content, ensure_ascii=False).encode()
        return self._sealer.seal(plaintext, entry.room_id, entry.txn_id, entry.event_type)

    def _open(self, room_id: str, txn_id: str, event_type: str, sealed: bytes) -> dict[str, Any]:
        content = json.loads(self._sealer.open(sealed, room_id, txn_id, event_type))
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


def _reseal_unversioned(db: sqlite3.Connection, pickle_key: str, sealer: Sealer) -> None:
    """An outbox from before the current sealing format: each entry is
    opened the old way and sealed again (one that does not open is left as
    it is; `pending` counts and drops it, as it would have)."""
    if not sqlite_store.table_exists(db, "outbox"):
        return
    rows = db.execute("SELECT seq, room_id, txn_id, event_type, sealed FROM outbox").fetchall()
    resealed = []
    for seq, room_id, txn_id, event_type, sealed in rows:
        try:
            plaintext = legacy_sealing.open_outbox_entry(
                pickle_key, room_id, txn_id, event_type, bytes(sealed)
            )
        except SealError:
            continue
        resealed.append((sealer.seal(plaintext, room_id, txn_id, event_type), seq))
    db.executemany("UPDATE outbox SET sealed = ? WHERE seq = ?", resealed)
    if resealed:
        log.info("sealed %d outbox entries again in the current format", len(resealed))
