"""Room keys: recovery, key backup, key export/import, and the upkeep round
(key queries, key requests, backup uploads) run between syncs.

The calls the UI makes return their value or a `Failed` sentence (a wrong
key, a damaged file, the server out of reach); they raise only for bugs.
On accounts of OAuth 2.0 API servers, creating cross-signing keys may need
an approval in the browser instead of the password: `approve(url)` shows
the page and returns once the person says it is done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuichat.matrix.account.oauth_uia import (
    ApprovalRequired,
    BrowserApproval,
    NoPasswordStage,
    PasswordAuth,
)
from tuichat.matrix.crypto.cross_signing import SECRET_NAMES
from tuichat.matrix.crypto.engine import CryptoEngine, ImportResult
from tuichat.matrix.crypto.key_backup import BackupError
from tuichat.matrix.crypto.key_export import KeyFileError
from tuichat.matrix.crypto.recovery import RecoveryStatus
from tuichat.matrix.crypto.secret_storage import SecretStorageError
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.api import Approve
from tuichat.matrix.service.calls import SERVER_ERRORS, server_failure
from tuichat.matrix.service.outcome import Failed, Outcome
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.service.trust import DeviceTrust
from tuichat.model.events import Notice, RecoveryOffered

if TYPE_CHECKING:
    from tuichat.matrix.service.dehydrated_device import DehydratedDevice

log = logging.getLogger(__name__)


class RoomKeys:
    """Recovery, key backup, key files, and the crypto upkeep."""

    def __init__(self, context: AccountContext, views: RoomViews, trust: DeviceTrust) -> None:
        self._context = context
        self._views = views
        self._trust = trust
        self._backup_problem = ""
        # Dehydrated devices (issue 26), set by wiring.
        self.dehydration: DehydratedDevice | None = None

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
        if self.dehydration is not None:
            await self.dehydration.upkeep()

    async def recovery_status(self) -> Outcome[RecoveryStatus]:
        assert self.crypto is not None
        try:
            return await self.crypto.recovery.status()
        except SERVER_ERRORS as error:
            return server_failure(error)

    async def recover(
        self,
        *,
        recovery_key: str | None = None,
        passphrase: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Outcome[ImportResult]:
        """Unlock secret storage, take the backup key, restore every session
        and fill in what they unlock. A wrong key fails and changes nothing."""
        try:
            return await self._recover(recovery_key, passphrase, progress)
        except (SecretStorageError, BackupError) as error:
            return Failed(str(error))
        except SERVER_ERRORS as error:
            return server_failure(error)

    async def _recover(
        self,
        recovery_key: str | None,
        passphrase: str | None,
        progress: Callable[[int, int], None] | None,
    ) -> ImportResult:
        assert self.crypto is not None
        recovery = self.crypto.recovery
        key = await recovery.unlock(recovery_key=recovery_key, passphrase=passphrase)
        await self._adopt_cross_signing(key)
        await recovery.unlock_backup(key)
        result, redecrypted = await self.crypto.restore_backup(progress)
        self._views.emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        if self.dehydration is not None:
            await self.dehydration.recovered(key)
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
        self,
        passphrase: str | None = None,
        password: str | None = None,
        approve: Approve | None = None,
    ) -> Outcome[str]:
        """Create secret storage and a key backup and, on an account without
        cross-signing keys, create those too and sign this device; their
        private parts go into secret storage. Uploading new cross-signing
        keys may need the account password or, on OAuth 2.0 API servers, an
        approval in the browser (`approve`). Returns the recovery key, to be
        shown once."""
        try:
            return await self._setup_recovery(passphrase, password, approve)
        except (SecretStorageError, BackupError, ApprovalRequired, NoPasswordStage) as error:
            return Failed(str(error))
        except SERVER_ERRORS as error:
            return server_failure(error)

    async def _setup_recovery(
        self, passphrase: str | None, password: str | None, approve: Approve | None
    ) -> str:
        assert self.crypto is not None
        crypto = self.crypto
        await crypto.refresh_own_identity()
        bootstrap = not crypto.cross_signing.has_identity(self._context.user_id)
        oauth = bool(self._context.session.oauth_issuer)
        if bootstrap and not password and not oauth:
            raise SecretStorageError(
                "this account has no cross-signing keys yet: the account password is "
                "needed to create them"
            )
        recovery_key, key, key_id = await crypto.recovery.setup(passphrase)
        if bootstrap:
            keys = await crypto.cross_signing.bootstrap(
                crypto.own_device_keys(), self._upload_auth(password, approve)
            )
            for usage, signing_key in keys.items():
                await crypto.recovery.store_secret(
                    key, key_id, SECRET_NAMES[usage], signing_key.secret
                )
        if self.dehydration is not None:
            await self.dehydration.recovered(key)
        await self.upkeep()
        return recovery_key

    async def has_cross_signing(self) -> Outcome[bool]:
        assert self.crypto is not None
        try:
            await self.crypto.refresh_own_identity()
        except SERVER_ERRORS as error:
            return server_failure(error)
        return self.crypto.cross_signing.has_identity(self._context.user_id)

    def _upload_auth(self, password: str | None, approve: Approve | None) -> PasswordAuth:
        """How the cross-signing upload answers user-interactive auth: the
        password stage, and on OAuth 2.0 API accounts an approval in the
        browser when the server asks for one."""
        password_auth = self._password_auth(password) if password else None
        if approve is not None:
            return BrowserApproval(approve, password_auth)
        # Without `approve`, an approval asked for fails with ApprovalRequired.
        return password_auth or _no_password

    def _password_auth(self, password: str) -> PasswordAuth:
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
        status = await self.recovery_status()
        if isinstance(status, Failed):
            log.warning("checking for secret storage failed: %s", status)
            return
        extras.set("recovery_offered", "1")
        if status.has_secret_storage and status.backup is not None:
            self._context.emit(RecoveryOffered(status.backup.count))

    async def export_keys(self, path: Path, passphrase: str) -> Outcome[int]:
        """Export every room key this device holds; returns how many."""
        assert self.crypto is not None
        try:
            return await self.crypto.export_keys(path, passphrase)
        except KeyFileError as error:
            return Failed(str(error))
        except OSError as error:  # a full disk: the target, not a temp file
            return Failed(f"cannot write {path}: {error.strerror or error}")

    async def import_keys(
        self, text: str, passphrase: str, progress: Callable[[int, int], None] | None = None
    ) -> Outcome[ImportResult]:
        """Import a key export; placeholders the keys unlock fill in at once.
        A wrong passphrase or a damaged file fails, changing nothing."""
        assert self.crypto is not None
        try:
            result, redecrypted = await self.crypto.import_keys(text, passphrase, progress)
        except KeyFileError as error:
            return Failed(str(error))
        self._views.emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        return result


async def _no_password(session: str) -> dict[str, Any]:
    raise NoPasswordStage("the server asks for your account password to create the keys")
