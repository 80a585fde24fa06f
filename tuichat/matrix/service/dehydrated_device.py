"""Dehydrated devices (MSC3814): keeping one on the server, and reading it on
a new login.

With recovery set up, tuichat keeps a dehydrated device: a device whose
private keys the server stores, encrypted with the dehydration key, which
lives in secret storage as `org.matrix.msc3814` (as Element keeps it). It
receives room keys while none of your devices is signed in. When a new
login enters the recovery key (`RoomKeys.recover`), tuichat reads the key
from secret storage, rehydrates the device, fetches the to-device messages
it received (page by page), keeps the room keys they carry, deletes it and
uploads a new one. When the server fails on the way, the device is left as
it is and read again from the upkeep. The device is replaced every week and whenever the key
this device holds is not the one the current device was made with.

This device keeps the dehydration key in the profile, sealed
(`storage/sealing.py`), to replace the device without asking for the
recovery key. Before each replacement the key in secret storage is compared
with the one it came from: when another device changed it, the copy here is
dropped (and the person asked for the recovery key) rather than used to make
a device nobody else could open.

`/dehydration on|off` is kept in the profile (on unless turned off); off
deletes the device on the server. Failures are told as notices and logged
(never the key); they never stop the sync or the recovery around them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from tuichat.matrix.crypto.cross_signing import SELF_SIGNING
from tuichat.matrix.crypto.dehydration import (
    SECRET_NAME,
    UNSTABLE_PREFIX,
    DehydrationError,
    RehydratedDevice,
    account_from_device_data,
    import_received_keys,
    key_from_secret,
    key_to_secret,
    new_device,
    new_key,
)
from tuichat.matrix.crypto.engine import CryptoEngine
from tuichat.matrix.crypto.secret_storage import SecretStorageError
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.calls import SERVER_ERRORS, server_failure
from tuichat.matrix.service.outcome import Failed, Outcome
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.storage.sealing import Purpose, Sealer, SealError
from tuichat.matrix.transport.http import MatrixHttpError, path_segment
from tuichat.model.dehydration import DehydrationState
from tuichat.model.events import Notice

log = logging.getLogger(__name__)

REPLACE_AFTER_MS = 7 * 24 * 3600 * 1000  # Element's interval
CHECK_EVERY_MS = 3600 * 1000  # how often the upkeep looks whether a replacement is due
RETRY_READ_MS = 300 * 1000  # how soon a read the server interrupted is tried again
MAX_EVENT_PAGES = 1000  # a bound on a server that keeps answering next_batch

# Entries of the crypto extras store (the profile).
SETTING = "dehydration"  # "off", or on
KEY = "dehydration_key"  # sealed: the dehydration key, base64
KEY_ORIGIN = "dehydration_key_origin"  # digest of the secret storage entry it came from
MADE_WITH = "dehydration_made_with"  # digest of the key the current device was made with
MADE_AT = "dehydration_made_at_ms"
UNREAD = "dehydration_unread"  # the device a failure kept from being read, to read again

ERRORS = (DehydrationError, SecretStorageError, SealError, *SERVER_ERRORS)


class Unsupported(Exception):
    """The server has no MSC3814 endpoints."""


class ReadLater(Exception):
    """The device a failure kept from being read is still unread (told)."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _origin(content: dict[str, Any] | None) -> str:
    """A digest of a secret storage entry (its ciphertext: public data)."""
    encrypted = (content or {}).get("encrypted")
    return _digest(json.dumps(encrypted, sort_keys=True).encode()) if encrypted else ""


