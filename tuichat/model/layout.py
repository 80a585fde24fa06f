"""What a timeline item shows because of its neighbours, in plain Python.

A day line above the first item of a day, the "new messages" line below
the last item read, and runs of membership changes condensed into one
summary line (the run's first item shows it, the others are zero lines
high). `Layout.flags` answers these for one item; the widget puts the
answer in its strip cache key, so a change of neighbour redraws the item.

Also here: `ItemSource`, what a timeline view reads its items from (a
`Timeline`, or any sequence through `ItemList`), and `FetchPlan`, what the
items on screen still need from the server (image previews, the parents of
replies), worked out once per visible range.
"""

from __future__ import annotations

import time
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

from tuichat.model.items import TimelineItem

# Facts about an item's neighbours that change what it shows.
DAY_BREAK = 1  # the first item of its day: a date line above it
NEW_BELOW = 2  # the last item read: the "new messages" line below it
RUN_HEAD = 4  # the first of several membership changes: their summary
HIDDEN = 8  # condensed into a run's summary, membership or type-only lines hidden
PREVIEW = 16  # an image whose preview has arrived
# A run of membership changes is summarised up to this many items.
MAX_RUN = 500


class MembershipDisplay(StrEnum):
    SHOW = "show"  # one line each
    CONDENSE = "condense"  # runs become one summary line
    HIDE = "hide"


