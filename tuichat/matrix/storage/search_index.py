"""The local search index of encrypted rooms' messages, encrypted at rest.

The server cannot search what it cannot read, so tuichat indexes the
messages it decrypted itself: their text (the body, a file's name, the
formatted body's plain text), who sent them, when, and whether they carry
a file, an image or a link. The index is an SQLite FTS5 table inside an
SQLCipher database (`search.db` in the profile): every page of the file,
of its write-ahead log and of its rollback journal is AES-256 encrypted,
with a key derived from the profile's key (`sealing.derive_key`, purpose
"search index"). Temporary tables and sorts stay in memory
(`temp_store=MEMORY`), so no message text reaches the disk readable.
SQLCipher's `cipher_memory_security` (wiping freed memory) stays off: it
made queries 17 times slower, and it guards RAM, not the disk, in a
process whose screen holds the same messages decrypted anyway.

Words are found case- and accent-blind in any script (the `unicode61`
tokenizer with `remove_diacritics 2`) and by prefix.

Edits are kept beside the message they edit: the text found is that of the
newest edit by the message's sender (the original's once that edit is
redacted). A redacted message is removed and remembered, so a copy of it
read later (an older page) is not indexed again.

The index can always be rebuilt from the cache and the server, so anything
that keeps it from opening (another profile key, damage, another schema)
starts it over empty (`SearchIndex.rebuilt` says so) rather than failing.

Every call runs on one thread (the service's index worker): the connection
is made there and used nowhere else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlcipher3

from tuichat.matrix.account.session import FILE_MODE, private_umask
from tuichat.matrix.storage.sealing import Purpose, derive_key

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
SUFFIXES = ("", "-wal", "-shm", "-journal")

# What a message carries, as bits (the `has:` filters).
HAS_FILE = 1
HAS_IMAGE = 2
HAS_LINK = 4
HAS_BITS = {"file": HAS_FILE, "image": HAS_IMAGE, "link": HAS_LINK}

# A message's row number is its timestamp (ms) times SAME_MS, plus its
# place among those of the same millisecond: the full-text table then reads
# its matches newest first by row number, and a page of the newest stops
# after the page instead of sorting every match (a word in half of 100,000
# messages: 170 ms sorted, under 1 ms this way).
SAME_MS = 1024


def row_base(timestamp: int) -> int:
    return max(timestamp, 0) * SAME_MS


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,  -- the row of `text` holding its words: see row_base
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    ts INTEGER NOT NULL,
    kinds INTEGER NOT NULL,
    body TEXT NOT NULL,  -- the original's text (edits are in `edits`)
    UNIQUE (room_id, event_id)
);
CREATE TABLE IF NOT EXISTS edits (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    target TEXT NOT NULL,
    sender TEXT NOT NULL,
    ts INTEGER NOT NULL,
    kinds INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edits_by_target ON edits (room_id, target);
CREATE TABLE IF NOT EXISTS redacted (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS text USING fts5(
    body, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
"""


@dataclass(frozen=True, slots=True)
class IndexedMessage:
    room_id: str
    event_id: str
    sender: str
    sender_name: str
    timestamp: int
    text: str
    kinds: int = 0


@dataclass(frozen=True, slots=True)
class IndexedEdit:
    room_id: str
    event_id: str
    target: str
    sender: str
    timestamp: int
    text: str
    kinds: int = 0


@dataclass(frozen=True, slots=True)
class IndexHit:
    room_id: str
    event_id: str
    sender: str
    sender_name: str
    timestamp: int
    text: str


@dataclass(frozen=True, slots=True)
class IndexFilter:
    """What a search keeps besides matching its words; empty: everything."""

    rooms: frozenset[str] | None = None  # None: every room
    senders: frozenset[str] = frozenset()
    kinds: int = 0  # bits every hit must carry
    before_ms: int | None = None
    after_ms: int | None = None


