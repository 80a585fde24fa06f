"""Opening tuichat's own SQLite files: one way for every store it writes.

The cache, the outbox and the crypto extras store each open their file
here (nio's crypto store is nio's):

- `connect`: created private (mode 0600, the directory being the profile's
  0700 one; SQLite gives its -wal and -shm files the file's mode), in
  write-ahead-log mode, with the store's `synchronous` level;
- `apply_schema`: the schema version lives in SQLite's `user_version`. A new
  file gets the schema; an older one is brought up step by step (each step
  and its version bump in one transaction, so a crash leaves the old version
  or the new, never half); a file from a newer tuichat is refused, or for a
  cache started over. Files written before this helper have version 0.
- Checkpoints off the UI loop: SQLite normally checkpoints inside the commit
  that grows the log past a threshold: that commit then copies megabytes
  and syncs the file, tens of milliseconds on the event loop. A store that
  writes much turns automatic checkpoints off (`manual_checkpoints`) and
  reports what it writes to `BackgroundCheckpoints`; past a threshold a
  PASSIVE checkpoint runs on its own connection in a thread of its own
  (SQLite releases the GIL while it copies and syncs). SQLite itself
  checkpoints when the last connection closes.

This module imports neither nio nor any crypto library: the cache, which
the first frame reads, opens through it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tuichat.matrix.account.session import FILE_MODE, private_umask

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 5000  # rows, about 2 MB of cached events

Synchronous = Literal["NORMAL", "FULL"]
Step = Callable[[sqlite3.Connection], None]


class StoreVersionError(sqlite3.DatabaseError):
    """The file was written by a newer tuichat; the message says which."""


@dataclass(frozen=True)
class Schema:
    """A store's schema at `version`, and how older files reach it.

    `script` creates what is missing (CREATE ... IF NOT EXISTS), and runs on
    every open after the steps. `steps[n]` brings a file from version n to
    n + 1, inside a transaction (so it may not use executescript). `newer`:
    what to do with a file from a newer tuichat, "refuse" or "reset" (drop
    `tables` and start over: for a cache, which the next sync refills)."""

    version: int
    script: str
    steps: Mapping[int, Step] = field(default_factory=dict)
    newer: Literal["refuse", "reset"] = "refuse"
    tables: tuple[str, ...] = ()


def connect(
    path: Path, *, synchronous: Synchronous = "NORMAL", manual_checkpoints: bool = False
) -> sqlite3.Connection:
    """Open (creating it private) a store's file for the UI loop's thread."""
    with private_umask():
        db = sqlite3.connect(path, isolation_level=None)
        path.chmod(FILE_MODE)
        db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if manual_checkpoints:
        disable_automatic(db)
    return db


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def _set_version(db: sqlite3.Connection, version: int) -> None:
    db.execute(f"PRAGMA user_version = {int(version)}")


def apply_schema(db: sqlite3.Connection, schema: Schema, name: str) -> None:
    """Bring the open file to `schema` (see `Schema`); `name` is for messages."""
    current = user_version(db)
    fresh = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    if fresh:
        db.executescript(schema.script)
        _set_version(db, schema.version)
        return
    if current > schema.version:
        if schema.newer == "refuse":
            raise StoreVersionError(
                f"{name} was written by a newer tuichat (version {current}, this one "
                f"knows {schema.version}); run that version, or log out to start over"
            )
        log.info("%s is from a newer tuichat: starting it over", name)
        db.execute("BEGIN")
        drop_tables(db, schema.tables)
        _set_version(db, 0)
        db.execute("COMMIT")
        db.executescript(schema.script)
        _set_version(db, schema.version)
        return
    while current < schema.version:
        step = schema.steps.get(current)
        db.execute("BEGIN")
        try:
            if step is not None:
                step(db)
            current += 1
            _set_version(db, current)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    db.executescript(schema.script)


def drop_tables(db: sqlite3.Connection, tables: tuple[str, ...]) -> None:
    for table in tables:
        db.execute(f"DROP TABLE IF EXISTS {table}")


def table_exists(db: sqlite3.Connection, table: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return row is not None


# -- checkpoints off the UI loop --------------------------------------------------------


def disable_automatic(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA wal_autocheckpoint=0")


def writer_connection(path: Path) -> sqlite3.Connection:
    """A connection for a store's writer thread: commits reach the disk at
    checkpoints, it waits for a lock rather than failing, and it leaves
    checkpoints to `BackgroundCheckpoints`. What it deletes or overwrites
    (a redacted message, a replaced key) is zeroed in the file, not left in
    free pages (`secure_delete`)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA secure_delete=ON")
    db.execute("PRAGMA busy_timeout=10000")
    disable_automatic(db)
    return db


def _checkpoint(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        db.close()


class BackgroundCheckpoints:
    """Counts rows written (from any thread); past the threshold, one
    checkpoint runs on a thread of its own."""

    def __init__(self, path: Path, threshold: int = DEFAULT_THRESHOLD) -> None:
        self.path = path
        self.threshold = threshold
        self._rows = 0
        self._lock = threading.Lock()
        self._running = False

    def wrote(self, rows: int) -> None:
        with self._lock:
            self._rows += rows
            if self._rows < self.threshold or self._running:
                return
            self._rows = 0
            self._running = True
        threading.Thread(target=self._run, name="tuichat-checkpoint", daemon=True).start()

    def _run(self) -> None:
        try:
            _checkpoint(self.path)
        except sqlite3.Error as error:
            log.warning("checkpoint of %s failed: %s", self.path.name, error)
        finally:
            with self._lock:
                self._running = False
