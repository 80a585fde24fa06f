"""Outbound Megolm sessions: sharing, rotation and persistence.

Replaces nio's share_group_session, which (in 0.26) creates a new session
whenever a shared one must reach another device, never gives the current
session to a device that appears later (a member's new device could not
read anything until the next rotation), marks a session shared even when
some to-device requests failed, and keeps outbound sessions in memory only,
so every restart rotated them.

Here the current session is shared, from its current message index, with
every device of the room's members (joined and invited) that does not have
it yet, in batched to-device requests that are retried; a device counts as
served only once its request succeeded. Sessions rotate after the room's
`rotation_period_msgs` / `rotation_period_ms`, and when `rotate()` is called
(a member left or was banned, a device was removed or blacklisted, history
visibility changed). They are saved after every change and restored at
start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nio import KeysClaimError, ToDeviceError
from nio.api import Api
from nio.crypto.sessions import OutboundGroupSession
from nio.responses import ToDeviceResponse

from tuichat.matrix.crypto.extras_store import CryptoExtrasStore, StoredOutboundSession
from tuichat.matrix.crypto.nio_extensions import MEGOLM, TuichatClient
from tuichat.matrix.transport.network import NETWORK_ERRORS

log = logging.getLogger(__name__)

DEFAULT_ROTATION_MS = 7 * 24 * 3600 * 1000
DEFAULT_ROTATION_MSGS = 100
TO_DEVICE_BATCH = 100
SEND_ATTEMPTS = 3


@dataclass(frozen=True)
class RotationPolicy:
    """From the room's m.room.encryption content."""

    period_ms: int = DEFAULT_ROTATION_MS
    period_msgs: int = DEFAULT_ROTATION_MSGS

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> RotationPolicy:
        def positive(value: object, default: int) -> int:
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            return value if ok else default  # type: ignore[return-value]

        return cls(
            positive(content.get("rotation_period_ms"), DEFAULT_ROTATION_MS),
            positive(content.get("rotation_period_msgs"), DEFAULT_ROTATION_MSGS),
        )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class KeyShareError(RuntimeError):
    """The room key could not reach every device that should have it (the
    server failed a claim or a to-device request). The message must wait and
    be tried again: sent now, those devices could never read it."""


# Decides whether a device may receive room keys (blacklisting, and later
# "send only to verified devices"); called per device.
DeviceFilter = Callable[[Any], bool]


