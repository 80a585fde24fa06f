"""Threads of one room: replies kept out of the main timeline, each
thread's own timeline, and the summary shown under its root.

`RoomTimeline` is the room's main `Timeline` with threads taken out: a
thread reply (`TimelineItem.thread_root`) goes to its thread's own
`Timeline`, as do the edits, reactions and redactions of thread replies
(found by their target); the root, which stays in the main timeline, is
decorated with a `ThreadSummary` built from what is known here and from
the server's summary (unsigned ``m.relations.m.thread``). `ThreadView` is
what a thread pane shows: the root, then the replies. Each thread keeps its
own read marker (threaded read receipts, MSC3771); the room counts as
unread when its main timeline or any thread is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from tuichat.model.items import SendState, ThreadSummary, TimelineItem
from tuichat.model.layout import ItemList
from tuichat.model.sanitize import clean_line
from tuichat.model.timeline import ChangeKind, Timeline, TimelineChange

PREVIEW_LENGTH = 80


def preview(item: TimelineItem) -> str:
    """A short one-line preview of an item for a summary line."""
    if item.utd_reason is not None:
        return "🔒 encrypted message"
    return clean_line(" ".join(item.body.split()), max_length=PREVIEW_LENGTH)


def shifted(change: TimelineChange, by: int) -> TimelineChange:
    """`change` with its indices moved down by `by` rows."""
    if change.kind is ChangeKind.RESET:
        return change
    return replace(
        change,
        index=change.index + by,
        indices=tuple(index + by for index in change.indices),
    )


@dataclass
class Thread:
    """One thread: its replies (a `Timeline` of their own) and what the
    server said of it."""

    root: str
    timeline: Timeline
    server: ThreadSummary | None = None
    has_more: bool = True  # earlier replies may exist (relations pages)
    next_token: str | None = None  # where the next relations page starts
    root_item: TimelineItem | None = None  # the root when not in the main timeline
    took_part: bool = False  # a reply of ours is among those known here
    # The server's unread (notifications, highlights) in it (MSC3773).
    server_counts: tuple[int, int] = (0, 0)
    watched: bool = False  # shown in a pane: its changes are kept for it
    changes: list[TimelineChange] = field(default_factory=list)  # for the pane

    def note(self, change: TimelineChange) -> None:
        if self.watched:
            self.changes.append(change)

    def latest(self) -> TimelineItem | None:
        timeline = self.timeline
        count = timeline.remote_count
        return timeline[count - 1] if count else None

    def unread_counts(self, own_user_id: str, baseline: int = 0) -> tuple[int, int]:
        """(unread, highlight) replies from others. Without a threaded
        receipt, replies older than `baseline` (when the room was last
        read as tuichat started) count as read, so old threads nobody
        opened do not all count at once."""
        local = self._local_unread(own_user_id, baseline)
        server = self.server_counts
        return (max(local[0], server[0]), max(local[1], server[1]))

    def _local_unread(self, own_user_id: str, baseline: int) -> tuple[int, int]:
        timeline = self.timeline
        if timeline.read_marker is not None:
            return timeline.unread_counts(own_user_id)
        unread = highlight = 0
        for index in range(timeline.remote_count - 1, -1, -1):
            item = timeline[index]
            if item.timestamp <= baseline:
                break
            if item.sender != own_user_id and item.counts_unread:
                unread += 1
                highlight += item.highlight
        return unread, highlight

    def summary(self, own_user_id: str, baseline: int = 0) -> ThreadSummary:
        """The summary line: the server's, brought up to date with what
        came here since."""
        timeline, server = self.timeline, self.server
        local = timeline.remote_count
        count = local
        latest = self.latest()
        if server is not None:
            newer = 0
            for index in range(local - 1, -1, -1):
                if timeline[index].timestamp <= server.latest_ts:
                    break
                newer += 1
            count = max(local, server.count + newer)
        participated = (server is not None and server.participated) or self.took_part
        unread = self.unread_counts(own_user_id, baseline)[0] > 0
        if latest is None or (server is not None and server.latest_ts > latest.timestamp):
            if server is None:
                return ThreadSummary(count=0, participated=participated)
            unread = unread or (
                server.latest_sender != own_user_id
                and timeline.read_marker is None
                and server.latest_event_id is not None
                and server.latest_ts > baseline
            )
            return replace(server, count=count, participated=participated, unread=unread)
        return ThreadSummary(
            count=count,
            latest_sender=latest.sender,
            latest_sender_name=latest.sender_name,
            latest_preview=preview(latest),
            latest_ts=latest.timestamp,
            latest_event_id=latest.event_id,
            participated=participated,
            unread=unread,
        )


class RoomTimeline(Timeline):
    """The main timeline of a room, with its threads beside it."""

    def __init__(self, room_id: str, own_user_id: str = "") -> None:
        self.threads: dict[str, Thread] = {}
        self._thread_of: dict[str, str] = {}  # thread reply event id -> root
        self._echo_thread: dict[str, str] = {}  # txn id of a thread echo -> root
        self.threads_listed = False  # the server's thread list was read
        self._baseline: int | None = None
        self.threads_have_more = False
        super().__init__(room_id, own_user_id)

    # -- threads ---------------------------------------------------------------------

    def thread(self, root: str) -> Thread:
        thread = self.threads.get(root)
        if thread is None:
            thread = self.threads[root] = Thread(root, Timeline(self.room_id, self.own_user_id))
        return thread

    def baseline(self) -> int:
        """When the room was read as first known here (its read marker's
        time): threads without a receipt are read up to then."""
        if self._baseline is None and self.read_marker is not None:
            marker = self.get(self.read_marker)
            if marker is not None:
                self._baseline = marker.timestamp
        return self._baseline or 0

    def mark_read(self) -> None:
        first = self._baseline is None
        super().mark_read()
        if first and self.baseline():
            # The first read position: roots drawn before it was known
            # may have counted old replies unread.
            for root in self.threads:
                self._redecorate(root)

    def root_of(self, event_id: str) -> str | None:
        """The root of the thread `event_id` replies in, if it does."""
        return self._thread_of.get(event_id)

    def root_item(self, root: str) -> TimelineItem | None:
        thread = self.threads.get(root)
        return self.lookup(root) or (thread.root_item if thread else None)

    def ordered_threads(self) -> list[Thread]:
        """Threads with a known root or reply, newest activity first."""
        return sorted(
            (t for t in self.threads.values() if t.latest() or t.server or t.root_item),
            key=lambda t: -self.activity(t),
        )

    def activity(self, thread: Thread) -> int:
        """When a thread last saw a reply (or its root, if none)."""
        latest = thread.latest()
        times = [latest.timestamp if latest else 0]
        if thread.server is not None:
            times.append(thread.server.latest_ts)
        root = self.root_item(thread.root)
        if root is not None:
            times.append(root.timestamp)
        return max(times)

    def thread_summary(self, root: str) -> ThreadSummary | None:
        thread = self.threads.get(root)
        return thread.summary(self.own_user_id, self.baseline()) if thread else None

    def drain_thread_changes(self, root: str) -> list[TimelineChange]:
        thread = self.threads.get(root)
        if thread is None:
            return []
        changes, thread.changes = thread.changes, []
        return changes

    def _route(self, item: TimelineItem) -> str | None:
        """The thread an incoming item belongs to, if any."""
        if item.relation is None:
            return item.thread_root
        return self._thread_of.get(item.relation.target)

    def _note_server(self, items: Iterable[TimelineItem]) -> None:
        for item in items:
            if item.thread is not None and item.event_id is not None and item.relation is None:
                self._take_server(item.event_id, item.thread)

    def _take_server(self, root: str, summary: ThreadSummary) -> None:
        thread = self.thread(root)
        if thread.server is None or summary.latest_ts >= thread.server.latest_ts:
            thread.server = summary

    def _into_thread(self, root: str, items: list[TimelineItem], *, older: bool) -> None:
        thread = self.thread(root)
        for item in items:
            if item.event_id is not None and item.relation is None:
                self._thread_of[item.event_id] = root
                thread.took_part = thread.took_part or item.sender == self.own_user_id
        latest = thread.latest()
        if older:
            change = thread.timeline.prepend(items)
        elif latest is not None and all(
            item.relation is None and item.timestamp < latest.timestamp for item in items
        ):
            # Replies older than the newest known (seen in the room's
            # history) go above the known ones.
            change = thread.timeline.prepend(items)
        else:
            change = thread.timeline.append(items)
        thread.note(change)

    def _split(
        self, items: Iterable[TimelineItem]
    ) -> tuple[list[TimelineItem], dict[str, list[TimelineItem]]]:
        items = list(items)
        self._note_server(items)
        main: list[TimelineItem] = []
        threaded: dict[str, list[TimelineItem]] = {}
        for item in items:
            root = self._route(item)
            if root is None:
                main.append(item)
            else:
                threaded.setdefault(root, []).append(item)
        return main, threaded

    def _refresh_roots(self, roots: Iterable[str], change: TimelineChange) -> TimelineChange:
        """Redecorate thread roots (their summary changed) and add them to
        `change`."""
        extra: list[int] = []
        for root in roots:
            extra.extend(self._redecorate(root))
        if not extra:
            return change
        if change.kind is ChangeKind.RESET:
            return change
        if change.kind is ChangeKind.APPENDED:
            extra = [i for i in extra if i < change.index]
        indices = tuple(sorted({*change.indices, *extra}))
        return replace(change, indices=indices)

    # -- Timeline, with threads taken out ----------------------------------------------

    def _decorate(self, base: TimelineItem) -> TimelineItem:
        item = super()._decorate(base)
        key = base.event_id
        thread = self.threads.get(key) if key is not None else None
        if thread is None:
            return item
        summary = thread.summary(self.own_user_id, self.baseline())
        if not summary.count:
            summary = None  # a thread started but no reply yet
        return item if item.thread == summary else item.replace(thread=summary)

    def append(self, items: Iterable[TimelineItem]) -> TimelineChange:
        main, threaded = self._split(items)
        for root, replies in threaded.items():
            self._into_thread(root, replies, older=False)
        change = super().append(main)
        return self._refresh_roots(threaded, change)

    def prepend(self, items: Sequence[TimelineItem]) -> TimelineChange:
        main, threaded = self._split(items)
        for root, replies in threaded.items():
            self._into_thread(root, replies, older=True)
        change = super().prepend(main)
        return self._refresh_roots(threaded, change)

    def replace(self, items: Iterable[TimelineItem], hidden: Iterable[str] = ()) -> TimelineChange:
        hidden = tuple(hidden)
        main, threaded = self._split(items)
        for root, replaced in threaded.items():
            thread = self.thread(root)
            thread.note(thread.timeline.replace(replaced, hidden))
        change = super().replace(main, hidden)
        return self._refresh_roots(threaded, change)

    def add_context(self, items: Iterable[TimelineItem]) -> TimelineChange:
        items = list(items)
        self._note_server(items)
        for item in items:
            thread = self.threads.get(item.event_id or "")
            if thread is not None:
                thread.root_item = item
                thread.note(TimelineChange(ChangeKind.RESET))
        return super().add_context(items)

    def add_local_echo(self, item: TimelineItem) -> TimelineChange:
        root = item.thread_root
        if root is None:
            return super().add_local_echo(item)
        thread = self.thread(root)
        if item.txn_id:
            self._echo_thread[item.txn_id] = root
        thread.note(thread.timeline.add_local_echo(item))
        return TimelineChange(ChangeKind.REPLACED)

    def update_local_echo(
        self, txn_id: str, state: SendState, event_id: str | None = None
    ) -> TimelineChange:
        root = self._echo_thread.get(txn_id)
        if root is None:
            return super().update_local_echo(txn_id, state, event_id)
        thread = self.thread(root)
        thread.note(thread.timeline.update_local_echo(txn_id, state, event_id))
        return TimelineChange(ChangeKind.REPLACED)

    def local_echo(self, txn_id: str) -> TimelineItem | None:
        root = self._echo_thread.get(txn_id)
        if root is not None:
            return self.thread(root).timeline.local_echo(txn_id)
        return super().local_echo(txn_id)

    def settle_waiting(self, reason: str) -> TimelineChange:
        for thread in self.threads.values():
            thread.note(thread.timeline.settle_waiting(reason))
        return super().settle_waiting(reason)

    def lookup(self, event_id: str) -> TimelineItem | None:
        found = super().lookup(event_id)
        root = self._thread_of.get(event_id) if found is None else None
        if root is not None:
            return self.thread(root).timeline.lookup(event_id)
        return found

    def own_reaction(self, event_id: str, key: str) -> str | None:
        root = self._thread_of.get(event_id)
        if root is not None:
            return self.thread(root).timeline.own_reaction(event_id, key)
        return super().own_reaction(event_id, key)

    def unread_counts(self, own_user_id: str) -> tuple[int, int]:
        """The main timeline's counts plus every thread's. Packed and
        without threads, read from the packed items (as `baseline`)."""
        packed = self.packed_items
        if packed is not None and not self.holds("threads"):
            if self._baseline is None and self.read_marker is not None:
                marker = packed.index_of(self.read_marker)
                if marker is not None:
                    self._baseline = packed.timestamp(marker)
            return packed.unread_counts(self.read_marker, own_user_id)
        unread, highlight = super().unread_counts(own_user_id)
        baseline = self.baseline()
        for thread in self.threads.values():
            more, more_highlight = thread.unread_counts(own_user_id, baseline)
            unread += more
            highlight += more_highlight
        return unread, highlight

    # -- threads' pages, receipts and reading ---------------------------------------------

    def add_thread_page(
        self,
        root: str,
        items: Sequence[TimelineItem],
        *,
        has_more: bool,
        next_token: str | None,
    ) -> TimelineChange:
        """Earlier replies of a thread (relations API), oldest first."""
        thread = self.thread(root)
        thread.has_more = has_more
        thread.next_token = next_token
        self._into_thread(root, list(items), older=True)
        return self._refresh_roots([root], TimelineChange(ChangeKind.REPLACED))

    def add_thread_roots(self, roots: Sequence[TimelineItem]) -> TimelineChange:
        """Thread roots from the thread list (their server summaries)."""
        self._note_server(roots)
        for root in roots:
            if root.event_id is not None and self.get(root.event_id) is None:
                self.thread(root.event_id).root_item = root
        return self._refresh_roots(
            [r.event_id for r in roots if r.event_id], TimelineChange(ChangeKind.REPLACED)
        )

    def set_server_counts(self, counts: dict[str, tuple[int, int]]) -> TimelineChange | None:
        """The server's unread counts of every thread (absent: none); None
        if nothing changed."""
        changed = []
        for root in set(counts) | {r for r, t in self.threads.items() if t.server_counts != (0, 0)}:
            value = counts.get(root, (0, 0))
            thread = self.thread(root) if root in counts else self.threads[root]
            if thread.server_counts != value:
                thread.server_counts = value
                changed.append(root)
        return self.refresh_roots(changed) if changed else None

    def refresh_roots(self, roots: Iterable[str]) -> TimelineChange:
        """Redraw these roots' summaries (their unread state changed)."""
        return self._refresh_roots(roots, TimelineChange(ChangeKind.REPLACED))

    def mark_thread_read(self, root: str, event_id: str | None = None) -> str | None:
        """The user read thread `root` (up to `event_id`, or its latest
        reply). Returns the event to send a threaded receipt for if the
        marker moved."""
        thread = self.threads.get(root)
        if thread is None:
            return None
        timeline = thread.timeline
        before = timeline.read_marker
        if event_id is None:
            timeline.mark_read()
        else:
            new, old = timeline.index_of(event_id), None
            if before is not None:
                old = timeline.index_of(before)
            if new is None or old is None or new > old:
                timeline.read_marker = event_id
        marker = timeline.read_marker
        if marker is not None and marker != before:
            thread.server_counts = (0, 0)  # until the server counts again
            return marker
        return None


