"""Threads on the wire: a thread's earlier replies (relations API), a room's
thread list (`/threads`), thread replies out, threaded read receipts.

Replies come from ``GET /_matrix/client/v1/rooms/{room}/relations/{root}/
m.thread`` newest first (``dir=b``), page by page; they are decrypted
oldest first like a history page and emitted as `ThreadPage`. The thread
list comes from ``GET /_matrix/client/v1/rooms/{room}/threads`` (roots with
their server summaries) as `ThreadsListed`. A reply sent in a thread
carries ``rel_type: m.thread`` and an ``m.in_reply_to``: to the thread's
latest event with ``is_falling_back: true`` (what clients without threads
show), or to the message answered with ``is_falling_back: false``.
Threaded receipts (MSC3771) carry the root as ``thread_id``.
"""

from __future__ import annotations

import logging
from typing import Any

from tuichat.matrix.content.compose import message_content
from tuichat.matrix.content.convert import to_item
from tuichat.matrix.content.thread_relations import THREAD_REL_TYPE
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.send_queue import SendQueue
from tuichat.matrix.transport.http import MatrixHttpError, path_segment
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import Notice, ThreadPage, ThreadsListed
from tuichat.model.items import TimelineItem

log = logging.getLogger(__name__)

V1 = "/_matrix/client/v1"
THREAD_PAGE_SIZE = 30
THREAD_LIST_PAGE_SIZE = 25


def thread_reply_content(
    text: str,
    *,
    root: str,
    latest: str,
    reply_to: str | None = None,
    reply_sender: str | None = None,
    own_user_id: str = "",
    emote: bool = False,
    markdown: bool = True,
    mentions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The content of a message in thread `root`. Without `reply_to` the
    ``m.in_reply_to`` points at `latest` (the thread's newest event) and is
    only a fallback; with it, the message quotes `reply_to`."""
    content = message_content(
        text,
        emote=emote,
        markdown=markdown,
        mentions=mentions,
        reply_to=reply_to,
        reply_sender=reply_sender,
        own_user_id=own_user_id,
    )
    content["m.relates_to"] = {
        "rel_type": THREAD_REL_TYPE,
        "event_id": root,
        "is_falling_back": reply_to is None,
        "m.in_reply_to": {"event_id": reply_to or latest},
    }
    return content


class RoomThreads:
    """Reading and writing threads."""

    def __init__(self, context: AccountContext, sending: SendQueue) -> None:
        self._context = context
        self._sending = sending
        self.emit = context.emit

    async def _get(self, path: str, query: dict[str, str]) -> dict[str, Any] | None:
        crypto = self._context.crypto
        if crypto is None:
            self.emit(Notice("Not connected yet.", error=True))
            return None
        try:
            return await crypto.http.request("GET", path, query=query)
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("thread request failed: %s", error)
            self.emit(Notice(f"Could not load the thread: {error}", error=True))
            return None

    def _items(self, room_id: str, events: list[dict[str, Any]]) -> list[TimelineItem]:
        """Events (oldest first) as items, decrypted like a history page."""
        context = self._context
        state = context.states.get(room_id)
        crypto = context.crypto
        if state is None or crypto is None:
            return []
        encrypted = [e for e in events if e.get("type") == "m.room.encrypted"]
        decryptions = iter(crypto.decrypt_page(room_id, encrypted))
        items = []
        for event in events:
            decryption = next(decryptions) if event.get("type") == "m.room.encrypted" else None
            item = to_item(event, state, context.viewer, decryption)
            if item is not None:
                items.append(item)
        crypto.extras.flush()
        return items

    async def load_thread(self, room_id: str, root: str, from_token: str | None = None) -> bool:
        """Emit one page of thread `root`'s replies before `from_token` (the
        newest page without it). Returns whether earlier replies exist."""
        query = {"dir": "b", "limit": str(THREAD_PAGE_SIZE)}
        if from_token:
            query["from"] = from_token
        page = await self._get(
            f"{V1}/rooms/{path_segment(room_id)}/relations/{path_segment(root)}/{THREAD_REL_TYPE}",
            query,
        )
        if page is None:
            return False
        chunk = page.get("chunk")
        events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        events.reverse()  # oldest first
        token = page.get("next_batch")
        token = token if isinstance(token, str) and token and events else None
        items = [i for i in self._items(room_id, events) if i.thread_root == root or i.relation]
        self.emit(ThreadPage(room_id, root, items, has_more=token is not None, next_token=token))
        return token is not None

    async def list_threads(
        self, room_id: str, *, participated: bool = False, from_token: str | None = None
    ) -> str | None:
        """Emit a page of the room's threads (newest activity first); returns
        the token of the next page, if any."""
        query = {
            "include": "participated" if participated else "all",
            "limit": str(THREAD_LIST_PAGE_SIZE),
        }
        if from_token:
            query["from"] = from_token
        page = await self._get(f"{V1}/rooms/{path_segment(room_id)}/threads", query)
        if page is None:
            return None
        chunk = page.get("chunk")
        events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        token = page.get("next_batch")
        token = token if isinstance(token, str) and token else None
        self.emit(ThreadsListed(room_id, self._items(room_id, events), has_more=token is not None))
        return token

    def send_thread_message(
        self,
        room_id: str,
        root: str,
        text: str,
        *,
        latest: str,
        reply_to: str | None = None,
        reply_sender: str | None = None,
        emote: bool = False,
        markdown: bool = True,
        mentions: dict[str, str] | None = None,
    ) -> str:
        """Send `text` in thread `root` (see `thread_reply_content`);
        returns the transaction id."""
        content = thread_reply_content(
            text,
            root=root,
            latest=latest,
            reply_to=reply_to,
            reply_sender=reply_sender,
            own_user_id=self._context.user_id,
            emote=emote,
            markdown=markdown,
            mentions=mentions,
        )
        return self._sending.send_content(room_id, "m.room.message", content)

    async def send_thread_receipt(self, room_id: str, event_id: str, thread_id: str) -> bool:
        """A read receipt for `event_id` in thread `thread_id` (a root, or
        "main" for the main timeline)."""
        crypto = self._context.crypto
        if crypto is None or not event_id.startswith("$"):
            return False
        try:
            await crypto.http.request(
                "POST",
                f"/rooms/{path_segment(room_id)}/receipt/m.read/{path_segment(event_id)}",
                {"thread_id": thread_id},
            )
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.info("threaded receipt for %s not sent: %s", room_id, error)
            return False
        return True
