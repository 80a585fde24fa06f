"""Recovery, key backup and key export/import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from tuichat.matrix.crypto.engine import ImportResult
from tuichat.matrix.crypto.recovery import RecoveryStatus
from tuichat.matrix.events import (
    RecoveryOffered,
)
from tuichat.matrix.http import MatrixHttpError
from tuichat.matrix.network import NETWORK_ERRORS
from tuichat.matrix.service.base import (
    ServiceBase,
)

log = logging.getLogger(__name__)

OTHER_PROCESS_POLL = 2.0


class KeysMixin(ServiceBase):
    """Recovery, key backup, and key files."""

    async def recovery_status(self) -> RecoveryStatus:
        assert self.crypto is not None
        return await self.crypto.recovery.status()

    async def recover(
        self,
        *,
        recovery_key: str | None = None,
        passphrase: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportResult:
        """Unlock secret storage, take the backup key, restore every session
        and fill in what they unlock. A wrong key raises SecretStorageError
        and changes nothing."""
        assert self.crypto is not None
        recovery = self.crypto.recovery
        key = await recovery.unlock(recovery_key=recovery_key, passphrase=passphrase)
        await recovery.unlock_backup(key)
        result, redecrypted = await self.crypto.restore_backup(progress)
        self._emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        return result

    async def setup_recovery(self, passphrase: str | None = None) -> str:
        """Create secret storage and a key backup; returns the recovery key,
        to be shown once."""
        assert self.crypto is not None
        recovery_key, _key, _key_id = await self.crypto.recovery.setup(passphrase)
        await self._upkeep()
        return recovery_key

    async def _offer_recovery(self) -> None:
        """At the first start of a new device on an account with secret
        storage, ask once whether to recover encrypted history."""
        assert self.crypto is not None
        extras = self.crypto.extras
        if extras.get("recovery_offered") or self.crypto.backup.unlocked:
            return
        try:
            status = await self.crypto.recovery.status()
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("checking for secret storage failed: %s", error)
            return
        extras.set("recovery_offered", "1")
        if status.has_secret_storage and status.backup is not None:
            self.emit(RecoveryOffered(status.backup.count))

    async def _watch_other_processes(self) -> None:
        """Keys imported by another process (tuichat recover) reach us here."""
        while True:
            await asyncio.sleep(OTHER_PROCESS_POLL)
            if self.crypto is not None:
                self._emit_redecrypted(self.crypto.reload_if_changed())

    async def export_keys(self, path: Path, passphrase: str) -> int:
        """Export every room key this device holds; returns how many."""
        assert self.crypto is not None
        return await self.crypto.export_keys(path, passphrase)

    async def import_keys(
        self, text: str, passphrase: str, progress: Callable[[int, int], None] | None = None
    ) -> ImportResult:
        """Import a key export; placeholders the keys unlock fill in at once.
        Raises KeyFileError, changing nothing, for a wrong passphrase or a
        damaged file."""
        assert self.crypto is not None
        result, redecrypted = await self.crypto.import_keys(text, passphrase, progress)
        self._emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        return result
