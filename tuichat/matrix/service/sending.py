"""Sending messages: local echo, the outbox, one room's messages in order.

Every message goes into the outbox (`tuichat/matrix/outbox.py`) before it
is first sent and leaves it when the server confirms it. While the server
cannot be reached (connection refused, timeouts, 5xx) the message stays
pending and is tried again with capped exponential back-off, holding back
the room's later messages so they arrive in order; 429 answers are waited
out by nio with the server's `retry_after_ms`. Only a refusal (4xx: not in
the room, forbidden, too large) marks it failed; Ctrl+R sends it again.
Whatever is still in the outbox at start-up is sent again with its
original transaction id, so nothing is lost or doubled by a crash.
"""

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

from tuichat.matrix.crypto.group_sessions import KeyShareError
from tuichat.matrix.events import (
    LocalEchoAdded,
    Notice,
    SendStateChanged,
)
from tuichat.matrix.network import NETWORK_ERRORS
from tuichat.matrix.service.base import (
    Outgoing,
    ServiceBase,
)
from tuichat.model.items import ItemKind, SendState, TimelineItem
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import clean_text

log = logging.getLogger(__name__)

RETRY_START = 1.0
RETRY_MAX = 30.0


class NotConnected(RuntimeError):
    """The service has not opened its store yet: a message waits."""


class SendingMixin(ServiceBase):
    """Sending with a local echo, one room's messages strictly in order."""

    def own_name(self, room_id: str) -> str:
        state = self.states.get(room_id)
        return state.member_name(self.user_id) if state else self.user_id

    def send_text(self, room_id: str, body: str, *, emote: bool = False) -> str:
        """Send a text message with a local echo; returns its transaction id."""
        content = {"msgtype": "m.emote" if emote else "m.text", "body": body}
        txn_id = f"tuichat-{uuid.uuid4().hex}"
        self.outbox.add(room_id, txn_id, "m.room.message", content)
        self.emit(LocalEchoAdded(room_id, self._echo(room_id, txn_id, content)))
        self._enqueue(Outgoing(room_id, txn_id, content))
        return txn_id

    def _echo(
        self, room_id: str, txn_id: str, content: dict[str, Any], timestamp: int | None = None
    ) -> TimelineItem:
        state = self.states.get(room_id)
        emote = content.get("msgtype") == "m.emote"
        return TimelineItem(
            key=f"txn:{txn_id}",
            sender=self.user_id,
            sender_name=self.own_name(room_id),
            timestamp=timestamp or int(time.time() * 1000),
            kind=ItemKind.EMOTE if emote else ItemKind.TEXT,
            body=clean_text(content.get("body")),
            txn_id=txn_id,
            encrypted=bool(state and state.encrypted),
            send_state=SendState.PENDING,
        )

    def resume_outbox(self) -> None:
        """Show and send what an earlier run left unsent, in order."""
        entries, unreadable = self.outbox.pending()
        if unreadable:
            self.emit(
                Notice(
                    f"{unreadable} unsent message(s) from an earlier run could not be read "
                    "(the profile's key changed) and were dropped.",
                    error=True,
                )
            )
        for entry in entries:
            if entry.event_type != "m.room.message":
                self.outbox.remove(entry.txn_id)
                continue
            echo = self._echo(entry.room_id, entry.txn_id, entry.content, entry.created_ms)
            self.emit(LocalEchoAdded(entry.room_id, echo))
            self._enqueue(Outgoing(entry.room_id, entry.txn_id, entry.content))

    def retry(self, room_id: str, txn_id: str) -> bool:
        """Send a failed message again, with the same transaction id, so a
        retry after a lost response cannot duplicate it."""
        outgoing = self._outgoing.get(txn_id)
        if outgoing is None:
            return False
        self.outbox.add(outgoing.room_id, txn_id, outgoing.event_type, outgoing.content)
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
        """Send until the server confirms or refuses; while it cannot be
        reached, wait and try again (the room's later messages wait too)."""
        room_id, txn_id = outgoing.room_id, outgoing.txn_id
        delay = RETRY_START
        while True:
            try:
                response = await self._send_event(room_id, outgoing)
            except asyncio.CancelledError:
                raise
            except (NotConnected, KeyShareError) as exc:
                error, transient = str(exc), True
            except NETWORK_ERRORS as exc:
                error, transient = str(exc) or type(exc).__name__, True
            except Exception as exc:  # noqa: BLE001 - any other failure is shown, retryable
                error, transient = str(exc) or type(exc).__name__, False
            else:
                if isinstance(response, RoomSendResponse):
                    self._outgoing.pop(txn_id, None)
                    self.outbox.remove(txn_id)
                    self.emit(SendStateChanged(room_id, txn_id, SendState.SENT, response.event_id))
                    return
                error = getattr(response, "message", "") or str(response)
                status = getattr(getattr(response, "transport_response", None), "status", 0)
                transient = not status or status >= 500
            if not transient:
                break
            log.info("sending %s: %s; trying again in %.0f s", txn_id, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        log.warning("sending %s failed: %s", txn_id, error)
        self.outbox.remove(txn_id)
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
            raise NotConnected("not connected yet")
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
