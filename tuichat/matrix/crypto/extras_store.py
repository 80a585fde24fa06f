"""Crypto state nio does not keep, in an SQLite file beside nio's store.

- outbound Megolm sessions (pickled with the profile's pickle key), so a
  restart does not rotate them;
- the message-index record for replay protection, so it survives restarts;
- where each inbound session's key came from (direct, forwarded, imported,
  backup), so messages it decrypts can be marked as less authenticated;
- which sessions are in which key-backup version;
- small facts such as trust settings and the sealed key-backup key.

The file lives in the profile's crypto directory, opened through
`storage/sqlite_store.py` (mode 0600, schema versions). Secrets kept in
`meta` (cross-signing and backup keys) are sealed by their owners with
`storage/sealing.py`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tuichat.matrix.storage import sqlite_store
from tuichat.matrix.storage.sealing import Sealer, is_sealed_text
from tuichat.model.items import WithheldCode

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbound_sessions (
    room_id TEXT PRIMARY KEY,
    pickle TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    shared_with TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS message_indices (
    sender_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    message_index INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    origin_ts INTEGER NOT NULL,
    PRIMARY KEY (sender_key, session_id, message_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backed_up (
    session_id TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (session_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS withheld_keys (
    room_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    code TEXT NOT NULL,
    PRIMARY KEY (room_id, sender_key, session_id, sender)
) WITHOUT ROWID;
-- Where a session's key came from, keyed as the session is: by room,
-- creator key and id (a session id alone can be claimed by another device).
-- The first table (`key_sources`, by session id) is moved over by
-- `migrate_key_sources`.
CREATE TABLE IF NOT EXISTS key_provenance (
    room_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    session_id TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (room_id, sender_key, session_id)
) WITHOUT ROWID;
"""


def _from_unversioned(db: sqlite3.Connection) -> None:
    """A store written before versions were kept by SQLite. Its first
    withheld table kept codes as received, bound to no sender: nothing in
    it can be believed, so it goes. (Its first key-provenance table needs
    nio's sessions to move: `migrate_key_sources`.)"""
    db.execute("DROP TABLE IF EXISTS withheld")


SCHEMA = sqlite_store.Schema(version=1, script=_SCHEMA, steps={0: _from_unversioned})


@dataclass(frozen=True)
class StoredOutboundSession:
    room_id: str
    pickle: str
    created_ms: int
    message_count: int
    shared_with: frozenset[tuple[str, str]]


IndexKey = tuple[str, str, int]  # (sender key, session id, message index)
SessionKey = tuple[str, str, str]  # (room id, sender key, session id)