class GroupSessions:
    def __init__(
        self,
        client: TuichatClient,
        extras: CryptoExtrasStore,
        pickle_key: str,
        *,
        batch_size: int = TO_DEVICE_BATCH,
    ) -> None:
        self.client = client
        self.extras = extras
        self.pickle_key = pickle_key
        self.batch_size = batch_size
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def _olm(self) -> Any:
        return self.client.tuichat_olm

    # -- persistence -----------------------------------------------------------------

    def restore(self) -> int:
        """Load the saved outbound sessions into nio's Olm machine."""
        restored = 0
        for stored in self.extras.load_outbound():
            try:
                session = OutboundGroupSession.from_pickle(stored.pickle.encode(), self.pickle_key)
            except Exception:  # noqa: BLE001 - a damaged row: the room just rotates
                log.warning("could not restore the outbound session of %s", stored.room_id)
                self.extras.delete_outbound(stored.room_id)
                continue
            session.creation_time = datetime.fromtimestamp(stored.created_ms / 1000)
            session.message_count = stored.message_count
            session.users_shared_with = set(stored.shared_with)
            session.shared = True
            self._olm.outbound_group_sessions[stored.room_id] = session
            restored += 1
        return restored

    def save(self, room_id: str) -> None:
        session = self._olm.outbound_group_sessions.get(room_id)
        if session is None:
            self.extras.delete_outbound(room_id)
            return
        self.extras.save_outbound(
            StoredOutboundSession(
                room_id=room_id,
                pickle=session.pickle(self.pickle_key).decode(),
                created_ms=int(session.creation_time.timestamp() * 1000),
                message_count=session.message_count,
                shared_with=frozenset(session.users_shared_with),
            )
        )

    # -- rotation --------------------------------------------------------------------

    def current(self, room_id: str) -> OutboundGroupSession | None:
        return self._olm.outbound_group_sessions.get(room_id)

    def rotate(self, room_id: str, reason: str) -> None:
        """Drop the room's outbound session: the next message starts a new one."""
        if self._olm.outbound_group_sessions.pop(room_id, None) is not None:
            log.info("rotating the outbound session of %s: %s", room_id, reason)
        self.extras.delete_outbound(room_id)

    def rotate_where_shared_with(self, user_id: str, device_id: str | None, reason: str) -> None:
        """Rotate every room whose session reached this device (or any device
        of the user, for `device_id` None)."""
        for room_id, session in list(self._olm.outbound_group_sessions.items()):
            if any(
                user == user_id and (device_id is None or device == device_id)
                for user, device in session.users_shared_with
            ):
                self.rotate(room_id, reason)

    # -- sharing -----------------------------------------------------------------

    def _lock(self, room_id: str) -> asyncio.Lock:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        return lock

    async def ensure_shared(
        self,
        room_id: str,
        members: Iterable[str],
        policy: RotationPolicy,
        allowed: DeviceFilter,
    ) -> OutboundGroupSession:
        """Make the room's outbound session current and held by every allowed
        device of `members`; returns it, ready to encrypt with."""
        async with self._lock(room_id):
            olm = self._olm
            session = olm.outbound_group_sessions.get(room_id)
            members = set(members)
            if session is not None:
                session.max_messages = policy.period_msgs
                session.max_age = timedelta(milliseconds=policy.period_ms)
                if session.should_rotate():
                    self.rotate(room_id, "rotation period reached")
                    session = None
                elif self._has_unwanted_holder(session, members, allowed):
                    # Someone who holds the key may no longer read along (left,
                    # blacklisted, unverified under "verified only", deleted).
                    self.rotate(room_id, "a key holder is no longer allowed")
                    session = None
            if session is None:
                olm.create_outbound_group_session(room_id)
                session = olm.outbound_group_sessions[room_id]
                session.max_messages = policy.period_msgs
                session.max_age = timedelta(milliseconds=policy.period_ms)
            devices = [
                device
                for user_id in sorted(members)
                for device in olm.device_store.active_user_devices(user_id)
                if not (user_id == olm.user_id and device.id == olm.device_id)
                and allowed(device)
                and (user_id, device.id) not in session.users_shared_with
            ]
            if devices:
                await self._share(room_id, session, devices)
            session.shared = True
            self.save(room_id)
            return session

    def _has_unwanted_holder(
        self, session: OutboundGroupSession, members: set[str], allowed: DeviceFilter
    ) -> bool:
        store = self._olm.device_store
        for user_id, device_id in session.users_shared_with:
            if user_id not in members:
                return True
            device = store[user_id].get(device_id)
            if device is None or device.deleted or not allowed(device):
                return True
        return False

    async def _claim_missing(self, devices: Sequence[Any]) -> None:
        olm = self._olm
        missing: dict[str, list[str]] = {}
        for device in devices:
            if olm.session_store.get(device.curve25519) is None:
                missing.setdefault(device.user_id, []).append(device.id)
        if not missing:
            return
        try:
            response = await self.client.keys_claim(missing)
        except NETWORK_ERRORS as error:
            raise KeyShareError(f"claiming one-time keys failed: {error}") from None
        if isinstance(response, KeysClaimError):
            raise KeyShareError(f"claiming one-time keys failed: {response.message}")

    async def _share(
        self, room_id: str, session: OutboundGroupSession, devices: Sequence[Any]
    ) -> None:
        olm = self._olm
        key_content = {
            "algorithm": MEGOLM,
            "room_id": room_id,
            "session_id": session.id,
            "session_key": session.session_key,  # from the current message index
        }
        batches: list[tuple[Sequence[Any], dict[str, dict[str, Any]]]] = []
        # New Olm sessions (from the claim) and their use (encryption) are
        # saved once, together, before anything is sent.
        with olm.store_batch(account_unchanged=True):
            await self._claim_missing(devices)
            ready = [d for d in devices if olm.session_store.get(d.curve25519) is not None]
            if len(ready) < len(devices):
                log.warning(
                    "no Olm session (no one-time key) for %d device(s) in %s; they get no key",
                    len(devices) - len(ready),
                    room_id,
                )
            for chunk in _chunks(ready, self.batch_size):
                messages: dict[str, dict[str, Any]] = {}
                for device in chunk:
                    payload = self.client.olm_encrypt_for(device, "m.room_key", key_content)
                    messages.setdefault(device.user_id, {})[device.id] = payload
                batches.append((chunk, messages))
        failed = 0
        for chunk, messages in batches:
            if await self.send_to_device("m.room.encrypted", messages):
                session.users_shared_with.update((d.user_id, d.id) for d in chunk)
            else:
                failed += len(chunk)
        if failed:
            self.save(room_id)  # what did go out stays recorded
            raise KeyShareError(f"the room key did not reach {failed} device(s)")

    async def send_to_device(self, event_type: str, messages: dict[str, dict[str, Any]]) -> bool:
        """PUT /sendToDevice with one transaction id, retried on failure (the
        same id makes a retry after a lost response harmless)."""
        txn_id = uuid.uuid4().hex
        method, path, data = Api.to_device(
            self.client.access_token, event_type, {"messages": messages}, txn_id
        )
        delay = 0.5
        for attempt in range(1, SEND_ATTEMPTS + 1):
            started = time.monotonic()
            try:
                response = await self.client.send_parsed(
                    ToDeviceResponse, method, path, data, (None,)
                )
            except NETWORK_ERRORS as error:
                response = None
                log.warning("to-device %s failed (attempt %d): %s", event_type, attempt, error)
            if response is not None and not isinstance(response, ToDeviceError):
                return True
            if response is not None:
                log.warning("to-device %s failed (attempt %d): %s", event_type, attempt, response)
            if attempt < SEND_ATTEMPTS:
                await asyncio.sleep(max(0.0, delay - (time.monotonic() - started)))
                delay *= 2
        return False