def search_sql(
    match: str, where: IndexFilter, *, limit: int = 50, offset: int = 0
) -> tuple[str, list[Any]]:
    """The query of `SearchIndex.search` (also run on plain SQLite by the
    benchmark)."""
    # Rows are numbered newest last (`row_base`): with words, the full-text
    # table yields its matches newest first and the query stops after the
    # page (CROSS JOIN keeps the planner from walking a room's messages and
    # matching each instead); without words, the messages table is read
    # the same way.
    if match:
        sql = [
            "SELECT m.id, m.room_id, m.event_id, m.sender, m.sender_name, m.ts"
            " FROM text t CROSS JOIN messages m ON m.id = t.rowid WHERE text MATCH ?"
        ]
        params: list[Any] = [match]
        row = "t.rowid"
    else:
        sql = [
            "SELECT m.id, m.room_id, m.event_id, m.sender, m.sender_name, m.ts"
            " FROM messages m WHERE 1"
        ]
        params = []
        row = "m.id"
    if where.rooms is not None:
        sql.append(f"AND m.room_id IN ({','.join('?' * len(where.rooms))})")
        params.extend(sorted(where.rooms))
    if where.senders:
        sql.append(f"AND m.sender IN ({','.join('?' * len(where.senders))})")
        params.extend(sorted(where.senders))
    if where.kinds:
        sql.append("AND m.kinds & ? = ?")
        params.extend([where.kinds, where.kinds])
    if where.before_ms is not None:
        sql.append(f"AND {row} < ?")
        params.append(row_base(where.before_ms))
    if where.after_ms is not None:
        sql.append(f"AND {row} >= ?")
        params.append(row_base(where.after_ms))
    sql.append(f"ORDER BY {row} DESC LIMIT ? OFFSET ?")
    params.extend([limit, offset])
    return " ".join(sql), params


def page_text(db: Any, ids: list[int]) -> dict[int, str]:
    """The current text of a page of results, by row."""
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return dict(db.execute(f"SELECT rowid, body FROM text WHERE rowid IN ({marks})", ids))


def remove_index_files(path: Path) -> None:
    """Delete the index and its log and journal (logout, a rebuild)."""
    for suffix in SUFFIXES:
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _connect(path: Path, key: bytes) -> Any:
    with private_umask():
        db = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            db.execute("PRAGMA cipher_memory_security = OFF")  # see the docstring
            db.execute("PRAGMA temp_store = MEMORY")
            # Raises when the key does not open the file (or it is no database).
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            db.execute("PRAGMA journal_mode = WAL")
        except sqlcipher3.DatabaseError:
            db.close()
            raise
        path.chmod(FILE_MODE)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA cache_size = -32000")  # 32 MB of decrypted pages
    return db


