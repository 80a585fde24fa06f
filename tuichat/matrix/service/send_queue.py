"""Sending messages: local echo, the outbox, one room's messages in order.

Every message goes into the outbox (`tuichat/matrix/storage/outbox.py`) before it
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nio import RoomRedactResponse, RoomSendResponse
from nio.api import Api

from tuichat.matrix.content.compose import edit_content, message_content, reaction_content
from tuichat.matrix.content.convert import to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.group_sessions import KeyShareError
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.member_lists import MemberLists
from tuichat.matrix.service.token_recovery import TokenRecovery
from tuichat.matrix.storage.outbox import Outbox
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import (
    LocalEchoAdded,
    Notice,
    SendStateChanged,
)
from tuichat.model.items import SendState, TimelineItem
from tuichat.model.rooms import Membership

if TYPE_CHECKING:
    from tuichat.matrix.content.convert import Viewer
    from tuichat.matrix.crypto.engine import CryptoEngine
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

log = logging.getLogger(__name__)

RETRY_START = 1.0
RETRY_MAX = 30.0


class NotConnected(RuntimeError):
    """The service has not opened its store yet: a message waits."""


@dataclass
class Outgoing:
    """A message on its way out: kept until the server confirms it."""

    room_id: str
    txn_id: str
    content: dict[str, Any]
    event_type: str = "m.room.message"


class SendQueue:
    """Sending with a local echo, one room's messages strictly in order."""

    def __init__(
        self,
        context: AccountContext,
        outbox: Outbox,
        tokens: TokenRecovery,
        members: MemberLists,
    ) -> None:
        self._context = context
        self._members = members  # issue 25: complete before a key is shared
        self.outbox = outbox
        self._tokens = tokens
        self.user_id = context.user_id
        self.emit = context.emit
        self._send_queues: dict[str, asyncio.Queue[Outgoing]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self._outgoing: dict[str, Outgoing] = {}

    @property
    def client(self) -> TuichatClient | None:
        return self._context.client

    @property
    def crypto(self) -> CryptoEngine | None:
        return self._context.crypto

    @property
    def states(self) -> dict[str, RoomState]:
        return self._context.states

    @property
    def viewer(self) -> Viewer:
        return self._context.viewer

    def own_name(self, room_id: str) -> str:
        state = self.states.get(room_id)
        return state.member_name(self.user_id) if state else self.user_id

    def send_text(self, room_id: str, body: str, *, emote: bool = False) -> str:
        """Send plain text (no Markdown) with a local echo; returns its
        transaction id."""
        return self.send_message(room_id, body, emote=emote, markdown=False)

    def send_message(
        self,
        room_id: str,
        text: str,
        *,
        emote: bool = False,
        markdown: bool = True,
        mentions: dict[str, str] | None = None,
        reply_to: str | None = None,
        reply_sender: str | None = None,
    ) -> str:
        """Send what the user typed (Markdown unless `markdown` is off), as
        a reply if `reply_to` is set; returns the transaction id."""
        content = message_content(
            text,
            emote=emote,
            markdown=markdown,
            mentions=mentions,
            reply_to=reply_to,
            reply_sender=reply_sender,
            own_user_id=self.user_id,
        )
        return self.send_content(room_id, "m.room.message", content)

    def edit_message(
        self,
        room_id: str,
        event_id: str,
        text: str,
        *,
        emote: bool = False,
        markdown: bool = True,
        mentions: dict[str, str] | None = None,
    ) -> str:
        """Replace the content of our message `event_id` (`m.replace`)."""
        content = edit_content(event_id, text, emote=emote, markdown=markdown, mentions=mentions)
        return self.send_content(room_id, "m.room.message", content)

    def react(self, room_id: str, event_id: str, key: str) -> str:
        """Annotate `event_id` with `key` (an emoji, or short text)."""
        return self.send_content(room_id, "m.reaction", reaction_content(event_id, key))

    def send_content(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Through the outbox, in order with the room's other messages; new
        messages get a local echo (edits and reactions show when they come
        back)."""
        txn_id = f"tuichat-{uuid.uuid4().hex}"
        self.outbox.add(room_id, txn_id, event_type, content)
        echo = self._echo(room_id, txn_id, event_type, content)
        if echo is not None:
            self.emit(LocalEchoAdded(room_id, echo))
        self._enqueue(Outgoing(room_id, txn_id, content, event_type))
        return txn_id

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> bool:
        """Delete an event (our message, or our reaction to take it back)."""
        if self.client is None:
            self.emit(Notice("Not connected yet.", error=True))
            return False
        try:
            response = await self.client.room_redact(
                room_id, event_id, reason, tx_id=f"tuichat-{uuid.uuid4().hex}"
            )
        except NETWORK_ERRORS as error:
            self.emit(Notice(f"Could not delete: {error}", error=True, room_id=room_id))
            return False
        if not isinstance(response, RoomRedactResponse):
            message = getattr(response, "message", "") or str(response)
            self.emit(Notice(f"Could not delete: {message}", error=True, room_id=room_id))
            return False
        return True

    def _echo(
        self,
        room_id: str,
        txn_id: str,
        event_type: str,
        content: dict[str, Any],
        timestamp: int | None = None,
    ) -> TimelineItem | None:
        """The local echo of an outgoing event, converted like a received
        one; None for edits and reactions (not shown on their own)."""
        state = self.states.get(room_id) or RoomState(room_id, Membership.JOIN)
        event = {
            "type": event_type,
            "event_id": f"txn:{txn_id}",
            "sender": self.user_id,
            "origin_server_ts": timestamp or int(time.time() * 1000),
            "content": content,
        }
        item = to_item(event, state, self.viewer)
        if item is None or item.relation is not None:
            return None
        return item.replace(
            event_id=None,
            txn_id=txn_id,
            encrypted=state.encrypted,
            send_state=SendState.PENDING,
            highlight=False,
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
            if entry.event_type not in ("m.room.message", "m.reaction"):
                self.outbox.remove(entry.txn_id)
                continue
            echo = self._echo(
                entry.room_id, entry.txn_id, entry.event_type, entry.content, entry.created_ms
            )
            if echo is not None:
                self.emit(LocalEchoAdded(entry.room_id, echo))
            self._enqueue(Outgoing(entry.room_id, entry.txn_id, entry.content, entry.event_type))

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
        worker = self.workers.get(outgoing.room_id)
        if worker is None or worker.done():
            self.workers[outgoing.room_id] = asyncio.create_task(
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
            token = self.client.access_token if self.client is not None else ""
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
                if getattr(response, "status_code", None) == "M_UNKNOWN_TOKEN":
                    # An expired token is refreshed and the message sent at
                    # once; after a real logout it stays in the outbox, for
                    # the next start after `tuichat login`.
                    if await self._tokens.recover(token, bool(response.soft_logout)):
                        continue
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
            await asyncio.wait_for(self._context.first_sync_done.wait(), timeout=60)
        state = self.states.get(room_id)
        if state is None or state.membership is not Membership.JOIN:
            raise RuntimeError("you are not in this room")
        event_type, content = outgoing.event_type, outgoing.content
        if state.encrypted:
            # Members are loaded lazily: every one of them, before the key.
            await self._members.ensure_complete(room_id)
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
        return await client.send_parsed(RoomSendResponse, method, path, data, (room_id,))
