"""Secrets shared between our own devices, and adopting our identity's keys.

After an emoji verification with one of our own devices, tuichat asks it
(`m.secret.request`) for the cross-signing private keys and the key-backup
key; the answers (`m.secret.send`, Olm-encrypted) are accepted only from
that verified device, and only for what we asked. The cross-signing keys,
from there or from secret storage (`recovery.py`), are adopted here: kept
if they match our identity, and the self-signing key signs this device so
other clients trust it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tuichat.matrix.crypto.cross_signing import SECRET_NAMES, CrossSigning
from tuichat.matrix.crypto.group_sessions import GroupSessions
from tuichat.matrix.crypto.key_backup import BACKUP_SECRET, BackupError, KeyBackup
from tuichat.matrix.crypto.nio_extensions import TuichatOlm
from tuichat.matrix.transport.http import MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS

log = logging.getLogger(__name__)


class SecretSharing:
    def __init__(
        self,
        olm: TuichatOlm,
        cross_signing: CrossSigning,
        backup: KeyBackup,
        groups: GroupSessions,
        is_verified: Callable[[Any], bool],
        refresh_own_identity: Callable[[], Awaitable[None]],
        devices_changed: set[str],
    ) -> None:
        self.olm = olm
        self.cross_signing = cross_signing
        self.backup = backup
        self.groups = groups
        self.is_verified = is_verified
        self.refresh_own_identity = refresh_own_identity
        self.devices_changed = devices_changed
        self._requests: dict[str, tuple[str, str]] = {}  # request id -> (name, device)

    def own_device_keys(self) -> dict[str, Any]:
        """This device's keys as the server holds them (self-signed)."""
        olm = self.olm
        own = self.cross_signing.identity(olm.user_id)
        if own is not None and olm.device_id in own.devices:
            return dict(own.devices[olm.device_id])
        return olm.signed_device_keys()

    async def adopt_cross_signing_secrets(self, secrets_by_usage: dict[str, str]) -> bool:
        """Keep the private keys that match our identity; with the SSK, sign
        this device so others (Element) trust it. Returns whether we signed."""
        if self.cross_signing.identity(self.olm.user_id) is None:
            await self.refresh_own_identity()
        for usage, secret in secrets_by_usage.items():
            self.cross_signing.remember_private(usage, secret)
        signed = await self.cross_signing.sign_own_device(self.own_device_keys())
        if signed:
            self.devices_changed.add(self.olm.user_id)
        return signed

    async def request_secrets(self, device_id: str) -> None:
        """m.secret.request for the cross-signing keys and the backup key,
        to one of our own devices that we just verified."""
        for name in [*SECRET_NAMES.values(), BACKUP_SECRET]:
            request_id = uuid.uuid4().hex
            self._requests[request_id] = (name, device_id)
            content = {
                "name": name,
                "action": "request",
                "requesting_device_id": self.olm.device_id,
                "request_id": request_id,
            }
            await self.groups.send_to_device(
                "m.secret.request", {self.olm.user_id: {device_id: content}}
            )

    async def secret_received(self, event: dict[str, Any]) -> None:
        """m.secret.send arrives Olm-encrypted; accept it only from our own
        verified device that we asked."""
        content = event.get("content") or {}
        request = self._requests.get(str(content.get("request_id")))
        secret = content.get("secret")
        if request is None or not isinstance(secret, str):
            return
        name, device_id = request
        device = self.olm.device_store[self.olm.user_id].get(device_id)
        if (
            event.get("sender") != self.olm.user_id
            or device is None
            or device.curve25519 != event.get("sender_key")
            or not self.is_verified(device)
        ):
            log.warning("ignoring a secret from a device we did not ask or do not trust")
            return
        del self._requests[str(content.get("request_id"))]
        usage = next((u for u, n in SECRET_NAMES.items() if n == name), None)
        if usage is not None:
            try:
                await self.adopt_cross_signing_secrets({usage: secret})
            except (MatrixHttpError, *NETWORK_ERRORS) as error:
                log.warning("signing this device failed: %s", error)
        elif name == BACKUP_SECRET:
            version = await self.backup.fetch_version()
            if version is not None:
                try:
                    self.backup.use_secret(secret, version)
                except BackupError as error:
                    log.warning("the shared backup key was not usable: %s", error)
