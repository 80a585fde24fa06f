"""Sending messages."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from nio import (
    RoomSendResponse,
)
from nio.api import Api

from tuichat.matrix.events import (
    LocalEchoAdded,
    SendStateChanged,
)
from tuichat.matrix.service.base import (
    Outgoing,
    ServiceBase,
)
from tuichat.model.items import ItemKind, SendState, TimelineItem
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import clean_text

log = logging.getLogger(__name__)


class SendingMixin(ServiceBase):
    """Sending with a local echo, one room's messages strictly in order."""

    def own_name(self, room_id: str) -> str:
        state = self.states.get(room_id)
        return state.member_name(self.user_id) if state else self.user_id

    def send_text(self, room_id: str, body: str, *, emote: bool = False) -> str:
        """Send a text message with a local echo; returns its transaction id."""
        content = {"msgtype": "m.emote" if emote else "m.text", "body": body}
        txn_id = f"tuichat-{uuid.uuid4().hex}"
        state = self.states.get(room_id)
        echo = TimelineItem(
            key=f"txn:{txn_id}",
            sender=self.user_id,
            sender_name=self.own_name(room_id),
            timestamp=int(time.time() * 1000),
            kind=ItemKind.EMOTE if emote else ItemKind.TEXT,
            body=clean_text(body),
            txn_id=txn_id,
            encrypted=bool(state and state.encrypted),
            send_state=SendState.PENDING,
        )
        self.emit(LocalEchoAdded(room_id, echo))
        self._enqueue(Outgoing(room_id, txn_id, content))
        return txn_id

    def retry(self, room_id: str, txn_id: str) -> bool:
        """Send a failed message again, with the same transaction id, so a
        retry after a lost response cannot duplicate it."""
        outgoing = self._outgoing.get(txn_id)
        if outgoing is None:
            return False
        self.emit(SendStateChanged(room_id, txn_id, SendState.PENDING))
        self._enqueue(outgoing)
        return True

    def _enqueue(self, outgoing: Outgoing) -> None:
        self._outgoing[outgoing.txn_id] = outgoing
        queue = self._send_queues.get(outgoing.room_id)
        if queue is None:
            queue = self._send_queues[outgoing.room_id] = asyncio.Queue()
        queue.put_nowait(outgoing)
        worker = self._send_workers.get(outgoing.room_id)
        if worker is None or worker.done():
            self._send_workers[outgoing.room_id] = asyncio.create_task(
                self._send_worker(queue), name=f"tuichat-send-{outgoing.room_id}"
            )

    async def _send_worker(self, queue: asyncio.Queue[Outgoing]) -> None:
        """Send one room's messages strictly in order."""
        while not queue.empty():
            outgoing = queue.get_nowait()
            await self._send_one(outgoing)

    async def _send_one(self, outgoing: Outgoing) -> None:
        room_id, txn_id = outgoing.room_id, outgoing.txn_id
        error = ""
        try:
            response = await self._send_event(room_id, outgoing)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is shown, retryable
            log.warning("sending %s failed: %s", txn_id, exc)
            error = str(exc) or type(exc).__name__
        else:
            if isinstance(response, RoomSendResponse):
                self._outgoing.pop(txn_id, None)
                self.emit(SendStateChanged(room_id, txn_id, SendState.SENT, response.event_id))
                return
            error = getattr(response, "message", "") or str(response)
        self.emit(SendStateChanged(room_id, txn_id, SendState.FAILED, error=error))

    async def send_room_event(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> str | None:
        """Send an event no one types (in-room verification steps), encrypted
        like any other; returns its event id, or None if it failed."""
        outgoing = Outgoing(room_id, f"tuichat-{uuid.uuid4().hex}", content, event_type)
        try:
            response = await self._send_event(room_id, outgoing)
        except Exception as error:  # noqa: BLE001 - reported to the caller as None
            log.warning("sending %s failed: %s", event_type, error)
            return None
        return response.event_id if isinstance(response, RoomSendResponse) else None

    async def _send_event(self, room_id: str, outgoing: Outgoing) -> Any:
        """Encrypt if *tuichat's* state says the room is encrypted (never
        trusting a second opinion to send plaintext), then PUT the event."""
        client, crypto = self.client, self.crypto
        if client is None or crypto is None:
            raise RuntimeError("not connected yet")
        if room_id not in self.states:
            await asyncio.wait_for(self.first_sync_done.wait(), timeout=60)
        state = self.states.get(room_id)
        if state is None or state.membership is not Membership.JOIN:
            raise RuntimeError("you are not in this room")
        event_type, content = outgoing.event_type, outgoing.content
        if state.encrypted:
            content = await crypto.encrypt(
                room_id,
                state.members(("join", "invite")),
                state.content("m.room.encryption"),
                event_type,
                content,
            )
            event_type = "m.room.encrypted"
        method, path, data = Api.room_send(
            client.access_token, room_id, event_type, content, outgoing.txn_id
        )
        return await client._send(RoomSendResponse, method, path, data, (room_id,))