class ThreadView(ItemList):
    """What a thread pane shows: the root (when known), then the replies."""

    __slots__ = ("_room", "root")

    def __init__(self, room: RoomTimeline, root: str) -> None:
        super().__init__(())
        self._room = room
        self.root = root
        room.thread(root).watched = True

    def close(self) -> None:
        """The pane closed: stop keeping changes for it."""
        thread = self.thread
        thread.watched = False
        thread.changes.clear()

    @property
    def thread(self) -> Thread:
        return self._room.thread(self.root)

    @property
    def offset(self) -> int:
        """1 when the root is shown above the replies, else 0."""
        return 1 if self._room.root_item(self.root) is not None else 0

    def __len__(self) -> int:
        return self.offset + len(self.thread.timeline)

    def __getitem__(self, index: int) -> TimelineItem:
        if index < 0:
            index += len(self)
        offset = self.offset
        if offset and index == 0:
            root = self._room.root_item(self.root)
            assert root is not None
            return root
        return self.thread.timeline[index - offset]

    def index_of(self, key: str) -> int | None:
        if key == self.root and self.offset:
            return 0
        index = self.thread.timeline.index_of(key)
        return None if index is None else index + self.offset

    def lookup(self, event_id: str) -> TimelineItem | None:
        return self.thread.timeline.lookup(event_id) or self._room.lookup(event_id)

    def changes(self) -> list[TimelineChange]:
        """What changed in the pane since last asked, in pane rows."""
        offset = self.offset
        return [shifted(c, offset) for c in self._room.drain_thread_changes(self.root)]