class SearchIndex:
    """One profile's index; see the module's docstring."""

    def __init__(self, path: Path, profile_key: str) -> None:
        self.path = path
        self.rebuilt = False  # the file there could not be used: started over
        key = derive_key(profile_key, Purpose.SEARCH_INDEX)
        existed = path.exists()
        try:
            self._db = _connect(path, key)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if existed and version != SCHEMA_VERSION:
                self._db.close()
                raise sqlcipher3.DatabaseError(f"schema version {version}")
        except sqlcipher3.DatabaseError as error:
            log.warning("the search index cannot be used (%s): it is built again", error)
            remove_index_files(path)
            self._db = _connect(path, key)
            self.rebuilt = existed
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # -- bookkeeping -------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM messages").fetchone()[0])

    def known(self, room_id: str, event_ids: Sequence[str]) -> set[str]:
        """Which of these events are indexed (or were redacted)."""
        known: set[str] = set()
        for start in range(0, len(event_ids), 500):
            chunk = list(event_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for table in ("messages", "redacted"):
                rows = self._db.execute(
                    f"SELECT event_id FROM {table} WHERE room_id = ? AND event_id IN ({marks})",
                    (room_id, *chunk),
                )
                known.update(row[0] for row in rows)
        return known

    # -- writing -----------------------------------------------------------------

    def write(
        self,
        messages: Iterable[IndexedMessage] = (),
        edits: Iterable[IndexedEdit] = (),
        redactions: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Add messages and edits, remove redacted events, in one transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            touched: set[tuple[str, str]] = set()
            for room_id, event_id in redactions:
                self._redact(room_id, event_id, touched)
            for message in messages:
                if self._is_redacted(message.room_id, message.event_id):
                    continue
                self._put_message(message)
                touched.add((message.room_id, message.event_id))
            for edit in edits:
                if self._is_redacted(edit.room_id, edit.event_id):
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO edits"
                    " (room_id, event_id, target, sender, ts, kinds, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        edit.room_id,
                        edit.event_id,
                        edit.target,
                        edit.sender,
                        edit.timestamp,
                        edit.kinds,
                        edit.text,
                    ),
                )
                touched.add((edit.room_id, edit.target))
            for room_id, event_id in touched:
                self._refresh(room_id, event_id)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _put_message(self, message: IndexedMessage) -> None:
        db = self._db
        row = db.execute(
            "SELECT id FROM messages WHERE room_id = ? AND event_id = ?",
            (message.room_id, message.event_id),
        ).fetchone()
        values = (
            message.sender,
            message.sender_name,
            message.timestamp,
            message.kinds,
            message.text,
        )
        if row is not None:
            db.execute(
                "UPDATE messages SET sender = ?, sender_name = ?, ts = ?, kinds = ?, body = ?"
                " WHERE id = ?",
                (*values, row[0]),
            )
            return
        base = row_base(message.timestamp)
        (top,) = db.execute(
            "SELECT max(id) FROM messages WHERE id BETWEEN ? AND ?", (base, base + SAME_MS - 1)
        ).fetchone()
        rowid = base if top is None else top + 1
        if top is not None and rowid >= base + SAME_MS:
            return  # a thousand messages in one millisecond: the rest are not indexed
        db.execute(
            "INSERT INTO messages (id, room_id, event_id, sender, sender_name, ts, kinds, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rowid, message.room_id, message.event_id, *values),
        )

    def _is_redacted(self, room_id: str, event_id: str) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM redacted WHERE room_id = ? AND event_id = ?", (room_id, event_id)
            ).fetchone()
            is not None
        )

    def _redact(self, room_id: str, event_id: str, touched: set[tuple[str, str]]) -> None:
        db = self._db
        db.execute(
            "INSERT OR IGNORE INTO redacted (room_id, event_id) VALUES (?, ?)", (room_id, event_id)
        )
        row = db.execute(
            "SELECT id FROM messages WHERE room_id = ? AND event_id = ?", (room_id, event_id)
        ).fetchone()
        if row is not None:
            db.execute("DELETE FROM text WHERE rowid = ?", (row[0],))
            db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            db.execute("DELETE FROM edits WHERE room_id = ? AND target = ?", (room_id, event_id))
            touched.discard((room_id, event_id))
        edit = db.execute(
            "SELECT target FROM edits WHERE room_id = ? AND event_id = ?", (room_id, event_id)
        ).fetchone()
        if edit is not None:
            db.execute("DELETE FROM edits WHERE room_id = ? AND event_id = ?", (room_id, event_id))
            touched.add((room_id, edit[0]))

    def _refresh(self, room_id: str, event_id: str) -> None:
        """Put the message's current text (its newest valid edit's, else its
        own) into the full-text table."""
        db = self._db
        row = db.execute(
            "SELECT id, sender, body FROM messages WHERE room_id = ? AND event_id = ?",
            (room_id, event_id),
        ).fetchone()
        if row is None:
            return  # an edit of a message not indexed (yet): kept for it
        rowid, sender, body = row
        edit = db.execute(
            "SELECT body FROM edits WHERE room_id = ? AND target = ? AND sender = ?"
            " ORDER BY ts DESC, event_id DESC LIMIT 1",
            (room_id, event_id, sender),
        ).fetchone()
        if edit is not None:
            body = edit[0]
        db.execute("INSERT OR REPLACE INTO text (rowid, body) VALUES (?, ?)", (rowid, body))

    def optimize(self) -> None:
        """Merge the full-text index's segments into one (after a large
        build: queries then read one b-tree per word, not one per batch)."""
        self._db.execute("INSERT INTO text (text) VALUES ('optimize')")

    # -- searching ---------------------------------------------------------------

    def search(
        self, match: str, where: IndexFilter, *, limit: int = 50, offset: int = 0
    ) -> list[IndexHit]:
        """Messages matching the FTS5 expression `match` ("": any) and the
        filter, newest first."""
        sql, params = search_sql(match, where, limit=limit, offset=offset)
        started = time.perf_counter()
        rows = self._db.execute(sql, params).fetchall()
        texts = page_text(self._db, [row[0] for row in rows])
        log.debug("search: %d hits in %.1f ms", len(rows), (time.perf_counter() - started) * 1e3)
        return [IndexHit(*row[1:], texts.get(row[0], "")) for row in rows]