class ItemSource(Protocol):
    """The items a timeline view shows, oldest first."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> TimelineItem: ...

    def index_of(self, key: str) -> int | None:
        """Index of the item with this key, if shown."""
        ...

    def lookup(self, event_id: str) -> TimelineItem | None:
        """An event shown here or fetched to quote it (a reply's parent)."""
        ...


class ItemList:
    """A plain sequence of items as an `ItemSource`: found by scanning from
    the newest; it holds no fetched parents, so `lookup` finds none."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[TimelineItem]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> TimelineItem:
        return self._items[index]

    def index_of(self, key: str) -> int | None:
        items = self._items
        for index in range(len(items) - 1, -1, -1):
            if items[index].key == key:
                return index
        return None

    def lookup(self, event_id: str) -> TimelineItem | None:
        return None


@lru_cache(maxsize=4096)
def _day_of_minute(minute: int) -> tuple[int, int, int]:
    try:
        return time.localtime(minute * 60)[:3]
    except (ValueError, OverflowError, OSError):
        return (0, 0, 0)


def day(timestamp_ms: int) -> tuple[int, int, int]:
    """(year, month, day) in local time; zeros for no or an impossible time."""
    return _day_of_minute(timestamp_ms // 60000) if timestamp_ms > 0 else (0, 0, 0)


def date_line(timestamp_ms: int) -> str:
    """The day line's text: "Monday, 7 December 2026"."""
    year, month, day_ = day(timestamp_ms)
    if not year:
        return "unknown date"
    return datetime(year, month, day_).strftime("%A, %-d %B %Y")


def _names(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) <= 3:
        return ", ".join(names[:-1]) + f" and {names[-1]}"
    return f"{', '.join(names[:2])} and {len(names) - 2} others"


def membership_summary(items: Sequence[TimelineItem]) -> str:
    """ "alice, bob and 3 others joined; carol left" for a run of changes."""
    groups: dict[str, list[str]] = {}
    for item in items:
        if item.membership is None:
            continue
        action, name = item.membership
        names = groups.setdefault(action, [])
        if name not in names:
            names.append(name)
    parts = []
    for action, names in groups.items():
        verb = action
        if len(names) == 1 and action.startswith("were "):
            verb = "was " + action.removeprefix("were ")
        parts.append(f"{_names(names)} {verb}")
    return "; ".join(parts)


class Layout:
    """The neighbour facts of a timeline's items: `items` in order, the
    key of the last item read (`unread_after`), how membership changes
    are shown, and whether lines naming only an event's type show
    (`show_hidden_events`)."""

    __slots__ = ("items", "membership", "show_hidden_events", "unread_after")

    def __init__(self, items: ItemSource) -> None:
        self.items = items
        self.unread_after: str | None = None
        self.membership = MembershipDisplay.CONDENSE
        self.show_hidden_events = False

    def flags(self, index: int, previews: Container[str]) -> tuple[int, int]:
        """The neighbour facts of item `index`, and the length of the run
        it heads (0 unless RUN_HEAD). `previews`: keys of items whose image
        preview has arrived."""
        items = self.items
        item = items[index]
        previous = items[index - 1] if index > 0 else None
        flags = run = 0
        if previous is None or day(previous.timestamp) != day(item.timestamp):
            flags |= DAY_BREAK
        if (
            self.unread_after is not None
            and item.key == self.unread_after
            and index + 1 < len(items)
        ):
            flags |= NEW_BELOW
        if item.attachment is not None and item.key in previews:
            flags |= PREVIEW
        if item.type_only and not self.show_hidden_events:
            flags |= HIDDEN
        if item.membership is not None:
            mode = self.membership
            if mode is MembershipDisplay.HIDE:
                flags |= HIDDEN
            elif mode is MembershipDisplay.CONDENSE:
                start = self.run_start(index)
                if start is not None and start != index:
                    flags |= HIDDEN
                elif (length := self.run_length(index)) > 1:
                    flags |= RUN_HEAD
                    run = length
        return flags, run

    def run_start(self, index: int) -> int | None:
        """The first item of the run of membership changes `index` is in
        (a run ends at a day line, the "new messages" line or any other
        item), if within MAX_RUN."""
        items = self.items
        start = index
        while start > 0 and index - start < MAX_RUN:
            previous, current = items[start - 1], items[start]
            if (
                previous.membership is None
                or previous.key == self.unread_after
                or day(previous.timestamp) != day(current.timestamp)
            ):
                return start
            start -= 1
        return start if start == 0 else None

    def run_length(self, index: int) -> int:
        """How many membership changes the run starting at `index` has."""
        items = self.items
        end = index + 1
        first_day = day(items[index].timestamp)
        while (
            end < len(items)
            and end - index < MAX_RUN
            and items[end].membership is not None
            and day(items[end].timestamp) == first_day
            and items[end - 1].key != self.unread_after
        ):
            end += 1
        return end - index

    def run_head(self, index: int) -> int | None:
        """The item whose line summarises the run of membership changes
        `index` is in (None if `index` is no membership change)."""
        if not 0 <= index < len(self.items) or self.items[index].membership is None:
            return None
        start = self.run_start(index)
        return index if start is None else start


@dataclass(slots=True)
class FetchPlan:
    """What items in view still need from the server, each asked once:
    image previews and the parents of replies not loaded."""

    previews_enabled: bool = True
    previews_asked: set[str] = field(default_factory=set)
    parents_asked: set[str] = field(default_factory=set)

    def wanted(
        self, source: ItemSource, first: int, last: int, previews: Container[str]
    ) -> tuple[list[TimelineItem], list[str]]:
        """(images whose preview to fetch, event ids of parents to fetch)
        for items `first`..`last`; each is returned once."""
        images: list[TimelineItem] = []
        parents: list[str] = []
        for index in range(max(0, first), min(last, len(source) - 1) + 1):
            item = source[index]
            parent = item.reply_to
            if (
                parent is not None
                and parent not in self.parents_asked
                and source.lookup(parent) is None
            ):
                self.parents_asked.add(parent)
                parents.append(parent)
            attachment = item.attachment
            if (
                attachment is not None
                and self.previews_enabled
                and attachment.is_image
                and attachment.url is not None
                and item.key not in previews
                and item.key not in self.previews_asked
            ):
                self.previews_asked.add(item.key)
                images.append(item)
        return images, parents
