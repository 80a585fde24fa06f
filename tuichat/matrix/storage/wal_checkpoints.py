"""Write-ahead-log checkpoints off the UI loop, for tuichat's SQLite files.

SQLite normally checkpoints inside the commit that grows the log past a
threshold: that commit then copies megabytes and syncs the file, tens of
milliseconds on the event loop. The stores turn automatic checkpoints off
and report what they write here; past `threshold` rows a PASSIVE checkpoint
runs on its own connection in a thread of its own (SQLite releases the GIL
while it copies and syncs). SQLite itself checkpoints when the last
connection closes.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 5000  # rows, about 2 MB of cached events


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
