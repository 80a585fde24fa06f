"""Verifications in progress: over to-device messages, or in a room.

Routes incoming `m.key.verification.*` to-device events (plain, or
Olm-decrypted by nio) to the right `SasVerification` by transaction id,
and in-room verification events (a request sent as a room message in the
DM, then events that refer to it with `m.relates_to`) by the request's
event id, after checking they come from the user being verified; starts
requests; times verifications out after 10 minutes; and reports every
change as a `VerificationView` to the service, which turns it into a
domain event.

One concept seen from three sides, hence three modules of this name: this
one runs the protocol, `tuichat/model/verification.py` holds what a
verification shows (`VerificationView`), and
`tuichat/ui/screens/verification.py` is the dialog that shows it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tuichat.matrix.crypto.qr_verification import OUR_METHODS
from tuichat.matrix.crypto.sas import (
    KeyLookup,
    MasterLookup,
    OwnMasterLookup,
    RefreshKeys,
    SasVerification,
)
from tuichat.model.verification import Phase, VerificationView

log = logging.getLogger(__name__)

REQUEST_MAX_AGE_MS = 10 * 60 * 1000
REQUEST_MAX_FUTURE_MS = 5 * 60 * 1000
VERIFICATION_TYPES = {
    "m.key.verification.request",
    "m.key.verification.ready",
    "m.key.verification.start",
    "m.key.verification.accept",
    "m.key.verification.key",
    "m.key.verification.mac",
    "m.key.verification.done",
    "m.key.verification.cancel",
}

SendToDevice = Callable[[str, dict[str, dict[str, Any]]], Awaitable[bool]]
# (room id, event type, content) -> the sent event's id, or None.
SendRoomEvent = Callable[[str, str, dict[str, Any]], Awaitable[str | None]]
OnChange = Callable[[VerificationView], None]
# (user id, device id, their master key if the MAC or a QR code proved it,
# whether the device's own key was checked: a QR code of another user, or
# of our own device made before trusting our master key, proves the master)
OnVerified = Callable[[str, str, str | None, bool], None]


class Verifications:
    def __init__(
        self,
        *,
        own_user: str,
        own_device: str,
        own_ed25519: str,
        send_to_device: SendToDevice,
        device_key: KeyLookup,
        on_change: OnChange,
        on_verified: OnVerified,
        master_key: MasterLookup | None = None,
        refresh_keys: RefreshKeys | None = None,
        trusted_own_master: OwnMasterLookup | None = None,
        send_room_event: SendRoomEvent | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.own_user = own_user
        self.own_device = own_device
        self.own_ed25519 = own_ed25519
        self._send_to_device = send_to_device
        self._device_key = device_key
        self._on_change = on_change
        self._on_verified = on_verified
        self._master_key = master_key
        self._refresh_keys = refresh_keys
        self._trusted_own_master = trusted_own_master
        self._send_room_event = send_room_event
        self._clock = clock
        self.active: dict[str, SasVerification] = {}

    def get(self, transaction_id: str) -> SasVerification | None:
        return self.active.get(transaction_id)

    def _new(
        self,
        transaction_id: str,
        other_user: str,
        other_device: str | None,
        we_requested: bool,
        room_id: str | None = None,
    ) -> SasVerification:
        holder: dict[str, SasVerification] = {}

        async def send(event_type: str, content: dict[str, Any]) -> bool:
            verification = holder["v"]
            if verification.room_id is not None:
                if self._send_room_event is None:
                    return False
                sent = await self._send_room_event(verification.room_id, event_type, content)
                return sent is not None
            device = verification.other_device or "*"
            return await self._send_to_device(
                event_type, {verification.other_user: {device: content}}
            )

        verification = SasVerification(
            transaction_id=transaction_id,
            own_user=self.own_user,
            own_device=self.own_device,
            own_ed25519=self.own_ed25519,
            other_user=other_user,
            other_device=other_device,
            we_requested=we_requested,
            send=send,
            device_key=self._device_key,
            master_key=self._master_key,
            refresh_keys=self._refresh_keys,
            trusted_own_master=self._trusted_own_master,
            room_id=room_id,
            clock=self._clock,
        )
        holder["v"] = verification
        self.active[transaction_id] = verification
        return verification

    def _report(self, verification: SasVerification, was: Phase) -> None:
        if verification.phase is Phase.DONE and was is not Phase.DONE and verification.other_device:
            self._on_verified(
                verification.other_user,
                verification.other_device,
                verification.verified_master,
                verification.device_key_checked,
            )
        self._on_change(verification.view())

    # -- our actions -------------------------------------------------------------------

    async def request(self, user_id: str, device_id: str | None = None) -> str:
        """Ask `user_id` (one device, or all their devices) to verify."""
        transaction_id = uuid.uuid4().hex
        verification = self._new(transaction_id, user_id, device_id, we_requested=True)
        await verification.request()
        self._on_change(verification.view())
        return transaction_id

    async def request_in_room(self, room_id: str, user_id: str) -> str | None:
        """Verify another person in a room you share (their identity, not one
        device): the request is a room message; its event id names the flow."""
        if self._send_room_event is None:
            return None
        content = {
            "msgtype": "m.key.verification.request",
            "body": f"{self.own_user} is asking to verify your identity "
            "(your client does not support in-room verification).",
            "to": user_id,
            "from_device": self.own_device,
            "methods": list(OUR_METHODS),
        }
        event_id = await self._send_room_event(room_id, "m.room.message", content)
        if event_id is None:
            return None
        verification = self._new(event_id, user_id, None, we_requested=True, room_id=room_id)
        self._on_change(verification.view())
        return event_id

    async def handle_room_event(self, room_id: str, event: dict[str, Any]) -> None:
        """A decrypted room event that may belong to an in-room verification:
        {"type", "content", "sender", "event_id", "origin_server_ts"}."""
        sender, content = event.get("sender"), event.get("content")
        event_type, event_id = event.get("type"), event.get("event_id")
        if not isinstance(sender, str) or not isinstance(content, dict):
            return
        if sender == self.own_user:
            return  # our own messages, echoed by the server
        if (
            event_type == "m.room.message"
            and content.get("msgtype") == "m.key.verification.request"
        ):
            timestamp = event.get("origin_server_ts")
            fresh = isinstance(timestamp, int) and self._fresh({"timestamp": timestamp})
            if content.get("to") != self.own_user or not isinstance(event_id, str) or not fresh:
                return
            if event_id not in self.active:
                from_device = content.get("from_device")
                verification = self._new(
                    event_id,
                    sender,
                    from_device if isinstance(from_device, str) else None,
                    we_requested=False,
                    room_id=room_id,
                )
                verification.their_methods = _methods(content)
                self._on_change(verification.view())
            return
        if event_type not in VERIFICATION_TYPES:
            return
        relation = content.get("m.relates_to")
        request_id = relation.get("event_id") if isinstance(relation, dict) else None
        verification = self.active.get(request_id) if isinstance(request_id, str) else None
        if verification is None or verification.room_id != room_id:
            return
        if sender != verification.other_user:
            return
        from_device = content.get("from_device")
        from_device = from_device if isinstance(from_device, str) else None
        was = verification.phase
        await verification.handle(str(event_type), content, from_device)
        self._report(verification, was)

    async def start_legacy(self, user_id: str, device_id: str) -> str:
        """The older flow: open directly with `start` (no request)."""
        transaction_id = uuid.uuid4().hex
        verification = self._new(transaction_id, user_id, device_id, we_requested=True)
        verification.legacy = True
        await verification.start()
        self._on_change(verification.view())
        return transaction_id

    async def _act(self, transaction_id: str, action: str) -> None:
        verification = self.active.get(transaction_id)
        if verification is None:
            return
        was = verification.phase
        await getattr(verification, action)()
        self._report(verification, was)

    async def accept(self, transaction_id: str) -> None:
        await self._act(transaction_id, "accept_request")

    async def start_emoji(self, transaction_id: str) -> None:
        await self._act(transaction_id, "start_emoji")

    async def confirm(self, transaction_id: str) -> None:
        await self._act(transaction_id, "confirm")

    async def mismatch(self, transaction_id: str) -> None:
        await self._act(transaction_id, "mismatch")

    async def cancel(self, transaction_id: str) -> None:
        await self._act(transaction_id, "cancel")

    async def check_timeouts(self) -> None:
        for verification in list(self.active.values()):
            was = verification.phase
            if await verification.check_timeout():
                self._report(verification, was)
            if verification.finished and self._clock() > verification.deadline:
                self.active.pop(verification.transaction_id, None)

    # -- their messages ------------------------------------------------------------------

    async def handle(self, event: dict[str, Any]) -> None:
        """One to-device event of a verification type."""
        event_type = event.get("type")
        sender = event.get("sender")
        content = event.get("content")
        if event_type not in VERIFICATION_TYPES or not isinstance(sender, str):
            return
        if not isinstance(content, dict):
            return
        transaction_id = content.get("transaction_id")
        if not isinstance(transaction_id, str) or not transaction_id:
            return
        from_device = content.get("from_device")
        from_device = from_device if isinstance(from_device, str) else None
        if sender == self.own_user and from_device == self.own_device:
            return  # our own message, echoed to our other devices
        verification = self.active.get(transaction_id)
        if event_type == "m.key.verification.request":
            if verification is None and self._fresh(content):
                verification = self._new(transaction_id, sender, from_device, we_requested=False)
                verification.their_methods = _methods(content)
                self._on_change(verification.view())
            return
        if verification is None:
            if event_type == "m.key.verification.start" and from_device:
                verification = self._new(transaction_id, sender, from_device, we_requested=False)
                verification.legacy = True
            else:
                return
        if sender != verification.other_user:
            log.warning(
                "verification message from %s for a verification with %s",
                sender,
                verification.other_user,
            )
            return
        if (
            verification.other_device
            and from_device
            and from_device != verification.other_device
            and event_type != "m.key.verification.cancel"
        ):
            return  # another device of theirs answering a request we sent to all
        was = verification.phase
        await verification.handle(event_type, content, from_device)
        self._report(verification, was)

    def _fresh(self, content: dict[str, Any]) -> bool:
        timestamp = content.get("timestamp")
        if not isinstance(timestamp, int):
            return False
        now = int(time.time() * 1000)
        return now - REQUEST_MAX_AGE_MS <= timestamp <= now + REQUEST_MAX_FUTURE_MS


def _methods(content: dict[str, Any]) -> list[str]:
    methods = content.get("methods")
    return [m for m in methods if isinstance(m, str)] if isinstance(methods, list) else []
