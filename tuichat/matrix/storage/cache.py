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
import concurrent.futures
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tuichat.matrix.content.convert import HIDDEN_RELATIONS
from tuichat.matrix.storage import sqlite_store
from tuichat.matrix.transport import fastjson

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
-- Added without a version bump: older caches gain it empty.
CREATE TABLE IF NOT EXISTS receipts (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
"""

_TABLES = ("meta", "rooms", "state", "events", "account_data", "receipts")


def _from_unversioned(db: sqlite3.Connection) -> None:
    """A cache written before versions were kept by SQLite: its own
    `schema_version` said which; another schema than the last one starts
    over (the next sync refills it)."""
    row = (
        db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if sqlite_store.table_exists(db, "meta")
        else None
    )
    if row is None or row[0] != "2":  # 2: rooms.last_ts
        sqlite_store.drop_tables(db, _TABLES)
    else:
        db.execute("DELETE FROM meta WHERE key = 'schema_version'")


# Another schema starts over rather than being migrated: a cache is refilled
# by the next sync.
SCHEMA = sqlite_store.Schema(
    version=1,
    script=_SCHEMA,
    steps={0: _from_unversioned},
    newer="reset",
    tables=_TABLES,
)

_dumps = fastjson.dumps
_loads = fastjson.loads


def _share_strings(event: dict[str, Any]) -> None:
    """Interns the strings thousands of rooms' state events repeat (types,
    user ids, memberships): one copy each instead of one per event."""
    for key in ("type", "state_key", "sender"):
        value = event.get(key)
        if isinstance(value, str):
            event[key] = sys.intern(value)
    content = event.get("content")
    membership = content.get("membership") if isinstance(content, dict) else None
    if isinstance(membership, str):
        content["membership"] = sys.intern(membership)  # type: ignore[index]


PAGE_CACHE_KIB = 1024

# (type, state key) pairs thousands of rooms repeat (their create and
# name events, a user's membership): one tuple each. Bounded, emptied when
# full.
_STATE_KEYS: dict[tuple[str, str], tuple[str, str]] = {}
_STATE_KEYS_LIMIT = 65536


def _state_key(event_type: str, state_key: str) -> tuple[str, str]:
    key = (event_type, state_key)
    found = _STATE_KEYS.get(key)
    if found is None:
        if len(_STATE_KEYS) >= _STATE_KEYS_LIMIT:
            _STATE_KEYS.clear()
        found = _STATE_KEYS[key] = key
    return found


@dataclass
class CachedRoom:
    """A room's membership, sync summary and state; its events are read
    separately (`load_events`), when the room is first shown."""

    room_id: str
    membership: str
    summary: dict[str, Any]
    state: dict[tuple[str, str], dict[str, Any]]  # by (type, state_key)


@dataclass
class RoomWrite:
    membership: str
    summary: dict[str, Any] | None = None
    state: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    replace_timeline: bool = False  # a limited sync: drop the cached timeline
    prev_batch: str | None = None
    receipts: dict[str, str] = field(default_factory=dict)  # user id -> event id


@dataclass
class SyncWrite:
    """Everything one sync response changes, written in one transaction."""

    next_batch: str
    rooms: dict[str, RoomWrite] = field(default_factory=dict)
    removed_rooms: list[str] = field(default_factory=list)
    account_data: dict[str, dict[str, Any]] = field(default_factory=dict)


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tuichat-cache"
        )
        self._writer: _Writer | None = None
        self._pending: concurrent.futures.Future[Any] | None = None
        self._closed = False
        self._db = sqlite_store.connect(self.path, manual_checkpoints=True)
        # 1 MiB of page cache for this connection (SQLite's default is 2):
        # reading every room's recent events at start-up would otherwise
        # leave the app holding half a megabyte more for pages the OS
        # caches anyway; reads measured no slower.
        self._db.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
        self.checkpoints = sqlite_store.BackgroundCheckpoints(self.path)
        sqlite_store.apply_schema(self._db, SCHEMA, "the cache")

    def close(self) -> None:
        """Finish the queued writes, then close both connections (once)."""
        if self._closed:
            return
        self._closed = True

        def close_writer(writer: _Writer) -> None:
            writer.close()

        if self._writer is not None:
            self._submit(close_writer)
        self._executor.shutdown(wait=True)
        self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

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

    def receipts(self, room_id: str) -> dict[str, str]:
        """Other members' read receipts in the room: user id -> event id."""
        rows = self._db.execute(
            "SELECT user_id, event_id FROM receipts WHERE room_id = ?", (room_id,)
        ).fetchall()
        return dict(rows)

    def read_marker(self, room_id: str) -> str | None:
        row = self._db.execute(
            "SELECT read_marker FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return None if row is None else row[0]

    def load_rooms(self) -> list[CachedRoom]:
        """Every room with its state. Each room's state events come from
        SQLite as one JSON array (one parse per room, not per event: a
        third less time for a thousand rooms at start-up)."""
        state_by_room: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for room_id, events in self._db.execute(
            "SELECT room_id, '[' || group_concat(event, ',') || ']' FROM state GROUP BY room_id"
        ):
            state: dict[tuple[str, str], dict[str, Any]] = {}
            for event in _loads(events):
                # Checked when written; a damaged file must not stop start-up.
                event_type, state_key = event.get("type"), event.get("state_key")
                if isinstance(event_type, str) and isinstance(state_key, str):
                    _share_strings(event)
                    state[_state_key(event["type"], event["state_key"])] = event
            state_by_room[room_id] = state
        return [
            CachedRoom(
                room_id=room_id,
                membership=membership,
                summary=_loads(summary),
                state=state_by_room.get(room_id, {}),
            )
            for room_id, membership, summary in self._db.execute(
                "SELECT room_id, membership, summary FROM rooms"
            ).fetchall()
        ]

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

    def load_event(self, room_id: str, event_id: str) -> dict[str, Any] | None:
        """One cached event of the room, by id."""
        row = self._db.execute(
            "SELECT event FROM events WHERE room_id = ? AND event_id = ?", (room_id, event_id)
        ).fetchone()
        return None if row is None else _loads(row[0])

    def prev_batch(self, room_id: str) -> str | None:
        """The token for /messages before the oldest cached event of the room
        (None: the cache reaches the room's beginning, or it is unknown)."""
        row = self._db.execute(
            "SELECT prev_batch FROM rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return None if row is None else row[0]

    def event_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- writing ---------------------------------------------------------------
    #
    # Every write runs on one worker thread with a connection of its own, in
    # the order it was asked for: SQLite releases the GIL while it updates
    # its pages, so the UI loop decrypts and draws while a sync is written.
    # A sync's events and its token still commit in one transaction. Reads
    # (on this thread's connection) see what was committed; `flushed()`
    # waits for every write asked for so far.

    def _submit(self, job: Callable[[_Writer], _T]) -> concurrent.futures.Future[_T]:
        future = self._executor.submit(self._run_job, job)
        self._pending = future
        return future

    def _run_job(self, job: Callable[[_Writer], _T]) -> _T:
        if self._writer is None:
            self._writer = _Writer(sqlite_store.writer_connection(self.path), self.checkpoints)
        return job(self._writer)

    def queue_sync(self, write: SyncWrite) -> concurrent.futures.Future[None]:
        """Write one sync response and its token (one transaction) behind the
        writes already queued; returns at once. A failed write is logged and
        the stored token removed, so the next start syncs from scratch
        rather than over a hole in the cache."""
        future = self._submit(lambda writer: writer.commit_sync(write))
        future.add_done_callback(self._check_write)
        return future

    def _check_write(self, future: concurrent.futures.Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            log.error("writing the cache failed: %s", error)
            self._submit(lambda writer: writer.forget_token())

    def commit_sync(self, write: SyncWrite) -> None:
        """`queue_sync`, waiting until it is written (tools and tests)."""
        self._submit(lambda writer: writer.commit_sync(write)).result()

    async def flushed(self) -> None:
        """Wait until every write queued so far is on disk."""
        pending = self._pending
        if pending is not None and not pending.done():
            await asyncio.wrap_future(pending)

    def prepend_events(
        self,
        room_id: str,
        events: list[dict[str, Any]],
        from_token: str,
        prev_batch: str | None,
    ) -> concurrent.futures.Future[bool]:
        """Queue older events (oldest first) from the /messages page fetched
        with `from_token`, below the cached ones, and the token for what lies
        before them, in one transaction. Nothing is written (the result is
        False) when the room's token changed before the write: a limited
        sync replaced the cached timeline, and the page belongs to a gap
        that is gone."""
        return self._submit(
            lambda writer: writer.prepend_events(room_id, events, from_token, prev_batch)
        )

    def set_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        self._submit(lambda writer: writer.set_account_data(event_type, content))

    def set_read_marker(self, room_id: str, event_id: str) -> None:
        self._submit(lambda writer: writer.set_read_marker(room_id, event_id))


class _Writer:
    """The writes, on the writer thread's connection."""

    def __init__(
        self, db: sqlite3.Connection, checkpoints: sqlite_store.BackgroundCheckpoints
    ) -> None:
        self._db = db
        self.checkpoints = checkpoints

    def close(self) -> None:
        self._db.close()

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def forget_token(self) -> None:
        self._db.execute("DELETE FROM meta WHERE key = 'sync_token'")

    def commit_sync(self, write: SyncWrite) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            for room_id, room in write.rooms.items():
                self._write_room(room_id, room)
            for room_id in write.removed_rooms:
                for table in ("rooms", "state", "events"):
                    db.execute(f"DELETE FROM {table} WHERE room_id = ?", (room_id,))
            for event_type, content in write.account_data.items():
                self.set_account_data(event_type, content)
            self._set_meta("sync_token", write.next_batch)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def prepend_events(
        self,
        room_id: str,
        events: list[dict[str, Any]],
        from_token: str,
        prev_batch: str | None,
    ) -> bool:
        db = self._db
        db.execute("BEGIN")
        try:
            row = db.execute(
                "SELECT prev_batch FROM rooms WHERE room_id = ?", (room_id,)
            ).fetchone()
            if (row[0] if row else None) != from_token:
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
            self.checkpoints.wrote(len(rows))
            return True
        except BaseException:
            db.execute("ROLLBACK")
            raise

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
        self._forget_redacted(room_id, room.events)
        if room.receipts:
            db.executemany(
                "INSERT INTO receipts (room_id, user_id, event_id) VALUES (?, ?, ?) "
                "ON CONFLICT(room_id, user_id) DO UPDATE SET event_id = excluded.event_id",
                [(room_id, user, event) for user, event in room.receipts.items()],
            )
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
        self.checkpoints.wrote(len(rows))

    def _forget_redacted(self, room_id: str, events: Iterable[dict[str, Any]]) -> None:
        """A redacted message's content (or ciphertext) is not kept on disk:
        the cached copy becomes what the server now serves, an empty
        content with the redaction in `unsigned`. A redacted edit, reaction
        or reference (a relation in the clear says so) is dropped instead:
        never shown on its own, taken back it is nothing at all, as it was
        live; its empty copy would come back as "message deleted"."""
        for event in events:
            if event.get("type") != "m.room.redaction":
                continue
            content = event.get("content")
            target = (content.get("redacts") if isinstance(content, dict) else None) or event.get(
                "redacts"
            )
            if not isinstance(target, str):
                continue
            row = self._db.execute(
                "SELECT event FROM events WHERE room_id = ? AND event_id = ?", (room_id, target)
            ).fetchone()
            if row is None:
                continue
            stored = _loads(row[0])
            if "state_key" in stored:
                continue  # state keeps some content (spec); the state table has it
            if _is_hidden_relation(stored):
                self._db.execute(
                    "DELETE FROM events WHERE room_id = ? AND event_id = ?", (room_id, target)
                )
                continue
            pruned = {
                key: stored[key]
                for key in ("event_id", "type", "sender", "origin_server_ts", "room_id")
                if key in stored
            }
            pruned["content"] = {}
            pruned["unsigned"] = {"redacted_because": event}
            self._db.execute(
                "UPDATE events SET event = ? WHERE room_id = ? AND event_id = ?",
                (_dumps(pruned), room_id, target),
            )

    def set_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO account_data (type, content) VALUES (?, ?) "
            "ON CONFLICT(type) DO UPDATE SET content = excluded.content",
            (event_type, _dumps(content)),
        )

    def set_read_marker(self, room_id: str, event_id: str) -> None:
        self._db.execute("UPDATE rooms SET read_marker = ? WHERE room_id = ?", (event_id, room_id))


def _is_hidden_relation(event: dict[str, Any]) -> bool:
    """An edit, reaction or reference by the relation in its clear content."""
    content = event.get("content")
    relates = content.get("m.relates_to") if isinstance(content, dict) else None
    return isinstance(relates, dict) and relates.get("rel_type") in HIDDEN_RELATIONS
