"""Asking for missing Megolm keys with m.room_key_request.

When an event stays undecryptable past a short grace period (keys often
arrive a moment after the message), one request per session goes to all of
our own devices and to the device that sent the event. It is repeated with
growing pauses while the key is still missing and cancelled once it
arrives. Requests are registered with nio's Olm machine, which only accepts
a forwarded key it asked for.

Answering other devices' requests is nio's: it forwards keys to our own
*verified* devices only and ignores other users. Requests from our own
unverified devices wait until the device is verified (`continue_for`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nio.crypto.key_request import OutgoingKeyRequest

from tuichat.matrix.crypto.nio_extensions import MEGOLM, TuichatOlm

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
# Pauses before each repeat of a request whose key is still missing.
BACKOFF_SECONDS = (60.0, 300.0, 1800.0, 4 * 3600.0)

SendToDevice = Callable[[str, dict[str, dict[str, Any]]], Awaitable[bool]]


@dataclass
class _Request:
    room_id: str
    session_id: str
    sender_key: str
    sender: str
    sender_device: str | None
    request_id: str
    due: float
    attempts: int = 0
    sent: bool = False


@dataclass
class KeyRequests:
    olm: TuichatOlm
    send: SendToDevice
    grace: float = GRACE_SECONDS
    backoff: tuple[float, ...] = BACKOFF_SECONDS
    _requests: dict[str, _Request] = field(default_factory=dict)
    _cancellations: list[_Request] = field(default_factory=list)

    def missing(
        self,
        room_id: str,
        session_id: str,
        sender_key: str | None,
        sender: str,
        sender_device: str | None,
        now: float,
    ) -> None:
        """An event of this session could not be decrypted (one request per
        session, however many events wait for it)."""
        if session_id in self._requests or not sender_key:
            return
        known = self.olm.outgoing_key_requests.get(session_id)
        request_id = known.request_id if known is not None else uuid.uuid4().hex
        self._requests[session_id] = _Request(
            room_id, session_id, sender_key, sender, sender_device, request_id, now + self.grace
        )

    def arrived(self, session_id: str) -> None:
        request = self._requests.pop(session_id, None)
        known = self.olm.outgoing_key_requests.pop(session_id, None)
        if known is not None:
            self.olm.store.remove_outgoing_key_request(known)
        if request is not None and request.sent:
            self._cancellations.append(request)

    @property
    def pending(self) -> list[str]:
        return sorted(self._requests)

    def _recipients(self, request: _Request, content: dict[str, Any]) -> dict[str, dict[str, Any]]:
        messages: dict[str, dict[str, Any]] = {self.olm.user_id: {"*": content}}
        if request.sender_device and not (
            request.sender == self.olm.user_id and request.sender_device == self.olm.device_id
        ):
            messages.setdefault(request.sender, {})[request.sender_device] = content
        return messages

    async def send_due(self, now: float) -> int:
        """Send the requests and cancellations that are due; returns how many."""
        sent = 0
        for request in self._cancellations[:]:
            content = {
                "action": "request_cancellation",
                "request_id": request.request_id,
                "requesting_device_id": self.olm.device_id,
            }
            if await self.send("m.room_key_request", self._recipients(request, content)):
                self._cancellations.remove(request)
                sent += 1
        for request in list(self._requests.values()):
            if request.due > now:
                continue
            if request.attempts > len(self.backoff):
                continue  # given up: no flooding
            content = {
                "action": "request",
                "body": {
                    "algorithm": MEGOLM,
                    "room_id": request.room_id,
                    "sender_key": request.sender_key,
                    "session_id": request.session_id,
                },
                "request_id": request.request_id,
                "requesting_device_id": self.olm.device_id,
            }
            if not await self.send("m.room_key_request", self._recipients(request, content)):
                request.due = now + self.grace
                continue
            self._register_with_nio(request)
            request.sent = True
            pause_index = min(request.attempts, len(self.backoff) - 1)
            request.attempts += 1
            request.due = now + self.backoff[pause_index]
            sent += 1
            log.info(
                "requested the key of session %s (attempt %d)", request.session_id, request.attempts
            )
        return sent

    def _register_with_nio(self, request: _Request) -> None:
        if request.session_id in self.olm.outgoing_key_requests:
            return
        outgoing = OutgoingKeyRequest(
            request.request_id, request.session_id, request.room_id, MEGOLM
        )
        self.olm.outgoing_key_requests[request.session_id] = outgoing
        self.olm.store.add_outgoing_key_request(outgoing)

    def continue_for(self, user_id: str, device_id: str) -> int:
        """A device was verified: answer its requests that were waiting."""
        continued = 0
        for event in self.olm.get_active_key_requests(user_id, device_id):
            if self.olm.continue_key_share(event):
                continued += 1
        return continued