class CryptoExtrasStore:
    FILE_NAME = "tuichat-crypto.sqlite3"

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / self.FILE_NAME
        # Commits reach the disk at checkpoints (safe against a crash of
        # tuichat, not of the machine): replay records and key provenance
        # are written per sync and per history page, and a synced commit
        # costs a millisecond or more. Outbound sessions are the exception
        # (`save_outbound`): a lost one would reuse message indices.
        self._db = sqlite_store.connect(self.path, synchronous="NORMAL", manual_checkpoints=True)
        self.checkpoints = sqlite_store.BackgroundCheckpoints(self.path)
        sqlite_store.apply_schema(self._db, SCHEMA, "the crypto extras store")
        # Replay protection: message indices seen, by session, loaded lazily.
        self._indices: dict[tuple[str, str], dict[int, tuple[str, int]]] = {}
        self._unsaved_indices: list[tuple[str, str, int, str, int]] = []
        self._sources: dict[SessionKey, str] | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tuichat-extras"
        )
        self._writer_db: sqlite3.Connection | None = None
        self._last_flush: concurrent.futures.Future[None] | None = None
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush(wait=True)

        def close_writer() -> None:
            if self._writer_db is not None:
                self._writer_db.close()

        self._writer.submit(close_writer)
        self._writer.shutdown(wait=True)
        self._db.close()

    # -- meta ------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def get_sealed(self, key: str, sealer: Sealer, legacy: Callable[[str], str]) -> str | None:
        """The secret kept sealed under `key` (bound to that name), or None.
        One sealed in an older format is opened with `legacy` and sealed
        again in the current one. SealError if it does not open."""
        stored = self.get(key)
        if not stored:
            return None
        if is_sealed_text(stored):
            return sealer.open_text(stored, key)
        secret = legacy(stored)
        self.set_sealed(key, sealer, secret)
        return secret

    def set_sealed(self, key: str, sealer: Sealer, secret: str) -> None:
        self.set(key, sealer.seal_text(secret, key))

    # -- outbound sessions -------------------------------------------------------

    def save_outbound(self, session: StoredOutboundSession) -> None:
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._save_outbound(session)
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")

    def _save_outbound(self, session: StoredOutboundSession) -> None:
        self._db.execute(
            "INSERT INTO outbound_sessions "
            "(room_id, pickle, created_ms, message_count, shared_with) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(room_id) DO UPDATE SET pickle = excluded.pickle, "
            "created_ms = excluded.created_ms, message_count = excluded.message_count, "
            "shared_with = excluded.shared_with",
            (
                session.room_id,
                session.pickle,
                session.created_ms,
                session.message_count,
                json.dumps(sorted(session.shared_with)),
            ),
        )

    def delete_outbound(self, room_id: str) -> None:
        self._db.execute("DELETE FROM outbound_sessions WHERE room_id = ?", (room_id,))

    def load_outbound(self) -> list[StoredOutboundSession]:
        rows = self._db.execute(
            "SELECT room_id, pickle, created_ms, message_count, shared_with FROM outbound_sessions"
        ).fetchall()
        return [
            StoredOutboundSession(
                room_id=row[0],
                pickle=row[1],
                created_ms=row[2],
                message_count=row[3],
                shared_with=frozenset((u, d) for u, d in json.loads(row[4])),
            )
            for row in rows
        ]

    # -- replay protection -------------------------------------------------------

    def _session_indices(self, sender_key: str, session_id: str) -> dict[int, tuple[str, int]]:
        key = (sender_key, session_id)
        indices = self._indices.get(key)
        if indices is None:
            indices = {
                row[0]: (row[1], row[2])
                for row in self._db.execute(
                    "SELECT message_index, event_id, origin_ts FROM message_indices "
                    "WHERE sender_key = ? AND session_id = ?",
                    (sender_key, session_id),
                )
            }
            self._indices[key] = indices
        return indices

    def check_index(
        self, sender_key: str, session_id: str, index: int, event_id: str, origin_ts: int
    ) -> bool:
        """Record that `event_id` used this message index; False if another
        event already did (a replay)."""
        indices = self._session_indices(sender_key, session_id)
        seen = indices.get(index)
        if seen is None:
            indices[index] = (event_id, origin_ts)
            self._unsaved_indices.append((sender_key, session_id, index, event_id, origin_ts))
            return True
        return seen == (event_id, origin_ts)

    def flush(self, *, wait: bool = False) -> None:
        """Write the replay records gathered since the last flush, in one
        transaction on the writer thread (with a connection of its own): a
        large sync's ten thousand records then cost the UI loop nothing.
        Each record stands alone; one lost to a crash only weakens replay
        detection for that index. `wait`: return once it is written."""
        if self._unsaved_indices:
            rows, self._unsaved_indices = self._unsaved_indices, []
            self._last_flush = self._writer.submit(self._write_indices, rows)
        if wait and self._last_flush is not None:
            self._last_flush.result()

    def _write_indices(self, rows: list[tuple[str, str, int, str, int]]) -> None:
        if self._writer_db is None:
            self._writer_db = sqlite_store.writer_connection(self.path)
        db = self._writer_db
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR IGNORE INTO message_indices VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
            self.checkpoints.wrote(len(rows))
        except BaseException as error:
            db.execute("ROLLBACK")
            log.error("writing %d replay records failed: %s", len(rows), error)
            raise

    # -- key provenance ----------------------------------------------------------

    def key_source(self, room_id: str, sender_key: str, session_id: str) -> str | None:
        if self._sources is None:
            self._sources = {
                (row[0], row[1], row[2]): row[3]
                for row in self._db.execute(
                    "SELECT room_id, sender_key, session_id, source FROM key_provenance"
                )
            }
        return self._sources.get((room_id, sender_key, session_id))

    def set_key_sources(self, entries: Iterable[tuple[str, str, str, str]]) -> None:
        """(room id, sender key, session id, source) for keys that did not
        come directly from their sender; a direct key later clears the mark."""
        rows = list(entries)
        if not rows:
            return
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO key_provenance (room_id, sender_key, session_id, source) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(room_id, sender_key, session_id) "
            "DO UPDATE SET source = excluded.source",
            rows,
        )
        self._db.execute("COMMIT")
        if self._sources is not None:
            self._sources.update({(row[0], row[1], row[2]): row[3] for row in rows})

    def clear_key_source(self, room_id: str, sender_key: str, session_id: str) -> None:
        self._db.execute(
            "DELETE FROM key_provenance WHERE room_id = ? AND sender_key = ? AND session_id = ?",
            (room_id, sender_key, session_id),
        )
        if self._sources is not None:
            self._sources.pop((room_id, sender_key, session_id), None)

    def has_old_key_sources(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_sources'"
        ).fetchone()
        return row is not None

    def migrate_key_sources(self, sessions: Iterable[SessionKey]) -> None:
        """Move the first table's marks (by room and session id) to every
        stored session they may have meant (room, sender key, session id):
        marking one too many is the safe side. Then drop that table."""
        if not self.has_old_key_sources():
            return
        old = {
            (row[0], row[1]): row[2]
            for row in self._db.execute("SELECT room_id, session_id, source FROM key_sources")
        }
        rows = [
            (room_id, sender_key, session_id, old[(room_id, session_id)])
            for room_id, sender_key, session_id in sessions
            if (room_id, session_id) in old
        ]
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR IGNORE INTO key_provenance (room_id, sender_key, session_id, source) "
            "VALUES (?, ?, ?, ?)",
            rows,
        )
        self._db.execute("DROP TABLE key_sources")
        self._db.execute("COMMIT")
        self._sources = None

    # -- withheld keys -------------------------------------------------------------------

    def withheld_code(
        self, room_id: str, sender_key: str, session_id: str, sender: str
    ) -> WithheldCode | None:
        """The code `sender` gave for withholding the session (room, creator
        key, id) from us, if it did: a notice from anyone else does not count."""
        row = self._db.execute(
            "SELECT code FROM withheld_keys "
            "WHERE room_id = ? AND sender_key = ? AND session_id = ? AND sender = ?",
            (room_id, sender_key, session_id, sender),
        ).fetchone()
        return None if row is None else WithheldCode.parse(row[0])

    def set_withheld(
        self, room_id: str, sender_key: str, session_id: str, sender: str, code: WithheldCode
    ) -> None:
        self._db.execute(
            "INSERT INTO withheld_keys (room_id, sender_key, session_id, sender, code) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(room_id, sender_key, session_id, sender) "
            "DO UPDATE SET code = excluded.code",
            (room_id, sender_key, session_id, sender, WithheldCode.parse(code).value),
        )

    # -- key backup ----------------------------------------------------------------------

    def backed_up(self, version: str) -> set[str]:
        return {
            row[0]
            for row in self._db.execute(
                "SELECT session_id FROM backed_up WHERE version = ?", (version,)
            )
        }

    def mark_backed_up(self, session_ids: Iterable[str], version: str) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR IGNORE INTO backed_up (session_id, version) VALUES (?, ?)",
            [(session_id, version) for session_id in session_ids],
        )
        self._db.execute("COMMIT")
