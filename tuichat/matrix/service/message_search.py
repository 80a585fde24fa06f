"""Message search (issue 24): the local index of encrypted rooms, the
server's /search for the others, and the context around a result.

Indexing: every item the service emits (a sync's new events, a history
page, a placeholder that decrypted, a reply's parent) passes `observe`:
decrypted messages of encrypted rooms are indexed, edits replace the text
found, redactions remove. The writes are batched once per loop turn and
run on the index's own thread (`search_index.py`, an SQLCipher file), so
the UI loop never waits for the disk.

History that was cached before (or before the index existed) is indexed in
the background by `index_history`: each encrypted room's cached events,
newest first, decrypted a slice at a time on the loop, with progress
emitted as `SearchIndexProgress`; optionally older history is fetched from
the server too (up to a number of events per room).

Searching: `search` asks the index for the encrypted rooms and the
server's /search (`next_batch` pages) for the rooms in the clear, and
returns one page of both, newest first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tuichat.matrix.content.convert import Decryption, to_item
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.storage.search_index import (
    HAS_BITS,
    HAS_FILE,
    HAS_IMAGE,
    HAS_LINK,
    IndexedEdit,
    IndexedMessage,
    IndexFilter,
    SearchIndex,
)
from tuichat.matrix.transport.http import MatrixHttpError, path_segment
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import (
    ContextFetched,
    ItemsReplaced,
    Notice,
    SearchIndexProgress,
    TimelineAppended,
    TimelinePrepended,
)
from tuichat.model.items import ItemKind, RelationKind, TimelineItem
from tuichat.model.pacing import SLICE_SECONDS
from tuichat.model.rooms import Membership
from tuichat.model.search_query import (
    IndexProgress,
    SearchCursor,
    SearchHit,
    SearchPage,
    SearchQuery,
    fold,
    has_link,
    match_expression,
    matched_spans,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PAGE = 30  # results per page, from each source
BACKFILL_PAGE = 200  # cached events read at a time
CONTEXT_LIMIT = 20  # events around a result fetched with /context
OPTIMIZE_AFTER = 5000  # messages indexed from history: then the index is merged
_TEXT_KINDS = frozenset({ItemKind.TEXT, ItemKind.EMOTE, ItemKind.NOTICE})
_OBSERVED = (TimelineAppended, TimelinePrepended, ItemsReplaced, ContextFetched)


def _kinds(item: TimelineItem) -> int:
    kinds = 0
    if item.attachment is not None:
        kinds |= HAS_FILE
        if item.attachment.msgtype == "m.image":
            kinds |= HAS_IMAGE
    if has_link(item.body):
        kinds |= HAS_LINK
    return kinds


def _text(item: TimelineItem) -> str:
    """What of a message is searchable: its body, and a file's name."""
    text = item.body
    if item.attachment is not None and item.attachment.name not in text:
        text = f"{text}\n{item.attachment.name}"
    return text


