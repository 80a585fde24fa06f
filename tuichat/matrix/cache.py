"""tuichat's local cache: rooms, state and timeline events, and the sync token.

nio keeps no room state between runs, so without this a restart would need a
full initial sync. The cache is an SQLite file in the profile (mode 0600).
Events are stored exactly as the server sent them: encrypted events stay
ciphertext and are decrypted on load, so no plaintext is written to disk.

Each sync response is written in one transaction together with its token, so
the token on disk never runs ahead of the events it covers. This module
imports neither nio nor Textual: the UI reads it before nio is loaded.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuichat.matrix import fastjson
from tuichat.matrix.session import FILE_MODE, private_umask

SCHEMA_VERSION = 2  # 2: rooms.last_ts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rooms (
    room_id TEXT PRIMARY KEY,
    membership TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}',
    read_marker TEXT,
    prev_batch TEXT,
    last_ts INTEGER NOT NULL DEFAULT 0  -- newest event's timestamp
);
CREATE TABLE IF NOT EXISTS state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    room_id TEXT NOT NULL,
    pos INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (room_id, pos)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_id ON events (room_id, event_id);
CREATE TABLE IF NOT EXISTS account_data (type TEXT PRIMARY KEY, content TEXT NOT NULL);
"""


_dumps = fastjson.dumps
_loads = fastjson.loads


@dataclass
class CachedRoom:
    room_id: str
    membership: str
    summary: dict[str, Any]
    read_marker: str | None
    prev_batch: str | None
    state: list[dict[str, Any]]
    events: list[dict[str, Any]]  # oldest first
    has_older: bool = False


@dataclass
class RoomWrite:
    membership: str
    summary: dict[str, Any] | None = None
    state: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    replace_timeline: bool = False  # a limited sync: drop the cached timeline
    prev_batch: str | None = None


@dataclass
class SyncWrite:
    """Everything one sync response changes, written in one transaction."""

    next_batch: str
    rooms: dict[str, RoomWrite] = field(default_factory=dict)
    removed_rooms: list[str] = field(default_factory=list)
    account_data: dict[str, dict[str, Any]] = field(default_factory=dict)


