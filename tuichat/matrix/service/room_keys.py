"""Room keys: recovery, key backup, key export/import, and the upkeep round
(key queries, key requests, backup uploads) run between syncs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tuichat.matrix.crypto.cross_signing import SECRET_NAMES
from tuichat.matrix.crypto.engine import CryptoEngine, ImportResult
from tuichat.matrix.crypto.recovery import RecoveryStatus
from tuichat.matrix.crypto.secret_storage import SecretStorageError
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.service.trust import DeviceTrust
from tuichat.matrix.transport.http import MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import Notice, RecoveryOffered

log = logging.getLogger(__name__)


class RoomKeys:
    """Recovery, key backup, key files, and the crypto upkeep."""

    def __init__(self, context: AccountContext, views: RoomViews, trust: DeviceTrust) -> None:
        self._context = context
        self._views = views
        self._trust = trust
        self._backup_problem = ""

    @property
    def crypto(self) -> CryptoEngine | None:
        return self._context.crypto

    async def upkeep(self) -> None:
        """One round of crypto upkeep (between syncs, and after set-up):
        what it decrypted is replaced in place, device news and a key backup
        problem are reported."""
        assert self.crypto is not None
        self._views.emit_redecrypted(await self.crypto.upkeep())
        self._trust.report_device_news()
        problem = self.crypto.backup.problem
        if problem and problem != self._backup_problem:
            self._context.emit(Notice(f"Key backup: {problem}", error=True))
        self._backup_problem = problem

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
        await self._adopt_cross_signing(key)
        await recovery.unlock_backup(key)
        result, redecrypted = await self.crypto.restore_backup(progress)
        self._views.emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        self._trust.report_device_news()
        return result

    async def _adopt_cross_signing(self, key: bytes) -> bool:
        """Take our cross-signing keys from secret storage and sign this
        device with them, so Element trusts it. Returns whether it did."""
        assert self.crypto is not None
        found = {}
        for usage, name in SECRET_NAMES.items():
            secret = await self.crypto.recovery.read_secret(key, name)
            if secret is not None:
                found[usage] = secret
        if not found:
            return False
        return await self.crypto.adopt_cross_signing_secrets(found)

    async def setup_recovery(
        self, passphrase: str | None = None, password: str | None = None
    ) -> str:
        """Create secret storage and a key backup and, on an account without
        cross-signing keys, create those too (the account password is needed
        to upload them) and sign this device; their private parts go into
        secret storage. Returns the recovery key, to be shown once."""
        assert self.crypto is not None
        crypto = self.crypto
        await crypto.refresh_own_identity()
        bootstrap = not crypto.cross_signing.has_identity(self._context.user_id)
        if bootstrap and not password:
            raise SecretStorageError(
                "this account has no cross-signing keys yet: the account password is "
                "needed to create them"
            )
        recovery_key, key, key_id = await crypto.recovery.setup(passphrase)
        if bootstrap:
            keys = await crypto.cross_signing.bootstrap(
                crypto.own_device_keys(), self._password_auth(password or "")
            )
            for usage, signing_key in keys.items():
                await crypto.recovery.store_secret(
                    key, key_id, SECRET_NAMES[usage], signing_key.secret
                )
        await self.upkeep()
        return recovery_key

    async def has_cross_signing(self) -> bool:
        assert self.crypto is not None
        await self.crypto.refresh_own_identity()
        return self.crypto.cross_signing.has_identity(self._context.user_id)

    def _password_auth(self, password: str) -> Callable[[str], Awaitable[dict[str, Any]]]:
        async def authenticate(session: str) -> dict[str, Any]:
            return {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self._context.user_id},
                "password": password,
                "session": session,
            }

        return authenticate

    async def offer_recovery(self) -> None:
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
            self._context.emit(RecoveryOffered(status.backup.count))

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
        self._views.emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        return result
