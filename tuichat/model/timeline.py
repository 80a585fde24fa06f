"""One room's timeline: ordered items, local echoes, replacements, read marker.

Remote items (those with an event id, in server order) come first; local
echoes (messages being sent, or failed) follow at the bottom, as Element
shows them. Each mutation returns a `TimelineChange` saying which part of the
list changed, so the view can invalidate only that part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from tuichat.model.items import MESSAGE_KINDS, SendState, TimelineItem


class ChangeKind(StrEnum):
    APPENDED = "appended"  # items from `index` to the end are new or changed
    PREPENDED = "prepended"  # `count` items were inserted at the top
    REPLACED = "replaced"  # the items at `indices` changed in place
    RESET = "reset"  # everything changed


@dataclass(frozen=True, slots=True)
class TimelineChange:
    kind: ChangeKind
    index: int = 0
    count: int = 0
    indices: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.kind is not ChangeKind.RESET and not self.count and not self.indices


class Timeline(Sequence[TimelineItem]):
    """Items of one room. Indexing covers remote items, then local echoes."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self._remote: list[TimelineItem] = []
        # item key (the event id for events) -> sequence number;
        # index = seq - self._first_seq. Local notices (not events) have keys
        # of their own and sit among the events in arrival order.
        self._seq: dict[str, int] = {}
        self._first_seq = 0
        self._echoes: list[TimelineItem] = []
        self.read_marker: str | None = None  # event id of the last item read
        self.has_more_history = True

    # -- Sequence protocol -------------------------------------------------

    def __len__(self) -> int:
        return len(self._remote) + len(self._echoes)

    def __getitem__(self, index: int) -> TimelineItem:  # type: ignore[override]
        remote = len(self._remote)
        if index < 0:
            index += len(self)
        if index < remote:
            return self._remote[index]
        return self._echoes[index - remote]

    @property
    def remote_count(self) -> int:
        return len(self._remote)

    def index_of(self, key: str) -> int | None:
        """Index of the item with this key (an event id, for events)."""
        seq = self._seq.get(key)
        return None if seq is None else seq - self._first_seq

    def get(self, event_id: str) -> TimelineItem | None:
        index = self.index_of(event_id)
        return None if index is None else self._remote[index]

    @property
    def local_echoes(self) -> list[TimelineItem]:
        return list(self._echoes)

    @property
    def last_event_id(self) -> str | None:
        return next((i.event_id for i in reversed(self._remote) if i.event_id), None)

    # -- mutations -----------------------------------------------------------

    def append(self, items: Iterable[TimelineItem]) -> TimelineChange:
        """Add newer remote items. Known event ids are replaced in place, and a
        remote echo of our own message removes its local echo.

        The change covers everything from the old end of the remote items
        down (local echoes move below new items), plus `indices` of items
        replaced further up.
        """
        remote_before = len(self._remote)
        length_before = len(self)
        replaced: list[int] = []
        for item in items:
            if item.event_id is None and not item.key.startswith("notice:"):
                continue
            known = self.index_of(item.key)
            if known is not None:
                self._put(known, item)
                replaced.append(known)
                continue
            if item.txn_id and item.event_id:
                self._drop_echo(item.txn_id, item.event_id)
            self._seq[item.key] = self._first_seq + len(self._remote)
            self._remote.append(item)
        moved = len(self._remote) != remote_before or len(self) != length_before
        return TimelineChange(
            ChangeKind.APPENDED if moved else ChangeKind.REPLACED,
            index=remote_before,
            count=max(len(self), length_before) - remote_before if moved else 0,
            indices=tuple(sorted(i for i in replaced if i < remote_before)),
        )

    def _put(self, index: int, item: TimelineItem) -> None:
        """Replace the item at `index`; the new one always has a higher
        version than the old, so caches keyed by version see the change."""
        old = self._remote[index]
        if item.version <= old.version:
            item = replace(item, version=old.version + 1)
        self._remote[index] = item

    def _drop_echo(self, txn_id: str, event_id: str | None = None) -> None:
        self._echoes = [
            echo
            for echo in self._echoes
            if echo.txn_id != txn_id and (event_id is None or echo.event_id != event_id)
        ]

    def prepend(self, items: Sequence[TimelineItem]) -> TimelineChange:
        """Add older remote items (oldest first) above the current ones."""
        fresh = [
            item for item in items if item.event_id is not None and item.event_id not in self._seq
        ]
        if not fresh:
            return TimelineChange(ChangeKind.PREPENDED, count=0)
        self._first_seq -= len(fresh)
        for offset, item in enumerate(fresh):
            assert item.event_id is not None
            self._seq[item.event_id] = self._first_seq + offset
        self._remote[:0] = fresh
        return TimelineChange(ChangeKind.PREPENDED, count=len(fresh))

    def replace(self, items: Iterable[TimelineItem]) -> TimelineChange:
        """Replace known remote items (matched by event id) in place."""
        indices = []
        for item in items:
            index = self.index_of(item.key)
            if index is not None:
                self._put(index, item)
                indices.append(index)
        return TimelineChange(ChangeKind.REPLACED, indices=tuple(sorted(indices)))

    def add_local_echo(self, item: TimelineItem) -> TimelineChange:
        self._echoes.append(item)
        return TimelineChange(ChangeKind.APPENDED, index=len(self) - 1, count=1)

    def update_local_echo(
        self, txn_id: str, state: SendState, event_id: str | None = None
    ) -> TimelineChange:
        """Mark a local echo sent (with its event id) or failed."""
        for position, echo in enumerate(self._echoes):
            if echo.txn_id != txn_id:
                continue
            if event_id is not None and event_id in self._seq:
                # The remote echo came down sync first: the echo is redundant.
                del self._echoes[position]
                index = len(self._remote) + position
                return TimelineChange(ChangeKind.APPENDED, index=index, count=len(self) - index)
            self._echoes[position] = echo.evolve(send_state=state, event_id=event_id)
            return TimelineChange(ChangeKind.REPLACED, indices=(len(self._remote) + position,))
        return TimelineChange(ChangeKind.REPLACED)

    def local_echo(self, txn_id: str) -> TimelineItem | None:
        for echo in self._echoes:
            if echo.txn_id == txn_id:
                return echo
        return None

    def reset(self, items: Sequence[TimelineItem] = ()) -> TimelineChange:
        """Drop all remote items (a gap after a limited sync), keep echoes."""
        self._remote = []
        self._seq = {}
        self._first_seq = 0
        self.has_more_history = True
        self.append(items)
        return TimelineChange(ChangeKind.RESET)

    # -- read marker and counters -----------------------------------------------

    def mark_read(self) -> None:
        for item in reversed(self._remote):
            if item.event_id is not None:
                self.read_marker = item.event_id
                return

    def unread_counts(self, own_user_id: str) -> tuple[int, int]:
        """(unread, highlight) messages from others after the read marker."""
        start = 0
        if self.read_marker is not None:
            marker = self.index_of(self.read_marker)
            start = 0 if marker is None else marker + 1
        unread = highlight = 0
        for item in self._remote[start:]:
            if item.sender == own_user_id or item.kind not in MESSAGE_KINDS:
                continue
            unread += 1
            if item.highlight:
                highlight += 1
        return unread, highlight

    def undecryptable(self) -> list[TimelineItem]:
        return [item for item in self._remote if item.utd_reason is not None]
