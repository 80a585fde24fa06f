"""The key backup between syncs: checking it, looking up keys, restoring.

`key_backup.py` talks to the backup on the server; this module decides when:
every few minutes it checks the backup version is still the one we hold the
key for (and says what went wrong if not), looks up the sessions that
waiting events need, and uploads what the backup lacks. `restore` imports a
whole backup (`tuichat recover`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.key_backup import KeyBackup
from tuichat.matrix.crypto.key_export import ExportedSession
from tuichat.matrix.crypto.types import ImportResult, Progress, Redecrypted
from tuichat.matrix.crypto.undecryptable import UndecryptableEvents
from tuichat.matrix.transport.http import MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS

log = logging.getLogger(__name__)

ImportSessions = Callable[
    [list[ExportedSession], str, int], Awaitable[tuple[ImportResult, list[Redecrypted]]]
]

CHECK_SECONDS = 300.0


class BackupUpkeep:
    def __init__(
        self,
        backup: KeyBackup,
        extras: CryptoExtrasStore,
        waiting: UndecryptableEvents,
        import_sessions: ImportSessions,
        clock: Callable[[], float],
    ) -> None:
        self.backup = backup
        self.extras = extras
        self.waiting = waiting
        self.import_sessions = import_sessions
        self.clock = clock
        self.checked = 0.0  # when the backup version was last checked (clock)
        self._wanted: dict[str, str] = {}  # session id -> room id
        self._asked: set[str] = set()

    def want(self, session_id: str, room_id: str) -> None:
        """An event waits for this session: look it up once."""
        if session_id not in self._asked:
            self._wanted[session_id] = room_id

    async def upkeep(self) -> list[Redecrypted]:
        """Look up waiting sessions in the backup and upload what it lacks."""
        backup = self.backup
        now = self.clock()
        try:
            if not self.checked or now - self.checked > CHECK_SECONDS:
                self.checked = now
                known = self.extras.get("backup_version") if backup.unlocked else None
                version = await backup.fetch_version()
                if known and version is None:
                    backup.problem = f"key backup version {known} was deleted"
                elif known and version is not None and backup.public_key != version.public_key:
                    backup.problem = (
                        f"the key backup changed (now version {version.version}); "
                        "run `tuichat recover` to use the new one"
                    )
            if backup.version is None:
                return []
            results = await self._lookups()
            await backup.upload_new()
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("key backup upkeep failed: %s", error)
            return []
        return results

    async def _lookups(self) -> list[Redecrypted]:
        if not self.backup.unlocked or not self._wanted:
            return []
        wanted, self._wanted = self._wanted, {}
        found = []
        still_waiting = self.waiting.session_ids()
        for session_id, room_id in wanted.items():
            if session_id not in still_waiting:
                continue
            self._asked.add(session_id)
            session = await self.backup.fetch_session(room_id, session_id)
            if session is not None:
                found.append(session)
        if not found:
            return []
        _result, results = await self.import_sessions(found, "backup", 0)
        if self.backup.version is not None:
            self.backup.mark_backed_up((s.session_id for s in found), self.backup.version.version)
        return results

    async def restore(
        self, progress: Progress | None = None
    ) -> tuple[ImportResult, list[Redecrypted]]:
        """Import every session of the (unlocked) backup."""
        sessions, failed = await self.backup.download_all(progress)
        result, results = await self.import_sessions(sessions, "backup", failed)
        if self.backup.version is not None:
            self.backup.mark_backed_up(
                (s.session_id for s in sessions), self.backup.version.version
            )
        return result, results