class MessageSearch:
    """The index, its feeding, and searches."""

    def __init__(self, context: AccountContext) -> None:
        self._context = context
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tuichat-search"
        )
        self._index: SearchIndex | None = None
        self._closed = False
        self._messages: list[IndexedMessage] = []
        self._edits: list[IndexedEdit] = []
        self._redactions: list[tuple[str, str]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._last_write: concurrent.futures.Future[Any] | None = None
        self._backfill: asyncio.Task[None] | None = None
        self.progress = IndexProgress()
        context.observers.append(self.observe)

    # -- the index's thread ------------------------------------------------------

    def _on_index(self, job: Callable[[SearchIndex], _T]) -> concurrent.futures.Future[_T]:
        return self._executor.submit(lambda: job(self._opened()))

    def _opened(self) -> SearchIndex:
        if self._index is None:
            profile = self._context.profile
            self._index = SearchIndex(profile.search_file, profile.pickle_key())
        return self._index

    async def _ask(self, job: Callable[[SearchIndex], _T]) -> _T:
        return await asyncio.wrap_future(self._on_index(job))

    async def opened(self) -> bool:
        """Open the index (if not yet); whether it had to start over."""
        return await self._ask(lambda index: index.rebuilt)

    async def flushed(self) -> None:
        """Wait until every message seen so far is written (tests, tools)."""
        self._flush()
        if self._last_write is not None:
            await asyncio.wrap_future(self._last_write)

    async def close(self) -> None:
        if self._closed:
            return
        if self._backfill is not None:
            self._backfill.cancel()
        self._flush()
        self._closed = True

        def close(index: SearchIndex) -> None:
            index.close()

        if self._index is not None:
            self._on_index(close)
        await asyncio.to_thread(self._executor.shutdown, True)

    # -- feeding -----------------------------------------------------------------

    def observe(self, event: object) -> None:
        """An event the service emitted: what it carries goes to the index."""
        if self._closed or not isinstance(event, _OBSERVED):
            return
        before = len(self._messages) + len(self._edits) + len(self._redactions)
        for item in event.items:
            self._collect(event.room_id, item)
        if len(self._messages) + len(self._edits) + len(self._redactions) > before:
            self._schedule_flush()

    def _collect(self, room_id: str, item: TimelineItem) -> None:
        event_id = item.event_id
        if event_id is None or item.is_local_echo:
            return
        relation = item.relation
        if relation is not None:
            if relation.kind is RelationKind.REDACTION:
                self._redactions.append((room_id, relation.target))
            elif relation.kind is RelationKind.EDIT and item.encrypted:
                self._edits.append(
                    IndexedEdit(
                        room_id,
                        event_id,
                        relation.target,
                        item.sender,
                        item.timestamp,
                        _text(item),
                        _kinds(item),
                    )
                )
            return
        if item.kind is ItemKind.REDACTED:
            self._redactions.append((room_id, event_id))
        elif item.encrypted and item.kind in _TEXT_KINDS:
            self._messages.append(
                IndexedMessage(
                    room_id,
                    event_id,
                    item.sender,
                    item.sender_name,
                    item.timestamp,
                    _text(item),
                    _kinds(item),
                )
            )

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self._closed or not (self._messages or self._edits or self._redactions):
            return
        messages, edits, redactions = self._messages, self._edits, self._redactions
        self._messages, self._edits, self._redactions = [], [], []
        future = self._on_index(lambda index: index.write(messages, edits, redactions))
        future.add_done_callback(_log_failure)
        self._last_write = future

    # -- indexing existing history -----------------------------------------------

    def index_history(self, fetch_older: int = 0) -> None:
        """Index the encrypted rooms' cached history in the background (once
        per room and index); with `fetch_older`, also up to that many older
        events per room from the server."""
        if self._backfill is None or self._backfill.done():
            self._backfill = asyncio.get_running_loop().create_task(
                self._index_history(fetch_older)
            )
            self._backfill.add_done_callback(_log_task_failure)

    async def _index_history(self, fetch_older: int) -> None:
        context = self._context
        if await self.opened():
            context.emit(
                Notice(
                    "The search index could not be opened with this profile's key "
                    "(or was damaged): it is being built again."
                )
            )
        await context.first_sync_done.wait()
        rooms = [
            room_id
            for room_id, state in context.states.items()
            if state.encrypted and state.membership is Membership.JOIN
        ]
        done_before = await self._ask(lambda index: index.meta("history_done") or "")
        todo = [r for r in rooms if r not in set(done_before.split())]
        progress = IndexProgress(0, len(todo), 0, running=bool(todo))
        self._report(progress)
        finished = set(done_before.split())
        for number, room_id in enumerate(todo, 1):
            indexed, complete = await self._index_cached(room_id)
            if fetch_older > 0:
                indexed += await self._fetch_older(room_id, fetch_older)
            if complete:
                finished.add(room_id)
                line = " ".join(sorted(finished))
                await self._ask(lambda index, line=line: index.set_meta("history_done", line))  # type: ignore[misc]
            progress = IndexProgress(number, len(todo), progress.messages + indexed, True)
            self._report(progress)
        await self.flushed()
        if progress.messages >= OPTIMIZE_AFTER:
            await self._ask(lambda index: index.optimize())
        self._report(IndexProgress(len(todo), len(todo), progress.messages, running=False))

    def _report(self, progress: IndexProgress) -> None:
        self.progress = progress
        self._context.emit(SearchIndexProgress(progress))

    async def _index_cached(self, room_id: str) -> tuple[int, bool]:
        """Index one room's cached events not indexed yet: (how many, and
        whether every message in it could be decrypted)."""
        cache = self._context.cache
        await cache.flushed()
        before: str | None = None
        count, complete = 0, True
        while True:
            events, has_older = cache.load_events(room_id, BACKFILL_PAGE, before)
            if not events:
                break
            before = (
                events[0].get("event_id") if isinstance(events[0].get("event_id"), str) else None
            )
            ids = [e["event_id"] for e in events if isinstance(e.get("event_id"), str)]
            known = await self._ask(lambda index, ids=ids: index.known(room_id, ids))  # type: ignore[misc]
            fresh = [e for e in events if e.get("event_id") not in known]
            added, whole = await self._index_events(room_id, fresh)
            count += added
            complete = complete and whole
            if not has_older or before is None:
                break
        return count, complete

    async def _index_events(self, room_id: str, events: list[dict[str, Any]]) -> tuple[int, bool]:
        """Decrypt (oldest first) and index raw events, a slice at a time."""
        context = self._context
        state, crypto = context.states.get(room_id), context.crypto
        if state is None or crypto is None or not events:
            return 0, True
        items: list[TimelineItem] = []
        whole = True
        deadline = time.perf_counter() + SLICE_SECONDS
        for event in events:
            decryption: Decryption | None = None
            if event.get("type") == "m.room.encrypted":
                decryption = crypto.decrypt(room_id, event)
            item = to_item(event, state, context.viewer, decryption)
            if item is not None:
                whole = whole and item.kind is not ItemKind.UNDECRYPTABLE
                items.append(item)
            if time.perf_counter() > deadline:
                await asyncio.sleep(0)
                deadline = time.perf_counter() + SLICE_SECONDS
        before = len(self._messages)
        for item in items:
            self._collect(room_id, item)
        added = len(self._messages) - before
        self._flush()
        await asyncio.sleep(0)
        return added, whole

    async def _fetch_older(self, room_id: str, limit: int) -> int:
        """Up to `limit` events older than the cache's, from /messages:
        cached (as a history page would be) and indexed."""
        context = self._context
        crypto = context.crypto
        fetched = indexed = 0
        while crypto is not None and fetched < limit:
            token = context.cache.prev_batch(room_id)
            if token is None:
                break
            size = min(100, limit - fetched)
            try:
                page = await crypto.http.request(
                    "GET",
                    f"/rooms/{path_segment(room_id)}/messages",
                    query={"dir": "b", "from": token, "limit": str(size)},
                )
            except (MatrixHttpError, *NETWORK_ERRORS) as error:
                log.info("fetching older history of %s to index failed: %s", room_id, error)
                break
            chunk = page.get("chunk")
            events = [e for e in chunk if isinstance(e, dict)] if isinstance(chunk, list) else []
            events.reverse()
            end = page.get("end")
            next_token = end if isinstance(end, str) and events else None
            written = context.cache.prepend_events(room_id, events, token, next_token)
            if not await asyncio.wrap_future(written):
                break  # the UI loaded this page meanwhile (or a gap opened)
            added, _whole = await self._index_events(room_id, events)
            indexed += added
            fetched += len(events)
            if next_token is None:
                break
        return indexed

    # -- searching ---------------------------------------------------------------

    def _rooms_for(self, query: SearchQuery, room_id: str | None) -> set[str] | None:
        """The rooms searched (None: all): `in:` filters, else the current
        room unless --all."""
        states = self._context.states
        if query.rooms:
            chosen: set[str] = set()
            for wanted in query.rooms:
                folded = fold(wanted)
                for rid, state in states.items():
                    name = state.display_name(self._context.user_id)
                    if (
                        wanted == rid
                        or (wanted.startswith("#") and wanted == state.canonical_alias)
                        or (not wanted.startswith(("#", "!")) and folded in fold(name))
                    ):
                        chosen.add(rid)
            return chosen
        if query.all_rooms or room_id is None:
            return None
        return {room_id}

    async def search(
        self, query: SearchQuery, room_id: str | None, cursor: SearchCursor | None = None
    ) -> SearchPage:
        """One page of results (the first without `cursor`)."""
        self._flush()
        cursor = cursor or SearchCursor()
        rooms = self._rooms_for(query, room_id)
        states = self._context.states
        joined = {r for r, s in states.items() if s.membership is Membership.JOIN}
        scope = joined if rooms is None else rooms & joined
        clear = sorted(r for r in scope if not states[r].encrypted)
        local: list[SearchHit] = []
        local_offset, local_done = cursor.local_offset, cursor.local_done
        if not local_done:
            where = IndexFilter(
                rooms=None if rooms is None else frozenset(rooms),
                senders=frozenset(query.senders),
                kinds=sum(HAS_BITS[h] for h in query.has),
                before_ms=query.before_ms,
                after_ms=query.after_ms,
            )
            match = match_expression(query)
            found = await self._ask(
                lambda index: index.search(match, where, limit=PAGE, offset=local_offset)
            )
            local = [
                SearchHit(h.room_id, h.event_id, h.sender, h.sender_name, h.timestamp, h.text, True)
                for h in found
            ]
            local_offset += len(found)
            local_done = len(found) < PAGE
        remote: list[SearchHit] = []
        batch, server_done, note = cursor.server_batch, cursor.server_done, ""
        if not server_done and clear and not query.has_text:
            server_done, note = True, "Rooms in the clear are searched by the server: add words."
        elif not server_done and clear:
            remote, batch, note = await self._server_search(query, clear, batch)
            server_done = batch is None
        elif not clear:
            server_done = True
        hits = sorted([*local, *remote], key=lambda h: (h.timestamp, h.event_id), reverse=True)
        following = SearchCursor(local_offset, local_done, batch, server_done)
        return SearchPage(tuple(hits), None if following.done else following, note)

    async def _server_search(
        self, query: SearchQuery, rooms: list[str], batch: str | None
    ) -> tuple[list[SearchHit], str | None, str]:
        """One page of the server's /search over rooms in the clear; filters
        it cannot apply (dates, images, links, phrases) are applied here."""
        crypto = self._context.crypto
        if crypto is None:
            return [], None, "Not connected: rooms in the clear were not searched."
        room_filter: dict[str, Any] = {"rooms": rooms, "limit": PAGE}
        if query.senders:
            room_filter["senders"] = list(query.senders)
        if query.has & {"file", "image"}:
            room_filter["contains_url"] = True
        body = {
            "search_categories": {
                "room_events": {
                    "search_term": query.server_terms(),
                    "keys": ["content.body"],
                    "order_by": "recent",
                    "filter": room_filter,
                }
            }
        }
        try:
            answer = await crypto.http.request(
                "POST", "/search", body, query={"next_batch": batch} if batch else None
            )
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.info("server search failed: %s", error)
            return [], None, f"The server's search failed: {error}"
        categories = answer.get("search_categories")
        events = categories.get("room_events") if isinstance(categories, dict) else None
        events = events if isinstance(events, dict) else {}
        results = events.get("results")
        hits = []
        for result in results if isinstance(results, list) else []:
            event = result.get("result") if isinstance(result, dict) else None
            hit = self._server_hit(event, query) if isinstance(event, dict) else None
            if hit is not None:
                hits.append(hit)
        following = events.get("next_batch")
        return hits, following if isinstance(following, str) and results else None, ""

    def _server_hit(self, event: dict[str, Any], query: SearchQuery) -> SearchHit | None:
        room_id = event.get("room_id")
        state = self._context.states.get(room_id) if isinstance(room_id, str) else None
        if state is None or not isinstance(room_id, str):
            return None
        item = to_item(event, state, self._context.viewer, None)
        if item is None or item.event_id is None or item.kind not in _TEXT_KINDS:
            return None
        if item.relation is not None:
            return None
        kinds = _kinds(item)
        if any(not kinds & HAS_BITS[h] for h in query.has):
            return None
        if query.before_ms is not None and item.timestamp >= query.before_ms:
            return None
        if query.after_ms is not None and item.timestamp < query.after_ms:
            return None
        text = _text(item)
        if query.phrases and len(matched_spans(text, query)) == 0:
            return None
        return SearchHit(
            room_id, item.event_id, item.sender, item.sender_name, item.timestamp, text, False
        )

    # -- context ------------------------------------------------------------------

    async def event_context(self, room_id: str, event_id: str) -> list[TimelineItem]:
        """The event and those around it (oldest first), decrypted where
        they can be: from the server's /context."""
        context = self._context
        crypto, state = context.crypto, context.states.get(room_id)
        if crypto is None or state is None:
            return []
        try:
            answer = await crypto.http.request(
                "GET",
                f"/rooms/{path_segment(room_id)}/context/{path_segment(event_id)}",
                query={"limit": str(CONTEXT_LIMIT)},
            )
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.info("fetching the context of %s failed: %s", event_id, error)
            context.emit(Notice(f"Could not load the message's context: {error}", error=True))
            return []
        before = answer.get("events_before")
        after = answer.get("events_after")
        middle = answer.get("event")
        events = [
            *reversed(before if isinstance(before, list) else []),
            *([middle] if isinstance(middle, dict) else []),
            *(after if isinstance(after, list) else []),
        ]
        events = [e for e in events if isinstance(e, dict)]
        encrypted = [e for e in events if e.get("type") == "m.room.encrypted"]
        decryptions = iter(crypto.decrypt_page(room_id, encrypted))
        items = []
        for event in events:
            decryption = next(decryptions) if event.get("type") == "m.room.encrypted" else None
            item = to_item(event, state, context.viewer, decryption)
            if item is not None:
                items.append(item)
        return items


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        log.error("writing the search index failed: %s", error)


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("indexing history for search failed", exc_info=task.exception())