class DehydratedDevice:
    """The dehydrated device of this account, from this device's side."""

    def __init__(
        self,
        context: AccountContext,
        views: RoomViews,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._context = context
        self._views = views
        self._clock = clock
        self._next_check_ms = 0
        self._told = ""
        # One change at a time: /recover, /dehydration and the upkeep's
        # replacement would otherwise upload two devices at once.
        self._lock = asyncio.Lock()
        # Events asked for per page of the device's to-device messages (None:
        # the server's default, 100 on Synapse).
        self.events_page: int | None = None

    @property
    def crypto(self) -> CryptoEngine:
        assert self._context.crypto is not None
        return self._context.crypto

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _sealer(self) -> Sealer:
        return Sealer(self._context.profile.pickle_key(), Purpose.DEHYDRATION_KEY)

    @property
    def enabled(self) -> bool:
        return self.crypto.extras.get(SETTING) != "off"

    # -- the key, as this device holds it ---------------------------------------------

    def _held_key(self) -> bytes | None:
        def no_legacy(_stored: str) -> str:
            raise SealError("not a sealed dehydration key")

        try:
            secret = self.crypto.extras.get_sealed(KEY, self._sealer(), no_legacy)
            return key_from_secret(secret) if secret else None
        except (SealError, DehydrationError) as error:
            log.warning("the stored dehydration key is unusable (%s); forgetting it", error)
            self._forget_key()
            return None

    def _hold_key(self, key: bytes, content: dict[str, Any] | None) -> None:
        extras = self.crypto.extras
        extras.set_sealed(KEY, self._sealer(), key_to_secret(key))
        extras.set(KEY_ORIGIN, _origin(content))

    def _forget_key(self) -> None:
        self.crypto.extras.set(KEY, "")
        self.crypto.extras.set(KEY_ORIGIN, "")

    # -- the server -----------------------------------------------------------------------

    async def _server_device(self) -> tuple[str, dict[str, Any]] | None:
        """(device id, device data) of the dehydrated device, None if there is
        none; Unsupported if the server cannot keep one."""
        try:
            reply = await self.crypto.http.request("GET", f"{UNSTABLE_PREFIX}/dehydrated_device")
        except MatrixHttpError as error:
            if error.errcode == "M_NOT_FOUND":
                return None
            if error.errcode == "M_UNRECOGNIZED" or error.status in (404, 405):
                raise Unsupported from None
            raise
        device_id, data = reply.get("device_id"), reply.get("device_data")
        if not isinstance(device_id, str) or not isinstance(data, dict):
            raise DehydrationError("the server's dehydrated device is malformed")
        return device_id, data

    async def _delete_on_server(self) -> None:
        try:
            await self.crypto.http.request("DELETE", f"{UNSTABLE_PREFIX}/dehydrated_device")
        except MatrixHttpError as error:
            if error.errcode not in ("M_NOT_FOUND", "M_UNRECOGNIZED"):
                raise

    async def _upload_new(self, key: bytes) -> str:
        crypto = self.crypto
        ssk = crypto.cross_signing.private.get(SELF_SIGNING)
        if ssk is None:
            raise DehydrationError(
                "this device does not hold your self-signing key, so it cannot vouch for a "
                "dehydrated device (enter your recovery key with /recover)"
            )
        device = new_device(self._context.user_id, key, ssk)
        await crypto.http.request("PUT", f"{UNSTABLE_PREFIX}/dehydrated_device", device.body)
        crypto.extras.set(MADE_WITH, _digest(key))
        crypto.extras.set(MADE_AT, str(self._now_ms()))
        # Our device list changed: see the new device as others will.
        crypto.olm.users_for_key_query.add(self._context.user_id)
        log.info("uploaded a new dehydrated device")
        self._told = ""  # a later failure is told again
        return device.device_id

    # -- rehydrating ----------------------------------------------------------------------

    async def _rehydrate(self, device_id: str, device_data: dict[str, Any], key: bytes) -> int:
        """Keep the room keys the device received; returns how many it had."""
        crypto = self.crypto
        account = account_from_device_data(device_data, key, device_id)
        device = RehydratedDevice(self._context.user_id, device_id, account)
        path = f"{UNSTABLE_PREFIX}/dehydrated_device/{path_segment(device_id)}/events"
        since: str | None = None
        received, events_seen = [], 0
        for _page in range(MAX_EVENT_PAGES):
            query = {"from": since} if since else {}
            if self.events_page is not None:
                query["limit"] = str(self.events_page)
            reply = await crypto.http.request("GET", path, query=query or None)
            events = reply.get("events")
            events = events if isinstance(events, list) else []
            events_seen += len(events)
            received.extend(device.room_keys(events))
            next_batch = reply.get("next_batch")
            if not events or not isinstance(next_batch, str) or next_batch == since:
                break
            since = next_batch
        imported = import_received_keys(crypto.olm, received)
        self._views.emit_redecrypted(crypto.redecryption.keys_arrived())
        crypto.extras.flush()
        log.info(
            "rehydrated a device: %d to-device events, %d room keys (%d new), %d undecryptable",
            events_seen,
            len(received),
            imported,
            device.undecryptable,
        )
        return len(received)

    # -- what the service calls -------------------------------------------------------------

    async def recovered(self, storage_key: bytes) -> None:
        """Secret storage was opened with `storage_key` (a new login's
        /recover): rehydrate the dehydrated device, then keep a new one."""
        try:
            async with self._lock:
                await self._recovered(storage_key)
        except Unsupported:
            log.info("the server cannot keep dehydrated devices")
        except ERRORS as error:
            self._tell(error)
        except Exception as error:  # never the recovery's undoing
            log.exception("dehydrated device: unexpected failure")
            self._tell(error)

    async def _recovered(self, storage_key: bytes) -> None:
        crypto = self.crypto
        recovery = crypto.recovery
        content = await crypto.http.account_data(SECRET_NAME)
        secret = await recovery.read_secret(storage_key, SECRET_NAME)
        key = key_from_secret(secret) if secret is not None else None
        if key is not None:
            self._hold_key(key, content)
        server = await self._server_device()
        if server is not None and key is not None and not await self._read(server, key):
            return
        if not self.enabled:
            return
        if key is None:
            description = await recovery.default_key()
            if description is None:
                return
            key = new_key()
            await recovery.store_secret(
                storage_key, description.key_id, SECRET_NAME, key_to_secret(key)
            )
            self._hold_key(key, await crypto.http.account_data(SECRET_NAME))
        await self._upload_new(key)

    async def _read(self, server: tuple[str, dict[str, Any]], key: bytes) -> bool:
        """Rehydrate the server's device and keep its room keys; then it may be
        replaced (True). False: the server failed on the way, and the device
        is left for the upkeep to read again."""
        extras = self.crypto.extras
        try:
            received = await self._rehydrate(*server, key)
        except SERVER_ERRORS as error:
            extras.set(UNREAD, server[0])
            self._tell(error, "could not be read yet (tuichat tries again)")
            return False
        except DehydrationError as error:
            # Not with the key secret storage holds: nobody can read it.
            extras.set(UNREAD, "")
            self._tell(error, "could not be read")
            return True
        extras.set(UNREAD, "")
        self._context.emit(
            Notice(
                f"Your dehydrated device received {received} room key(s) while you "
                "were signed out; tuichat has them now."
            )
        )
        if self.enabled:
            await self._delete_on_server()
        return True

    async def upkeep(self) -> None:
        """Between syncs: finish reading a device a failure interrupted, and
        replace the device when a week has passed or the key this device
        holds is not the one it was made with."""
        now = self._now_ms()
        if now < self._next_check_ms or not self.enabled:
            return
        self._next_check_ms = now + CHECK_EVERY_MS
        key = self._held_key()
        if key is None:
            return
        extras = self.crypto.extras
        unread = extras.get(UNREAD)
        made_at = int(extras.get(MADE_AT) or 0)
        if (
            not unread
            and extras.get(MADE_WITH) == _digest(key)
            and now - made_at < REPLACE_AFTER_MS
        ):
            return
        if unread:
            self._next_check_ms = now + RETRY_READ_MS
        try:
            async with self._lock:
                await self._replace(key)
        except ReadLater:
            pass
        except Unsupported:
            log.info("the server cannot keep dehydrated devices")
        except ERRORS as error:
            self._tell(error)
        except Exception as error:  # never the sync loop's undoing
            log.exception("dehydrated device: unexpected failure")
            self._tell(error)

    async def _replace(self, key: bytes) -> str | None:
        """A new device made with `key`, if secret storage still holds that
        key (else the key is forgotten and None returned); a device a failure
        kept from being read is read first (ReadLater if it still cannot be)."""
        extras = self.crypto.extras
        content = await self.crypto.http.account_data(SECRET_NAME)
        if _origin(content) != extras.get(KEY_ORIGIN):
            self._forget_key()
            self._context.emit(
                Notice(
                    "The dehydration key was changed on another device: enter your recovery "
                    "key (/recover) so tuichat can keep a dehydrated device.",
                    error=True,
                )
            )
            return None
        server = await self._server_device()  # Unsupported before anything is made
        unread = extras.get(UNREAD)
        if unread and server is not None and server[0] == unread:
            if not await self._read(server, key):
                raise ReadLater
        elif unread:
            extras.set(UNREAD, "")  # replaced or deleted meanwhile
        return await self._upload_new(key)

    async def set_enabled(self, on: bool) -> Outcome[str]:
        """`/dehydration on|off`; the sentence to show."""
        async with self._lock:
            return await self._set_enabled(on)

    async def _set_enabled(self, on: bool) -> Outcome[str]:
        self.crypto.extras.set(SETTING, "on" if on else "off")
        try:
            if not on:
                await self._delete_on_server()
                return "Dehydration is off: no dehydrated device is kept for this account."
            key = self._held_key()
            if key is None:
                return (
                    "Dehydration is on. Enter your recovery key (/recover; it sets recovery up "
                    "if there is none) so tuichat can keep a dehydrated device."
                )
            device_id = await self._replace(key)
        except Unsupported:
            return Failed("this server cannot keep dehydrated devices (MSC3814)")
        except ReadLater:
            return Failed("your dehydrated device could not be read yet; tuichat tries again")
        except (DehydrationError, SecretStorageError, SealError) as error:
            log.warning("dehydration: %s", error)
            return Failed(str(error))
        except SERVER_ERRORS as error:
            log.warning("dehydration: %s", error)
            return server_failure(error)
        if device_id is None:
            return Failed("the dehydration key changed on another device; enter /recover")
        return (
            f"Dehydration is on: the dehydrated device {device_id} receives room keys "
            "while you are signed out everywhere."
        )

    async def state(self) -> Outcome[DehydrationState]:
        try:
            server = await self._server_device()
            supported = True
        except Unsupported:
            server, supported = None, False
        except (DehydrationError, *SERVER_ERRORS) as error:
            log.warning("checking the dehydrated device failed: %s", error)
            return Failed(str(error))
        return DehydrationState(
            enabled=self.enabled,
            supported=supported,
            device_id=server[0] if server else None,
            key_held=self._held_key() is not None,
        )

    def _tell(self, error: BaseException, what: str = "could not be kept") -> None:
        text = f"Dehydrated device {what}: {error}"
        log.warning("%s", text)
        if text != self._told:
            self._told = text
            self._context.emit(Notice(text, error=True))