def _checkpoint(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        db.close()


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # Held by writers whose transaction spans awaits.
        self.write_lock = asyncio.Lock()
        with private_umask():
            self._db = sqlite3.connect(self.path, isolation_level=None)
        self.path.chmod(FILE_MODE)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # No checkpoints inside a commit on the UI loop (one can take tens
        # of milliseconds): `checkpoint()` runs them in a thread instead.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        version = self._meta("schema_version")
        if version is None:
            self._set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            self._reset()

    def close(self) -> None:
        self._db.close()

    async def checkpoint(self, min_pages: int = 1000) -> None:
        """Move the write-ahead log into the database file when it has grown
        past `min_pages`, on a connection of its own in a worker thread
        (SQLite releases the GIL while it copies and syncs)."""
        log_pages = self._db.execute("PRAGMA wal_checkpoint(NOOP)").fetchone()
        if log_pages is None or log_pages[1] < min_pages:
            return
        await asyncio.to_thread(_checkpoint, self.path)

    def _reset(self) -> None:
        """Another schema: the cache starts over (the next sync refills it)."""
        for table in ("meta", "rooms", "state", "events", "account_data"):
            self._db.execute(f"DROP TABLE IF EXISTS {table}")
        self._db.executescript(_SCHEMA)
        self._set_meta("schema_version", str(SCHEMA_VERSION))

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- reading ---------------------------------------------------------------

    @property
    def sync_token(self) -> str | None:
        return self._meta("sync_token")

    def account_data(self, event_type: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT content FROM account_data WHERE type = ?", (event_type,)
        ).fetchone()
        return None if row is None else _loads(row[0])

    def last_timestamps(self) -> dict[str, int]:
        """Each room's newest cached event's timestamp (its last activity),
        without loading its timeline."""
        rows = self._db.execute("SELECT room_id, last_ts FROM rooms WHERE last_ts > 0")
        return dict(rows)

    def read_marker(self, room_id: str) -> str | None:
        row = self._db.execute(
            "SELECT read_marker FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return None if row is None else row[0]

    def load_rooms(self, events_per_room: int = 100) -> list[CachedRoom]:
        """Every room with its state, and its newest `events_per_room`
        events (0: no events are read)."""
        rooms = []
        state_by_room: dict[str, list[dict[str, Any]]] = {}
        for room_id, event in self._db.execute("SELECT room_id, event FROM state"):
            state_by_room.setdefault(room_id, []).append(_loads(event))
        for room_id, membership, summary, marker, prev_batch in self._db.execute(
            "SELECT room_id, membership, summary, read_marker, prev_batch FROM rooms"
        ).fetchall():
            events, has_older = (
                self.load_events(room_id, events_per_room) if events_per_room else ([], True)
            )
            rooms.append(
                CachedRoom(
                    room_id=room_id,
                    membership=membership,
                    summary=_loads(summary),
                    read_marker=marker,
                    prev_batch=prev_batch,
                    state=state_by_room.get(room_id, []),
                    events=events,
                    has_older=has_older,
                )
            )
        return rooms

    def load_events(
        self, room_id: str, limit: int, before_event: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` events older than `before_event` (or the newest),
        oldest first, and whether even older ones are cached."""
        bound = None
        if before_event is not None:
            row = self._db.execute(
                "SELECT pos FROM events WHERE room_id = ? AND event_id = ?",
                (room_id, before_event),
            ).fetchone()
            if row is None:
                return [], False
            bound = row[0]
        if bound is None:
            rows = self._db.execute(
                "SELECT event FROM events WHERE room_id = ? ORDER BY pos DESC LIMIT ?",
                (room_id, limit + 1),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT event FROM events WHERE room_id = ? AND pos < ? ORDER BY pos DESC LIMIT ?",
                (room_id, bound, limit + 1),
            ).fetchall()
        has_older = len(rows) > limit
        return [_loads(row[0]) for row in reversed(rows[:limit])], has_older

    def prev_batch(self, room_id: str) -> str | None:
        """The token for /messages before the oldest cached event of the room
        (None: the cache reaches the room's beginning, or it is unknown)."""
        row = self._db.execute(
            "SELECT prev_batch FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return None if row is None else row[0]

    async def prepend_events(
        self,
        room_id: str,
        events: list[dict[str, Any]],
        from_token: str,
        prev_batch: str | None,
    ) -> bool:
        """Older events (oldest first) from the /messages page fetched with
        `from_token`, below the cached ones, and the token for what lies
        before them, in one transaction. False (nothing written) when the
        room's token changed meanwhile: a limited sync replaced the cached
        timeline, and the page belongs to a gap that is gone."""
        async with self.write_lock:
            return self._prepend_events(room_id, events, from_token, prev_batch)

    def _prepend_events(
        self,
        room_id: str,
        events: list[dict[str, Any]],
        from_token: str,
        prev_batch: str | None,
    ) -> bool:
        db = self._db
        db.execute("BEGIN")
        try:
            if self.prev_batch(room_id) != from_token:
                db.execute("ROLLBACK")
                return False
            (bottom,) = db.execute(
                "SELECT COALESCE(MIN(pos), 1) FROM events WHERE room_id = ?", (room_id,)
            ).fetchone()
            rows = []
            for event in reversed(events):
                event_id = event.get("event_id")
                if not isinstance(event_id, str):
                    continue
                bottom -= 1
                rows.append((room_id, bottom, event_id, _dumps(event)))
            # An event cached already (the pages overlap) stays where it is.
            db.executemany(
                "INSERT OR IGNORE INTO events (room_id, pos, event_id, event) VALUES (?, ?, ?, ?)",
                rows,
            )
            db.execute("UPDATE rooms SET prev_batch = ? WHERE room_id = ?", (prev_batch, room_id))
            db.execute("COMMIT")
            return True
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def event_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- writing ---------------------------------------------------------------

    def commit_sync(self, write: SyncWrite) -> None:
        """Write one sync response and its token in one transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            for room_id, room in write.rooms.items():
                self._write_room(room_id, room)
            self._finish_sync(write)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def commit_sync_in_slices(self, write: SyncWrite, slice_seconds: float = 0.006) -> None:
        """`commit_sync` for the event loop: whenever writing took
        `slice_seconds`, what is written so far is committed and the loop
        runs (draws a frame) before the next rooms. The token goes in the
        last transaction, so a crash in between repeats this sync on the
        next start, and writing a sync twice changes nothing (events are
        keyed by id, state by type and key). Writers whose transaction
        spans awaits hold `write_lock`."""
        async with self.write_lock:
            db = self._db
            db.execute("BEGIN")
            try:
                deadline = time.perf_counter() + slice_seconds
                for room_id, room in write.rooms.items():
                    self._write_room(room_id, room)
                    if time.perf_counter() > deadline:
                        db.execute("COMMIT")
                        await asyncio.sleep(0)
                        db.execute("BEGIN")
                        deadline = time.perf_counter() + slice_seconds
                self._finish_sync(write)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _finish_sync(self, write: SyncWrite) -> None:
        db = self._db
        for room_id in write.removed_rooms:
            for table in ("rooms", "state", "events"):
                db.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))
        for event_type, content in write.account_data.items():
            self.set_account_data(event_type, content)
        self._set_meta("sync_token", write.next_batch)

    def _write_room(self, room_id: str, room: RoomWrite) -> None:
        db = self._db
        row = db.execute("SELECT summary FROM rooms WHERE room_id = ?", (room_id,)).fetchone()
        summary = _loads(row[0]) if row else {}
        if room.summary:
            summary.update(room.summary)
        db.execute(
            "INSERT INTO rooms (room_id, membership, summary) VALUES (?, ?, ?) "
            "ON CONFLICT(room_id) DO UPDATE SET membership = excluded.membership, "
            "summary = excluded.summary",
            (room_id, room.membership, _dumps(summary)),
        )
        if room.membership == "invite":
            # Invite state is a stripped snapshot: replace it wholesale.
            db.execute("DELETE FROM state WHERE room_id = ?", (room_id,))
        db.executemany(
            "INSERT INTO state (room_id, type, state_key, event) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(room_id, type, state_key) DO UPDATE SET event = excluded.event",
            [
                (room_id, event["type"], event["state_key"], _dumps(event))
                for event in room.state
                if isinstance(event.get("type"), str) and isinstance(event.get("state_key"), str)
            ],
        )
        if room.replace_timeline:
            db.execute("DELETE FROM events WHERE room_id = ?", (room_id,))
        if room.prev_batch is not None and (room.replace_timeline or row is None):
            db.execute(
                "UPDATE rooms SET prev_batch = ? WHERE room_id = ?",
                (room.prev_batch, room_id),
            )
        self._append_events(room_id, room.events)
        stamps = [e.get("origin_server_ts") for e in room.events]
        newest = max((t for t in stamps if isinstance(t, int)), default=0)
        if newest:
            db.execute(
                "UPDATE rooms SET last_ts = MAX(last_ts, ?) WHERE room_id = ?", (newest, room_id)
            )

    def _append_events(self, room_id: str, events: Iterable[dict[str, Any]]) -> None:
        db = self._db
        (top,) = db.execute(
            "SELECT COALESCE(MAX(pos), 0) FROM events WHERE room_id = ?", (room_id,)
        ).fetchone()
        rows = []
        for event in events:
            event_id = event.get("event_id")
            if not isinstance(event_id, str):
                continue
            top += 1
            rows.append((room_id, top, event_id, _dumps(event)))
        db.executemany(
            "INSERT INTO events (room_id, pos, event_id, event) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(room_id, event_id) DO UPDATE SET event = excluded.event",
            rows,
        )

    def set_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO account_data (type, content) VALUES (?, ?) "
            "ON CONFLICT(type) DO UPDATE SET content = excluded.content",
            (event_type, _dumps(content)),
        )

    def set_read_marker(self, room_id: str, event_id: str) -> None:
        self._db.execute("UPDATE rooms SET read_marker = ? WHERE room_id = ?", (event_id, room_id))
