"""Older history: from the cache first, then from the server's /messages.

The UI asks for what lies before the oldest event it shows. Events come
back oldest first as `TimelinePrepended`, decrypted through the same checks
as synced ones (undecryptable ones become placeholders that wait for their
keys). A /messages page arrives newest first; it is decrypted oldest first,
so each Megolm session's ratchet only moves forward (decrypting backwards
re-derives the ratchet for every message and is about half as fast).
Pages from the server are added to the cache with the token for the next.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tuichat.matrix.content.convert import Decryption, to_item
from tuichat.matrix.content.other_events import readable_predecessor
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.api import PAGE_SIZE
from tuichat.matrix.service.upgrade_history import before_tombstone, divider
from tuichat.matrix.transport.http import MatrixHttpError, path_segment
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import ContextFetched, Notice, TimelinePrepended
from tuichat.model.items import TimelineItem

log = logging.getLogger(__name__)


class TimelineGaps:
    """How a history page tells it is stale: the limited syncs (gaps) seen
    per room, and whether a sync has counted its gaps but not yet queued
    its cache writes. The sync loop writes it; `History` reads it."""

    def __init__(self) -> None:
        # A history page fetched before the latest gap belongs to a
        # timeline that was replaced.
        self.counts: dict[str, int] = {}
        # Clear while a sync has counted gaps and shown their rooms' newest
        # events but not yet queued its cache writes (it yields between
        # rooms): the cache still holds the timelines it replaces.
        self.writes_queued = asyncio.Event()
        self.writes_queued.set()

    def add(self, room_id: str) -> None:
        self.counts[room_id] = self.counts.get(room_id, 0) + 1

    def count(self, room_id: str) -> int:
        return self.counts.get(room_id, 0)


class History:
    """Scrolling back: cached events first, then /messages pages."""

    def __init__(self, context: AccountContext, gaps: TimelineGaps) -> None:
        self._context = context
        self.cache = context.cache
        self.emit = context.emit
        self._gaps = gaps
        self._history_locks: dict[str, asyncio.Lock] = {}
        # Upgraded rooms whose history continues in a predecessor: the
        # room read now for each, and those that have their divider.
        # (with the gaps the room had seen then).
        self._sources: dict[str, tuple[str, int]] = {}
        self._divided: set[str] = set()

    def _history_lock(self, room_id: str) -> asyncio.Lock:
        lock = self._history_locks.get(room_id)
        if lock is None:
            lock = self._history_locks[room_id] = asyncio.Lock()
        return lock

    async def load_older(
        self, room_id: str, before_event_id: str | None, limit: int = PAGE_SIZE
    ) -> bool:
        """Emit the events before `before_event_id` (a cached page if there
        is one, else a page from the server). Returns whether there may be
        more. Past the start of an upgraded room, its predecessor's history
        follows (`upgrade_history`)."""
        async with self._history_lock(room_id):
            source, gaps = self._sources.get(room_id, (room_id, 0))
            if source != room_id and gaps != self._gaps.count(room_id):
                # A gap replaced the room's timeline: its own history first.
                del self._sources[room_id]
                self._divided.discard(room_id)
                source = room_id
            return await self._load(source, room_id, before_event_id, limit)

    async def _load(self, source: str, shown: str, before_event_id: str | None, limit: int) -> bool:
        """A page of `source`'s history before `before_event_id` (None: its
        newest), emitted into the timeline of `shown`."""
        # The gaps are counted when no sync is between counting its own
        # and queuing its writes, then every write queued so far is
        # awaited: the reads below see the timeline of that count. A
        # limited sync handled meanwhile makes the answer stale (its
        # writes, the new gap's token among them, may still be queued).
        while not self._gaps.writes_queued.is_set():
            await self._gaps.writes_queued.wait()
        generation = self._gaps.count(source)
        await self.cache.flushed()
        if self._page_is_stale(source, generation, shown):
            return True
        stitched = source != shown
        predecessor = readable_predecessor(self._context.states, source)
        if before_event_id is not None or stitched:
            events, has_older = self.cache.load_events(source, limit, before_event_id)
            if events:
                more = has_older or self.cache.prev_batch(source) is not None
                more = more or predecessor is not None  # it continues there
                self.emit(TimelinePrepended(shown, self._page_items(source, shown, events), more))
                return more
        token = self.cache.prev_batch(source)
        if token is None:
            if predecessor is not None:
                return await self._continue_in(predecessor, shown, limit)
            self.emit(TimelinePrepended(shown, [], has_more=False))
            return False
        crypto = self._context.crypto
        assert crypto is not None
        try:
            page = await crypto.http.request(
                "GET",
                f"/rooms/{path_segment(source)}/messages",
                query={"dir": "b", "from": token, "limit": str(limit)},
            )
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("loading older messages of %s failed: %s", source, error)
            self.emit(Notice(f"Could not load older messages: {error}", error=True))
            self.emit(TimelinePrepended(shown, [], has_more=True))
            return True
        if self.handle_history_page(source, page, token, generation, shown=shown):
            return True
        if predecessor is not None:  # the room's start: on into its predecessor
            return await self._continue_in(predecessor, shown, limit)
        return False

    async def _continue_in(self, predecessor: str, shown: str, limit: int) -> bool:
        """`shown` reached its start: its history goes on in `predecessor`."""
        self._sources[shown] = (predecessor, self._gaps.count(shown))
        return await self._load(predecessor, shown, None, limit)

    def _page_items(
        self, source: str, shown: str, events: list[dict[str, Any]]
    ) -> list[TimelineItem]:
        """`source`'s events (oldest first) as items of `shown`'s timeline: a
        predecessor's without its tombstone, the divider below its newest."""
        if source == shown:
            return self._history_items(source, events)
        items = self._history_items(source, before_tombstone(events))
        if shown not in self._divided:
            self._divided.add(shown)
            newest = items[-1].timestamp if items else 0
            items.append(divider(source, newest))
        return items

    def handle_history_page(
        self,
        room_id: str,
        page: dict[str, Any],
        from_token: str,
        generation: int | None = None,
        *,
        shown: str | None = None,
    ) -> bool:
        """Process one /messages (dir=b) answer, fetched with `from_token`
        when the room had seen `generation` gaps; also used by benchmarks.
        `shown`: the timeline it goes to (default: the room's own)."""
        shown = shown or room_id
        chunk = page.get("chunk")
        events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
        events.reverse()  # oldest first: each session's ratchet moves forward
        end = page.get("end")
        token = end if isinstance(end, str) and events else None
        if generation is not None and self._page_is_stale(room_id, generation, shown):
            return True
        # Written behind the syncs already queued; the writer checks the
        # token again, so a gap that opens meanwhile is not written over.
        self.cache.prepend_events(room_id, events, from_token, token)
        crypto = self._context.crypto
        assert crypto is not None
        predecessor = readable_predecessor(self._context.states, room_id)
        items = self._page_items(room_id, shown, events)
        crypto.extras.flush()
        more = token is not None
        self.emit(TimelinePrepended(shown, items, has_more=more or predecessor is not None))
        return more

    def _page_is_stale(self, room_id: str, generation: int, shown: str | None = None) -> bool:
        """Whether a limited sync replaced the room's timeline since the
        request counted `generation` gaps. If so the page is dropped and the
        UI told there is more: it asks again from the new gap."""
        if generation == self._gaps.count(room_id):
            return False
        log.info("dropped a stale history page of %s", room_id)
        self.emit(TimelinePrepended(shown or room_id, [], has_more=True))
        return True

    def _history_items(self, room_id: str, events: list[dict[str, Any]]) -> list[TimelineItem]:
        context = self._context
        state = context.states.get(room_id)
        if state is None:
            return []
        encrypted = [e for e in events if e.get("type") == "m.room.encrypted"]
        if context.crypto is not None:
            decryptions = iter(context.crypto.decrypt_page(room_id, encrypted))
        else:
            # The store is not open yet (the App hands the service over
            # before): placeholders now, decrypted with the cached events
            # when it opens, older ones first.
            pending = context.snapshot.encrypted
            pending[room_id] = [*encrypted, *pending.get(room_id, [])]
            waiting = Decryption(None, context.snapshot.waiting_reason)
            decryptions = iter([waiting] * len(encrypted))
        items = []
        for event in events:
            decryption = next(decryptions) if event.get("type") == "m.room.encrypted" else None
            item = to_item(event, state, context.viewer, decryption)
            if item is not None:
                items.append(item)
        return items

    async def fetch_event(self, room_id: str, event_id: str) -> TimelineItem | None:
        """One event by id (a reply's parent not loaded here), decrypted if
        it can be; emitted as `ContextFetched`. Looked up in the cache
        first, then asked of the server."""
        state = self._context.states.get(room_id)
        crypto = self._context.crypto
        if state is None or crypto is None:
            return None
        await self.cache.flushed()
        event = self.cache.load_event(room_id, event_id)
        if event is None:
            try:
                event = await crypto.http.request(
                    "GET", f"/rooms/{path_segment(room_id)}/event/{path_segment(event_id)}"
                )
            except (MatrixHttpError, *NETWORK_ERRORS) as error:
                log.info("fetching %s failed: %s", event_id, error)
                return None
        if not isinstance(event, dict) or event.get("event_id") != event_id:
            return None
        decryption = None
        if event.get("type") == "m.room.encrypted":
            decryption = crypto.decrypt(room_id, event)
        item = to_item(event, state, self._context.viewer, decryption)
        if item is not None:
            self.emit(ContextFetched(room_id, [item]))
        return item
