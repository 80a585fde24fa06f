"""Who read what and who is typing: receipts, the fully-read marker, typing.

Out: the room on screen moves the fully-read marker (`/read_markers`) and
sends a read receipt for the main timeline (`thread_id: main`, MSC3771; a
private one, `m.read.private`, when set so), one request in flight per
room, the latest event wins; the composer sends typing notifications. In:
`m.receipt` and `m.typing` ephemeral events and the `m.fully_read` room
account data come in sync responses and become `ReceiptsChanged`,
`TypingChanged` and `ReadMarkers`; our own threaded receipts become
`ThreadReceipts`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.transport.http import MatrixHttpError, path_segment
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import (
    ReadMarkers,
    ReceiptsChanged,
    ThreadCounts,
    ThreadReaders,
    ThreadReceipts,
    TypingChanged,
)

log = logging.getLogger(__name__)

TYPING_TIMEOUT_MS = 30_000


def _events(block: object) -> list[dict[str, Any]]:
    events = block.get("events") if isinstance(block, dict) else None
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


class ReadState:
    """Receipts, read markers and typing notifications, both ways."""

    def __init__(self, context: AccountContext) -> None:
        self._context = context
        # Read markers to send, and the task sending them, per room.
        self._read_wanted: dict[str, str] = {}
        self._read_tasks: dict[str, asyncio.Task[None]] = {}
        # Read receipts only our own devices see (`m.read.private`).
        self.private_receipts = False

    def set_read_marker(self, room_id: str, event_id: str) -> None:
        """The user has read up to `event_id`: remember it, and tell the
        server (receipt + fully-read marker) when connected."""
        self._context.cache.set_read_marker(room_id, event_id)
        if not event_id.startswith("$"):
            return
        self._read_wanted[room_id] = event_id
        task = self._read_tasks.get(room_id)
        if self._context.client is not None and (task is None or task.done()):
            self._read_tasks[room_id] = asyncio.create_task(
                self._send_read_markers(room_id), name=f"tuichat-read-{room_id}"
            )

    async def _send_read_markers(self, room_id: str) -> None:
        sent = None
        while (client := self._context.client) is not None and self._read_wanted.get(
            room_id
        ) != sent:
            event_id = self._read_wanted[room_id]
            crypto = self._context.crypto
            try:
                receipt_type = "m.read.private" if self.private_receipts else "m.read"
                if crypto is None:
                    receipt = "private_read_event" if self.private_receipts else "read_event"
                    response = await client.room_read_markers(
                        room_id, fully_read_event=event_id, **{receipt: event_id}
                    )
                else:
                    # The receipt is threaded (MSC3771): it says the main
                    # timeline is read, and leaves threads' replies unread.
                    response = await client.room_read_markers(room_id, fully_read_event=event_id)
                    await crypto.http.request(
                        "POST",
                        f"/rooms/{path_segment(room_id)}/receipt/{receipt_type}/"
                        f"{path_segment(event_id)}",
                        {"thread_id": "main"},
                    )
            except (MatrixHttpError, *NETWORK_ERRORS) as error:
                log.info("read markers for %s not sent: %s", room_id, error)
                return
            if getattr(response, "status_code", None):
                log.info("read markers for %s refused: %s", room_id, response)
            sent = event_id

    async def set_typing(self, room_id: str, typing: bool) -> None:
        client = self._context.client
        if client is None:
            return
        try:
            await client.room_typing(room_id, typing, timeout=TYPING_TIMEOUT_MS)
        except NETWORK_ERRORS as error:
            log.info("typing notification not sent: %s", error)

    def handle_ephemeral(
        self, room_id: str, info: dict[str, Any], state: RoomState
    ) -> dict[str, str]:
        """`m.typing` and `m.receipt` of one joined room in a sync; returns
        the receipts (user id -> event id) for the cache."""
        receipts: dict[str, tuple[str, str]] = {}
        own_threads: dict[str, str] = {}  # our threaded receipts: root -> event id
        # Others' threaded receipts: root -> user id -> (event id, name).
        thread_readers: dict[str, dict[str, tuple[str, str]]] = {}
        for event in _events(info.get("ephemeral")):
            content = event.get("content")
            if not isinstance(content, dict):
                continue
            if event.get("type") == "m.typing":
                user_ids = content.get("user_ids")
                typing = (
                    [u for u in user_ids or [] if isinstance(u, str) and u != self._context.user_id]
                    if isinstance(user_ids, list)
                    else []
                )
                self._context.emit(
                    TypingChanged(room_id, tuple(state.member_name(u) for u in typing))
                )
            elif event.get("type") == "m.receipt":
                for event_id, kinds in content.items():
                    readers = kinds.get("m.read") if isinstance(kinds, dict) else None
                    if not isinstance(event_id, str) or not isinstance(readers, dict):
                        continue
                    for user_id, data in readers.items():
                        thread = data.get("thread_id") if isinstance(data, dict) else None
                        if isinstance(user_id, str) and thread in (None, "main"):
                            receipts[user_id] = (event_id, state.member_name(user_id))
                        elif user_id == self._context.user_id and isinstance(thread, str):
                            own_threads[thread] = event_id  # threads (issue 21)
                        elif isinstance(user_id, str) and isinstance(thread, str):
                            readers = thread_readers.setdefault(thread, {})
                            readers[user_id] = (event_id, state.member_name(user_id))
        if receipts:
            self._context.emit(ReceiptsChanged(room_id, receipts))
        if own_threads:
            self._context.emit(ThreadReceipts(room_id, own_threads))
        for root, readers in thread_readers.items():
            self._context.emit(ThreadReaders(room_id, root, readers))
        for event in _events(info.get("account_data")):
            content = event.get("content")
            event_id = content.get("event_id") if isinstance(content, dict) else None
            if event.get("type") == "m.fully_read" and isinstance(event_id, str):
                self._context.emit(ReadMarkers({room_id: event_id}))
        return {user: event_id for user, (event_id, _name) in receipts.items()}

    def handle_thread_counts(self, room_id: str, info: dict[str, Any]) -> None:
        """The server's unread counts per thread (MSC3773), when the sync
        carries them: every thread with unread notifications; those not
        named have none."""
        block = info.get("unread_thread_notifications")
        if not isinstance(block, dict):
            return
        counts: dict[str, tuple[int, int]] = {}
        for root, value in block.items():
            if not isinstance(root, str) or not isinstance(value, dict):
                continue
            counts[root] = (
                _count(value.get("notification_count")),
                _count(value.get("highlight_count")),
            )
        self._context.emit(ThreadCounts(room_id, counts))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
