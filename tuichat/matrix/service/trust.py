"""Devices and verification."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.calls import quietly
from tuichat.matrix.service.room_views import RoomViews
from tuichat.model.devices import DeviceInfo, IdentityState
from tuichat.model.events import (
    DevicesChanged,
    Notice,
    TimelineAppended,
    VerificationChanged,
)
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import clean_line
from tuichat.model.verification import VerificationView

if TYPE_CHECKING:
    from tuichat.matrix.crypto.engine import CryptoEngine
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

log = logging.getLogger(__name__)


class DeviceTrust:
    """Devices, trust decisions and emoji verification."""

    def __init__(self, context: AccountContext, views: RoomViews) -> None:
        self._context = context
        self._views = views
        self.user_id = context.user_id
        self.direct = context.direct
        self.emit = context.emit
        self._reported_identity_changes: set[tuple[str, str]] = set()
        # Verification requests that came unsolicited (see VerificationView).
        self._unsolicited_verifications: set[str] = set()
        self._judged_verifications: set[str] = set()

    @property
    def crypto(self) -> CryptoEngine | None:
        return self._context.crypto

    @property
    def client(self) -> TuichatClient | None:
        return self._context.client

    @property
    def states(self) -> dict[str, RoomState]:
        return self._context.states

    async def devices(self, user_id: str, *, refresh: bool = False) -> list[DeviceInfo]:
        """A user's devices with fingerprints and trust (fetched if unknown,
        or when `refresh`); for our own devices also where and when they were
        last seen."""
        assert self.client is not None and self.crypto is not None
        olm = self.crypto.olm
        if refresh or user_id not in olm.tracked_users or user_id in olm.users_for_key_query:
            olm.users_for_key_query.add(user_id)
            self._views.emit_redecrypted(await self.crypto.query_keys())
        infos = self.crypto.device_infos(user_id)
        if user_id == self.user_id:
            response = await quietly(self.client.devices(), "listing devices")
            seen = {d.id: d for d in getattr(response, "devices", []) or []}
            infos = [
                replace(
                    info,
                    display_name=clean_line(getattr(seen.get(info.device_id), "display_name", ""))
                    or info.display_name,
                    last_seen_ip=clean_line(getattr(seen.get(info.device_id), "last_seen_ip", ""))
                    or None,
                    last_seen_ts=_ms(getattr(seen.get(info.device_id), "last_seen_date", None)),
                )
                for info in infos
            ]
        return infos

    def set_device_trust(self, user_id: str, device_id: str, action: str) -> bool:
        assert self.crypto is not None
        done = self.crypto.set_trust(user_id, device_id, action)
        if done:
            self.report_device_news()
        return done

    def verify_device(self, user_id: str, device_id: str) -> bool:
        """Mark a device verified; its waiting key requests are answered."""
        return self.set_device_trust(user_id, device_id, "verify")

    def set_verified_only(self, room_id: str | None, on: bool) -> None:
        """Send room keys only to verified devices: in one room, or by default."""
        assert self.crypto is not None
        self.crypto.set_verified_only(room_id, on)
        rooms = {room_id} if room_id else {r for r, s in self.states.items() if s.encrypted}
        self._views.emit_summaries(rooms)

    def report_device_news(self) -> None:
        """Device lists or trust changed: refresh views, and say in each
        encrypted room when a member gained a device, or a known device's
        keys changed (tuichat then stops encrypting to it)."""
        if self.crypto is None:
            return
        users, new_devices, changed_identities = self.crypto.take_device_news()
        changed_identity = self.crypto.olm.identity_changed - self._reported_identity_changes
        self._reported_identity_changes |= changed_identity
        users |= {user for user, _ in changed_identity}
        if not users:
            return
        self.emit(DevicesChanged(frozenset(users)))
        self._views.emit_redecrypted(self.crypto.retrust(users))
        notices: dict[str, list[TimelineItem]] = {}
        now = int(time.time() * 1000)
        for user_id, device_id in new_devices:
            for room_id in self._views.rooms_with({user_id}):
                name = self.states[room_id].member_name(user_id)
                notices.setdefault(room_id, []).append(
                    _notice(
                        f"newdevice:{user_id}:{device_id}",
                        f"{name} signed in on a new device ({clean_line(device_id)}), "
                        "not verified yet — /devices to check it",
                        now,
                    )
                )
        for user_id, device_id in changed_identity:
            for room_id in self._views.rooms_with({user_id}):
                name = self.states[room_id].member_name(user_id)
                notices.setdefault(room_id, []).append(
                    _notice(
                        f"keyschanged:{user_id}:{device_id}",
                        f"Warning: the keys of {name}'s device {clean_line(device_id)} changed. "
                        "tuichat no longer encrypts to it; verify it again to be sure.",
                        now,
                        highlight=True,
                    )
                )
        for user_id in changed_identities:
            for room_id in self._views.rooms_with({user_id}):
                name = self.states[room_id].member_name(user_id)
                notices.setdefault(room_id, []).append(
                    _notice(
                        f"identitychanged:{user_id}:{now}",
                        f"Warning: {name}'s identity changed since you first saw it. "
                        "If you did not expect that, verify them again (/devices to review).",
                        now,
                        highlight=True,
                    )
                )
        for room_id, items in notices.items():
            self.emit(TimelineAppended(room_id, items))
        self._views.emit_summaries(self._views.rooms_with(users))

    def report_verification(self, view: VerificationView) -> None:
        """A verification changed. A request nobody asked for is marked
        unsolicited (for its whole life), so the UI shows a notice rather
        than opening a dialog by itself for anyone who can send to-device
        messages."""
        txn = view.transaction_id
        if not view.we_requested and txn not in self._judged_verifications:
            # Judged once, when it first arrives (a request, or the older
            # flow's `start`).
            self._judged_verifications.add(txn)
            if self._unsolicited_request(view.other_user, view.other_device):
                self._unsolicited_verifications.add(txn)
        if txn in self._unsolicited_verifications:
            view = replace(view, unsolicited=True)
        self.emit(VerificationChanged(view))

    def _unsolicited_request(self, user_id: str, device_id: str | None) -> bool:
        """From someone we share no joined room with (our own devices aside),
        or from a device we blacklisted or ignored."""
        crypto = self.crypto
        if crypto is not None and device_id:
            device = crypto.olm.device_store[user_id].get(device_id)
            if device is not None and (device.blacklisted or device.ignored):
                return True
        if user_id == self.user_id:
            return False
        return not any(
            state.membership is Membership.JOIN and state.membership_of(user_id) == "join"
            for state in self.states.values()
        )

    async def request_verification(self, user_id: str, device_id: str | None = None) -> str:
        """Start emoji verification with a device (or all devices) of a user."""
        assert self.crypto is not None
        return await self.crypto.verifications.request(user_id, device_id)

    async def request_user_verification(self, user_id: str) -> str | None:
        """Verify another person (their identity, all their devices at once)
        in your DM with them, as Element does; None, with a Notice, if there
        is no DM to do it in."""
        assert self.crypto is not None
        room_id = self.direct.find_existing(user_id, self.states)
        if room_id is None:
            room_id = next(
                (
                    r
                    for r, state in self.states.items()
                    if state.encrypted
                    and state.membership is Membership.JOIN
                    and state.membership_of(user_id) == "join"
                    and len(state.members()) == 2
                ),
                None,
            )
        if room_id is None:
            self.emit(
                Notice(f"Open a DM with {user_id} first (/dm {user_id}), then verify.", error=True)
            )
            return None
        return await self.crypto.verifications.request_in_room(room_id, user_id)

    def set_signed_only(self, value: str) -> None:
        """Keys only to devices their owners cross-signed: "verified" (for
        people you verified, the default), "all", or "off"."""
        assert self.crypto is not None
        self.crypto.set_signed_only(value)
        self._views.emit_summaries({r for r, s in self.states.items() if s.encrypted})

    def identity_state(self, user_id: str) -> IdentityState:
        assert self.crypto is not None
        return self.crypto.identity_state(user_id)

    def acknowledge_identity(self, user_id: str) -> None:
        """Accept a changed identity (after checking it out of band)."""
        assert self.crypto is not None
        self.crypto.cross_signing.acknowledge_change(user_id)
        self.crypto.devices_changed.add(user_id)
        self.report_device_news()

    async def start_legacy_verification(self, user_id: str, device_id: str) -> str:
        assert self.crypto is not None
        return await self.crypto.verifications.start_legacy(user_id, device_id)

    async def accept_verification(self, transaction_id: str) -> None:
        assert self.crypto is not None
        await self.crypto.verifications.accept(transaction_id)

    async def start_emoji_verification(self, transaction_id: str) -> None:
        """Compare emoji instead of having our QR code scanned."""
        assert self.crypto is not None
        await self.crypto.verifications.start_emoji(transaction_id)

    async def confirm_verification(self, transaction_id: str) -> None:
        assert self.crypto is not None
        await self.crypto.verifications.confirm(transaction_id)
        self.report_device_news()

    async def reject_verification(self, transaction_id: str) -> None:
        """The emoji do not match."""
        assert self.crypto is not None
        await self.crypto.verifications.mismatch(transaction_id)

    async def cancel_verification(self, transaction_id: str) -> None:
        assert self.crypto is not None
        await self.crypto.verifications.cancel(transaction_id)


def _notice(key: str, text: str, timestamp: int, *, highlight: bool = False) -> TimelineItem:
    """A line in the timeline that is tuichat's own, not an event."""
    return TimelineItem(
        key=f"notice:{key}",
        sender="",
        sender_name="tuichat",
        timestamp=timestamp,
        kind=ItemKind.STATE,
        body=text,
        highlight=highlight,
    )


def _ms(value: object) -> int | None:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else None
