"""The timeline: a `ScrollView` on Textual's Line API.

Only visible lines are rendered, and only items near the viewport are
measured: cost follows the viewport, not the history length. Each item is
wrapped once per width into strips, cached by ``(key, version, width)``.
An item not measured yet counts as one line; measured items' extra lines
sit in a Fenwick tree (`LineIndex`), so finding the item at a scroll line
and updating one height are O(log n), and a 100,000-item room costs eight
bytes per item. When items above the top of the viewport turn out taller
than estimated, the scroll position moves by the difference, so what the
reader looks at does not jump.

Line 0 is a marker for history: "Loading older messages…" while a page is
fetched, or where the room begins; scrolling up to it asks for more
(`NearTop`).

Following the newest message is a state the reader sets by scrolling, not
a position judged after the fact: a reader at the bottom stays there
whatever changes height (a preview loads, a line appears under the
timeline, the terminal is resized, a room is shown again), and every frame
puts the end in view. A reader who scrolled up stays put; messages that
arrive meanwhile are counted on a "↓ N new messages" line at the bottom,
and End (Ctrl+End from the composer) or a click on that line jumps to the
latest.

What an item shows can depend on its neighbours: a day separator above
the first item of a day, the "new messages" line below the last item read,
and runs of membership changes condensed into one line (the run's first
item shows the summary, the others are zero lines high). These facts are
part of the strip cache key. A message is selected with the keyboard
(`Ctrl+S`, then up/down) or the mouse; the selection is drawn on top of the
cached strips.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.model.items import KEY_SOURCE_LABELS, ItemKind, SendState, TimelineItem
from tuichat.model.rich_body import plain_text
from tuichat.model.sanitize import safe_line, safe_text
from tuichat.model.timeline import ChangeKind, TimelineChange
from tuichat.ui.widgets.line_index import LineIndex
from tuichat.ui.widgets.rich_body import BodyStyles, cap_plain, render_body, segments_text
from tuichat.ui.widgets.style_memo import StyleMemo

TIME_WIDTH = 5  # "%H:%M", the default time format
LOCK_WIDTH = 2
SENDER_WIDTH = 14
GUTTER = TIME_WIDTH + 1 + LOCK_WIDTH + SENDER_WIDTH + 1
MIN_BODY_WIDTH = 12
HEADER_LINES = 1  # the history marker
# How far beyond the viewport (in screens) items are measured ahead.
MEASURE_AHEAD = 1


# Facts about an item's neighbours that change what it shows.
DAY_BREAK = 1  # the first item of its day: a date line above it
NEW_BELOW = 2  # the last item read: the "new messages" line below it
RUN_HEAD = 4  # the first of several membership changes: their summary
HIDDEN = 8  # condensed into the run's summary, or membership hidden
PREVIEW = 16  # an image whose preview has arrived
# A run of membership changes is summarised up to this many items.
MAX_RUN = 500


class MembershipDisplay(StrEnum):
    SHOW = "show"  # one line each
    CONDENSE = "condense"  # runs become one summary line
    HIDE = "hide"


@lru_cache(maxsize=4096)
def _day_of_minute(minute: int) -> tuple[int, int, int]:
    try:
        return time.localtime(minute * 60)[:3]
    except (ValueError, OverflowError, OSError):
        return (0, 0, 0)


def _day(timestamp_ms: int) -> tuple[int, int, int]:
    return _day_of_minute(timestamp_ms // 60000) if timestamp_ms > 0 else (0, 0, 0)


def _date_line(timestamp_ms: int) -> str:
    year, month, day = _day(timestamp_ms)
    if not year:
        return "unknown date"
    return datetime(year, month, day).strftime("%A, %-d %B %Y")


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


class HistoryState(StrEnum):
    MORE = "more"  # older messages exist; scrolling up loads them
    LOADING = "loading"
    START = "start"  # the beginning of the room is shown


SENDER_COLOURS = (
    "#e06c75",
    "#98c379",
    "#e5c07b",
    "#61afef",
    "#c678dd",
    "#56b6c2",
    "#d19a66",
    "#be5046",
    "#7ec699",
    "#f08d49",
    "#cc99cd",
    "#6796e6",
)


def sender_colour(user_id: str) -> str:
    """A stable colour per user id (the same in every run). A checksum is
    enough to spread ids over a palette; a cryptographic hash brought
    OpenSSL into every start for it."""
    return SENDER_COLOURS[zlib.crc32(user_id.encode("utf-8", "replace")) % len(SENDER_COLOURS)]


def _clock(timestamp_ms: int, time_format: str = "%H:%M") -> str:
    if timestamp_ms <= 0:
        return "--:--"
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000).strftime(time_format)
    except (ValueError, OverflowError, OSError):
        return "--:--"  # a server may send any number (year 10000, 2**70, …)


def time_width(time_format: str) -> int:
    """Cells the time column needs for `time_format` (its longest forms)."""
    samples = (datetime(2026, 12, 30, 23, 59), datetime(2026, 9, 3, 9, 5))
    return max(5, *(len(moment.strftime(time_format)) for moment in samples))


def _fit(text: str, width: int) -> Text:
    """`text` right-aligned in `width` cells, cut with an ellipsis if longer."""
    line = Text(safe_line(text), no_wrap=True, overflow="ellipsis")
    line.truncate(width, overflow="ellipsis")
    line.align("right", width)
    return line


@dataclass(frozen=True, slots=True)
class _HighlightReady:
    """Called in the highlighting thread when a code block of item `key`
    is ready: a message brings the news to the view's own loop. Equal for
    the same view and item, so a block is waited for once per item."""

    view: TimelineView
    key: str

    def __call__(self) -> None:
        with suppress(RuntimeError):  # the app has ended: nothing to redraw
            self.view.post_message(TimelineView.Highlighted(self.key))


class TimelineView(StyleMemo, ScrollView, can_focus=True):
    """Renders a sequence of `TimelineItem`s, newest at the bottom."""

    COMPONENT_CLASSES = {
        "timeline--time",
        "timeline--state",
        "timeline--notice",
        "timeline--undecryptable",
        "timeline--pending",
        "timeline--failed",
        "timeline--lock",
        "timeline--empty",
        "timeline--note",
        "timeline--unverified",
        "timeline--code",
        "timeline--link",
        "timeline--mention",
        "timeline--quote",
        "timeline--reaction",
        "timeline--own-reaction",
        "timeline--day",
        "timeline--new",
        "timeline--selected",
        "timeline--jump",
    }

    BINDINGS = [
        Binding("up,k", "select(-1)", "Previous", show=False),
        Binding("down,j", "select(1)", "Next", show=False),
        # Ids: `[keys]` in the config changes these keys.
        Binding("r", "act('reply')", "Reply", id="reply"),
        Binding("e", "act('edit')", "Edit", id="edit"),
        Binding("plus,equals_sign", "act('react')", "React", id="react"),
        Binding("d,delete", "act('delete')", "Delete", id="delete"),
        Binding("enter", "act('open')", "Save file", id="open"),
        Binding("v", "act('view')", "View image", id="view"),
        Binding("escape", "leave", "Back to composer"),
        Binding("end,ctrl+end", "jump_to_latest", "Latest", show=False),
    ]

    DEFAULT_CSS = """
    TimelineView {
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
        overflow-y: scroll;
    }
    TimelineView > .timeline--time { color: $text-muted; }
    TimelineView > .timeline--state { color: $text-muted; text-style: italic; }
    TimelineView > .timeline--notice { color: $text-muted; }
    TimelineView > .timeline--undecryptable { color: $warning; text-style: italic; }
    TimelineView > .timeline--pending { color: $text-muted; }
    TimelineView > .timeline--failed { color: $error; }
    TimelineView > .timeline--lock { color: $success; }
    TimelineView > .timeline--empty { color: $text-muted; text-style: italic; }
    TimelineView > .timeline--note { color: $warning; text-style: dim italic; }
    TimelineView > .timeline--unverified { color: $warning; text-style: bold; }
    TimelineView > .timeline--code { color: $accent; background: $boost; }
    TimelineView > .timeline--link { color: $primary; text-style: underline; }
    TimelineView > .timeline--mention { color: $accent; text-style: bold; }
    TimelineView > .timeline--quote { color: $text-muted; }
    TimelineView > .timeline--reaction { color: $text-muted; }
    TimelineView > .timeline--own-reaction { color: $accent; text-style: bold; }
    TimelineView > .timeline--day { color: $text-muted; }
    TimelineView > .timeline--new { color: $error; }
    TimelineView > .timeline--selected { background: $primary 30%; }
    TimelineView > .timeline--jump { color: $text; background: $accent 60%; text-style: bold; }
    """

    class NearTop(Message):
        """The reader scrolled to the top and older history may exist."""

    class ParentMissing(Message):
        """A reply quotes an event that is not loaded: fetch it."""

        def __init__(self, event_id: str) -> None:
            super().__init__()
            self.event_id = event_id

    class ItemAction(Message):
        """The reader wants to do something with the selected item."""

        def __init__(self, action: str, item: TimelineItem) -> None:
            super().__init__()
            self.action = action
            self.item = item

    class Left(Message):
        """The reader left the timeline (Escape): back to the composer."""

    class PreviewWanted(Message):
        """An image item came into view: fetch its preview."""

        def __init__(self, item: TimelineItem) -> None:
            super().__init__()
            self.item = item

    class Highlighted(Message):
        """A code block of item `key` was highlighted (in the background)."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._items: Sequence[TimelineItem] = ()
        self._lines = LineIndex()
        self._width = 0
        self._strips: LRUCache[tuple[str, int, int], list[Strip]] = LRUCache(4096)
        self.history = HistoryState.MORE
        self._asked_for_more = False
        self._look: tuple[Style, ...] | None = None  # the styles built lines used
        self._look_stale = True
        self.membership_display = MembershipDisplay.CONDENSE
        self._time_format = "%H:%M"
        self._time_width = TIME_WIDTH
        self._gutter = GUTTER
        self._unread_after: str | None = None  # the "new messages" line's item
        self._selected: str | None = None  # key of the selected item
        self._parents_asked: set[str] = set()
        self.previews_enabled = True
        self._previews: dict[str, list[list[Segment]]] = {}
        self._previews_asked: set[str] = set()
        # The reader follows the newest message: kept from their last scroll
        # (see `watch_scroll_y`), not judged from a position that a height
        # change has already moved.
        self._follow = True
        self._own_scroll = False  # a scroll made by the view, not the reader
        self._new_below = 0  # messages arrived while the reader was scrolled up
        # Items redrawn since their code blocks were highlighted: part of
        # the strip cache key, so the plain version is not reused.
        self._redraws: dict[str, int] = {}

    # -- data ------------------------------------------------------------------

    @property
    def items(self) -> Sequence[TimelineItem]:
        return self._items

    @property
    def time_format(self) -> str:
        return self._time_format

    @time_format.setter
    def time_format(self, value: str) -> None:
        """A strftime format for message times (from the config)."""
        self._time_format = value
        self._time_width = time_width(value)
        self._gutter = GUTTER - TIME_WIDTH + self._time_width
        self._strips.clear()
        self._lines.reset(len(self._items))
        self.refresh()

    def set_items(self, items: Sequence[TimelineItem], unread_after: str | None = None) -> None:
        """Show another timeline (a room switch): show its end. A "new
        messages" line goes below the item `unread_after` (the last read),
        unless it is the last one."""
        self._items = items
        self._unread_after = unread_after
        self._selected = None
        # Keyed by event id like the strips: another room's must not show.
        self._previews.clear()
        self._previews_asked.clear()
        self._redraws.clear()
        # Strips are keyed by event id; ids from another room (a hostile
        # server could reuse them) must never show their cached lines here.
        self._strips.clear()
        self._asked_for_more = False
        self._width = self._current_width()
        self._lines.reset(len(items))
        self.jump_to_latest()

    def set_membership_display(self, mode: MembershipDisplay) -> None:
        """Show, condense or hide membership changes: every height may
        change; the "new messages" line and the selection stay."""
        self.membership_display = mode
        self._strips.clear()
        self._lines.reset(len(self._items))
        self.jump_to_latest()

    def set_history(self, state: HistoryState) -> None:
        if state is not self.history:
            self.history = state
            self._asked_for_more = False
            self.refresh_line(0)
            if state is HistoryState.MORE:
                self.call_after_refresh(self._maybe_near_top)

    def still_near_top(self) -> bool:
        """Whether a `NearTop` being handled still stands: the reader is at
        the top and older history may exist. It may not: the timeline can
        change under the reader between the message and its handling (a
        limited sync shows the room's newest events, at the end). If not,
        the view asks again when the reader is back at the top."""
        if self._wants_older():
            return True
        self._asked_for_more = False
        return False

    def ask_again(self) -> None:
        """Older history can be loaded now (an earlier NearTop came too
        early): ask again if the top is still in view."""
        self._asked_for_more = False
        self._maybe_near_top()

    def apply_change(self, change: TimelineChange) -> None:
        """Bring the view up to date after the model changed."""
        lines = self._lines
        if change.kind is ChangeKind.RESET:
            lines.reset(len(self._items))
            self._asked_for_more = False
        elif change.kind is ChangeKind.PREPENDED:
            if change.count:
                lines.insert_front(change.count)
                # The old first item may lose its date line or join a run.
                self._forget_around(change.count)
                # The lines shown move down by the new items (one line each
                # until measured; measuring them adjusts again).
                self._set_scroll_y(self.scroll_y + change.count)
            for index in change.indices:
                self._forget_around(index)
            self._asked_for_more = False
        else:
            for index in change.indices:
                self._forget_around(index)
            if change.kind is ChangeKind.APPENDED:
                if not self._follow:
                    self._count_new(len(lines))
                lines.truncate(min(change.index, len(lines)))
                lines.extend(len(self._items) - len(lines))
                # A membership change may extend the run above it.
                self._forget_run_head(change.index - 1)
        self._update_virtual_size()
        if self._follow:
            self._scroll_to_end()
        self.refresh()

    def _count_new(self, known: int) -> None:
        """Items from `known` on are new to a reader scrolled up: count the
        messages among them for the "new messages" line."""
        self._new_below += sum(
            1 for index in range(known, len(self._items)) if self._items[index].is_message
        )

    def jump_to_latest(self) -> None:
        """Show the newest message and follow new ones again."""
        self._follow = True
        self._new_below = 0
        self._scroll_to_end()
        self.refresh()

    def action_jump_to_latest(self) -> None:
        self.jump_to_latest()

    # Keys move the timeline at once, as from the composer: an animated
    # scroll is stopped by the first item above the screen measured taller
    # than estimated (keeping the top line in place scrolls), so Home
    # stopped a dozen lines short of the top.
    def action_scroll_home(self) -> None:
        self.scroll_to(y=0, animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    @property
    def following(self) -> bool:
        """Whether the newest message is kept in view."""
        return self._follow

    @property
    def new_below(self) -> int:
        """Messages that arrived since the reader scrolled up."""
        return 0 if self._follow else self._new_below

    def _forget_around(self, index: int) -> None:
        """Item `index` changed: its height, and the summary of a run of
        membership changes it belongs to, are unknown again."""
        if 0 <= index < len(self._lines):
            self._lines.forget(index)
            self._forget_run_head(index)
            if index + 1 < len(self._lines):
                self._lines.forget(index + 1)  # its date line may come or go

    def _forget_run_head(self, index: int) -> None:
        """The summary line of the run `index` belongs to must be redrawn."""
        if not 0 <= index < len(self._lines) or self._items[index].membership is None:
            return
        start = self._run_start(index)
        self._lines.forget(index if start is None else start)

    def _scroll_to_end(self) -> None:
        # Measure the last screens first, so the end is where it will stay.
        # Not before the first layout: at width 0 every item would be
        # wrapped at the minimum width, then measured again.
        if self._width:
            self._measure_back_from(len(self._items) - 1, self._viewport_height() * 2)
        self._update_virtual_size()
        self._scroll_self(self.max_scroll_y)

    def scroll_to(self, x: float | None = None, y: float | None = None, **kwargs: Any) -> None:
        """A scroll asked by the reader (keys, Home, a page) decides
        following from where it goes, before an animation gets there: a
        frame drawn meanwhile must not pull the reader back to the end."""
        if y is not None and not self._own_scroll:
            self._follow = round(y) >= self.max_scroll_y
        super().scroll_to(x, y, **kwargs)

    def _scroll_self(self, y: float) -> None:
        """Scroll for the view's own sake (keep the end or the top line in
        place): the reader's choice to follow or not stays as it was."""
        self._own_scroll = True
        try:
            # `force`: right after a size change the scrollbars are not
            # updated yet, and without it Textual would refuse to scroll.
            self.scroll_to(y=y, animate=False, immediate=True, force=True)
        finally:
            self._own_scroll = False

    def _at_end(self) -> bool:
        """The last line is in view (one line up is not: the reader left)."""
        return round(self.scroll_y) >= self.max_scroll_y

    # -- measuring -------------------------------------------------------------

    def _current_width(self) -> int:
        return self.scrollable_content_region.width or self.size.width

    def _viewport_height(self) -> int:
        return max(1, self.scrollable_content_region.height or self.size.height)

    def _body_width(self) -> int:
        return max(MIN_BODY_WIDTH, self._width - self._gutter)

    def _measure(self, index: int) -> int:
        """Measure item `index` (if not yet); returns the lines it gained
        over its estimate."""
        lines = self._lines
        if lines.measured(index):
            return 0
        height = len(self._render_at(index))
        return lines.set_height(index, height)

    def _measure_back_from(self, index: int, budget: int) -> None:
        while index >= 0 and budget > 0:
            self._measure(index)
            budget -= self._lines.height(index)
            index -= 1

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._width, HEADER_LINES + self._lines.total)

    def _set_scroll_y(self, y: float) -> None:
        self._update_virtual_size()
        self._scroll_self(y)

    def _prepare_viewport(self) -> None:
        """Measure the items on and around the screen before they are drawn;
        keep the top line's content in place if items above it grew."""
        if not self._items:
            return
        if self._look_stale:
            self._check_look()
        width = self._current_width()
        if width != self._width:
            self._rewidth(width)
        height = self._viewport_height()
        top = max(0, round(self.scroll_y) - HEADER_LINES)
        position = self._lines.locate(top)
        if position is None:
            position = (len(self._items) - 1, 0)
        first = position[0]
        shift = 0
        # A screen of lines above, measured nearest first.
        budget = height * MEASURE_AHEAD
        index = first - 1
        while index >= 0 and budget > 0:
            shift += self._measure(index)
            budget -= self._lines.height(index)
            index -= 1
        self._measure(first)
        budget = height * (1 + MEASURE_AHEAD)
        index = first + 1
        while index < len(self._items) and budget > 0:
            self._measure(index)
            budget -= self._lines.height(index)
            index += 1
        if self._follow:
            # Whatever changed height since the last frame (a preview, the
            # viewport, the width), the end is where the reader stays.
            self._measure_back_from(len(self._items) - 1, height * 2)
            self._update_virtual_size()
            if round(self.scroll_y) != self.max_scroll_y:
                self._scroll_self(self.max_scroll_y)
        elif shift:
            self._set_scroll_y(self.scroll_y + shift)
        else:
            self._update_virtual_size()

    def _rewidth(self, width: int) -> None:
        """A new width: every height is unknown again. Keep the item at the
        top of the screen at the top (or the end in view)."""
        top = self._lines.locate(max(0, round(self.scroll_y) - HEADER_LINES))
        self._width = width
        self._lines.reset(len(self._items))
        if self._follow or top is None:
            self._scroll_to_end()
        else:
            self._set_scroll_y(HEADER_LINES + self._lines.line_of(top[0]))

    def on_resize(self) -> None:
        self.refresh()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._own_scroll:
            # The reader scrolled (keys, wheel, scrollbar, or the screen
            # clamping the position to a taller viewport): follow the newest
            # message from now on if and only if they are at the bottom.
            self._follow = self._at_end()
            if self._follow and self._new_below:
                self._new_below = 0
                self.refresh()
        if new_value < HEADER_LINES + 1:
            self._maybe_near_top()

    def _wants_older(self) -> bool:
        """The reader is at the top, and older history may exist."""
        return (
            self.history is HistoryState.MORE
            and bool(self._items)
            and self.scroll_y < HEADER_LINES + 1
        )

    def _maybe_near_top(self) -> None:
        if not self._asked_for_more and self._wants_older():
            self._asked_for_more = True
            self.post_message(self.NearTop())

    # -- rendering -------------------------------------------------------------

    def item_at_line(self, line: int) -> tuple[int, int] | None:
        """(item index, line within the item) for a virtual line number."""
        return self._lines.locate(line - HEADER_LINES)

    def render_lines(self, crop: Region) -> list[Strip]:
        self._prepare_viewport()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if self._new_below and not self._follow and y == self._viewport_height() - 1:
            return self._jump_line(width)
        line = self.scroll_offset.y + y
        if line < HEADER_LINES:
            return self._header_line(width)
        position = self.item_at_line(line)
        if position is None:
            if not self._items and line == HEADER_LINES:
                style = self._style("timeline--empty")
                return Strip([Segment(" No messages yet.", style)]).adjust_cell_length(
                    width, self._base_style
                )
            return Strip.blank(width, self._base_style)
        index, offset = position
        if not self._lines.measured(index):
            # Drawn before `_prepare_viewport` saw it (a scroll in between):
            # measured now; the lines below move, this frame stays coherent.
            self._measure(index)
        strips = self._render_at(index)
        strip = strips[offset] if offset < len(strips) else Strip.blank(width)
        strip = strip.adjust_cell_length(width, self._base_style)
        if self._selected is not None and self._items[index].key == self._selected:
            # Over the segments' own background, not under it.
            selected = self._style("timeline--selected")
            strip = Strip(Segment.apply_style(list(strip), post_style=selected), width)
        return strip

    def _jump_line(self, width: int) -> Strip:
        """Over the bottom line while scrolled up: how many messages came."""
        count = self._new_below
        label = f" ↓ {count} new message{'s' if count != 1 else ''} · End: jump to latest "
        style = self._style("timeline--jump")
        return Strip([Segment(label.center(width)[:width], style)]).adjust_cell_length(width, style)

    def _header_line(self, width: int) -> Strip:
        style = self._style("timeline--empty")
        if self.history is HistoryState.LOADING:
            text = " ⏳ Loading older messages…"
        elif self.history is HistoryState.START:
            text = " ── This is the beginning of the room ──" if self._items else ""
        else:
            text = " ↑ Scroll up for older messages" if self._items else ""
        return Strip([Segment(text, style)]).adjust_cell_length(width, self._base_style)

    def _flags(self, index: int) -> tuple[int, int]:
        """The neighbour facts of item `index`, and the length of the run it
        heads (0 unless RUN_HEAD)."""
        items = self._items
        item = items[index]
        previous = items[index - 1] if index > 0 else None
        flags = run = 0
        if previous is None or _day(previous.timestamp) != _day(item.timestamp):
            flags |= DAY_BREAK
        if (
            self._unread_after is not None
            and item.key == self._unread_after
            and index + 1 < len(items)
        ):
            flags |= NEW_BELOW
        if item.attachment is not None and item.key in self._previews:
            flags |= PREVIEW
        if item.membership is not None:
            mode = self.membership_display
            if mode is MembershipDisplay.HIDE:
                flags |= HIDDEN
            elif mode is MembershipDisplay.CONDENSE:
                start = self._run_start(index)
                if start is not None and start != index:
                    flags |= HIDDEN
                elif (length := self._run_length(index)) > 1:
                    flags |= RUN_HEAD
                    run = length
        return flags, run

    def _run_start(self, index: int) -> int | None:
        """The first item of the run of membership changes `index` is in
        (a run ends at a day line, the "new messages" line or any other
        item), if within MAX_RUN."""
        items = self._items
        start = index
        while start > 0 and index - start < MAX_RUN:
            previous, current = items[start - 1], items[start]
            if (
                previous.membership is None
                or previous.key == self._unread_after
                or _day(previous.timestamp) != _day(current.timestamp)
            ):
                return start
            start -= 1
        return start if start == 0 else None

    def _run_length(self, index: int) -> int:
        """How many membership changes the run starting at `index` has."""
        items = self._items
        end = index + 1
        day = _day(items[index].timestamp)
        while (
            end < len(items)
            and end - index < MAX_RUN
            and items[end].membership is not None
            and _day(items[end].timestamp) == day
            and items[end - 1].key != self._unread_after
        ):
            end += 1
        return end - index

    def _render_at(self, index: int) -> list[Strip]:
        item = self._items[index]
        flags, run = self._flags(index)
        key = (item.key, item.version, self._width, flags, run, self._redraws.get(item.key, 0))
        cached = self._strips.get(key)
        if cached is None:
            cached = self._strips[key] = self._build(index, item, flags, run)
        return cached

    def _build(self, index: int, item: TimelineItem, flags: int, run: int) -> list[Strip]:
        if flags & HIDDEN:
            return []
        strips: list[Strip] = []
        if flags & DAY_BREAK:
            strips.append(self._rule_strip(_date_line(item.timestamp), "timeline--day"))
        if flags & RUN_HEAD:
            summary = membership_summary([self._items[i] for i in range(index, index + run)])
            strips += self._build_strips(item.evolve(body=summary))
        else:
            strips += self._build_strips(item)
        if flags & NEW_BELOW:
            strips.append(self._rule_strip("new messages", "timeline--new"))
        return strips

    def _rule_strip(self, label: str, style_name: str) -> Strip:
        width = max(len(label) + 4, self._width or 40)
        text = Text(f" {safe_line(label)} ".center(width, "─"), style=self._style(style_name))
        text.truncate(width)
        segments = list(text.render(self.app.console))
        return Strip(Segment.apply_style(segments, self._base_style))

    def _lock(self, item: TimelineItem) -> Text:
        """The 2-cell marker: 🔒 encrypted; ⚠ encrypted, but from a device
        that is not verified (or not known yet); blank when not encrypted."""
        if not item.encrypted:
            return Text("  ")
        if item.trust in ("unverified", "unknown_device", "unsigned"):
            return Text.styled("⚠ ", self._style("timeline--unverified"))
        return Text.styled("🔒", self._style("timeline--lock"))

    def notify_style_update(self) -> None:
        """The CSS was applied again: lines built with other styles are
        dropped before the next frame (`_check_look`)."""
        super().notify_style_update()
        self._look_stale = True
        self.refresh()

    def _check_look(self) -> None:
        self._look_stale = False
        look = (self._base_style, *(self._style(name) for name in sorted(self.COMPONENT_CLASSES)))
        if look != self._look:
            if self._look is not None:
                self._strips.clear()
            self._look = look

    def _build_strips(self, item: TimelineItem) -> list[Strip]:
        console = self.app.console
        base = self._base_style
        clock = safe_line(_clock(item.timestamp, self._time_format)).ljust(self._time_width)
        time_text = Text.styled(clock, self._style("timeline--time"))
        lock = self._lock(item)
        body = self._body(item)
        if item.kind in (ItemKind.STATE, ItemKind.EMOTE):
            sender = _fit("*" if item.kind is ItemKind.EMOTE else "--", SENDER_WIDTH)
            sender.stylize(self._style("timeline--state"))
        else:
            sender = _fit(item.sender_name, SENDER_WIDTH)
            sender.stylize(Style(color=sender_colour(item.sender), bold=True))
        lines = self._body_lines(item, body)
        first_prefix = Text.assemble(time_text, " ", lock, sender, " ")
        blank_prefix = Text(" " * self._gutter)
        strips = []
        for number, line in enumerate(lines):
            prefix = first_prefix if number == 0 else blank_prefix
            segments = list(prefix.render(console)) + list(line.render(console))
            strips.append(Strip(Segment.apply_style(segments, base)))
        return strips

    def _body_lines(self, item: TimelineItem, body: Text) -> list[Text]:
        """The body's lines: a quote of the parent of a reply, the text (or
        formatted blocks), reactions and read receipts."""
        console = self.app.console
        width = self._body_width()
        lines: list[Text] = []
        if item.reply_to is not None:
            lines.append(self._quote_line(item.reply_to, width))
        if item.formatted is not None and item.kind in (ItemKind.TEXT, ItemKind.NOTICE):
            lines += render_body(
                item.formatted, width, console, self._body_styles(), self._when_highlighted(item)
            )
            if lines and body.plain:
                # The markers ("(edited)", "sending…") follow the last line.
                lines[-1:] = list(Text.assemble(lines[-1], body).wrap(console, width))
        elif item.formatted is not None and item.kind is ItemKind.EMOTE:
            styles = self._body_styles()
            rendered = render_body(
                item.formatted,
                width - len(item.sender_name) - 1,
                console,
                styles,
                self._when_highlighted(item),
            )
            name = Text(
                safe_line(item.sender_name) + " ",
                Style(color=sender_colour(item.sender), bold=True),
            )
            for number, line in enumerate(rendered):
                prefix = name if number == 0 else Text(" " * name.cell_len)
                lines.append(Text.assemble(prefix, line))
            if body.plain:
                lines.append(body)
        else:
            lines += body.wrap(console, width)
        if item.attachment is not None and item.attachment.is_image and self.previews_enabled:
            preview = self._previews.get(item.key)
            if preview is not None:
                lines += [segments_text(line) for line in preview]
            elif item.key not in self._previews_asked and item.attachment.url is not None:
                self._previews_asked.add(item.key)
                self.post_message(self.PreviewWanted(item))
        if item.reactions:
            lines += self._reactions_text(item).wrap(console, width)
        if item.read_by:
            seen = _fit("✓ " + ", ".join(item.read_by), width)
            seen.stylize(self._style("timeline--reaction"))
            lines.append(seen)
        if not lines:
            lines.append(Text(""))
        return lines

    def _when_highlighted(self, item: TimelineItem) -> Callable[[], None]:
        return _HighlightReady(self, item.key)

    def on_timeline_view_highlighted(self, message: TimelineView.Highlighted) -> None:
        """A code block is ready: its item is drawn again, highlighted."""
        message.stop()
        index = self._index_of(message.key)
        if index is not None and index < len(self._lines):
            self._redraws[message.key] = self._redraws.get(message.key, 0) + 1
            self._lines.forget(index)
            self.refresh()

    def set_preview(self, key: str, lines: list[list[Segment]]) -> None:
        """An image's preview arrived: its item grows by the preview."""
        self._previews[key] = lines
        index = self._index_of(key)
        if index is not None and index < len(self._lines):
            self._lines.forget(index)
            self.refresh()

    def _body_styles(self) -> BodyStyles:
        return BodyStyles(
            code=self._style("timeline--code"),
            link=self._style("timeline--link"),
            link_target=self._style("timeline--state"),
            mention=self._style("timeline--mention"),
            quote=self._style("timeline--quote"),
            muted=self._style("timeline--time"),
            dark=self.app.current_theme.dark,
        )

    def _quote_line(self, event_id: str, width: int) -> Text:
        items = self._items
        lookup = getattr(items, "lookup", None)
        parent = lookup(event_id) if lookup is not None else None
        style = self._style("timeline--quote")
        if parent is None:
            if event_id not in self._parents_asked:
                self._parents_asked.add(event_id)
                self.post_message(self.ParentMissing(event_id))
            text = Text("↳ in reply to a message not loaded", style)
        else:
            if parent.kind is ItemKind.UNDECRYPTABLE:
                what = "🔒 unable to decrypt"
            elif parent.formatted is not None:
                what = plain_text(parent.formatted)
            else:
                what = parent.body
            shown = safe_line(" ".join(what.split()))
            text = Text.assemble(
                ("↳ ", style),
                (
                    safe_line(parent.sender_name),
                    Style(color=sender_colour(parent.sender), bold=True),
                ),
                (": " + shown, style),
            )
        text.truncate(width, overflow="ellipsis")
        return text

    def _reactions_text(self, item: TimelineItem) -> Text:
        text = Text()
        for reaction in item.reactions:
            name = "timeline--own-reaction" if reaction.mine else "timeline--reaction"
            if text:
                text.append("  ")
            text.append(safe_line(f"{reaction.key} {reaction.count}"), self._style(name))
        return text

    def _body(self, item: TimelineItem) -> Text:
        """The item's body as Text. Remote strings are placed as plain Text,
        never parsed as markup. Styles go on as spans (`Text.styled`):
        `Text.render`, which builds the strips, ignores a Text's base style."""
        if item.kind is ItemKind.UNDECRYPTABLE:
            return Text.styled(
                safe_line(f"Unable to decrypt: {item.utd_text}"),
                self._style("timeline--undecryptable"),
            )
        body = safe_text(item.body)
        if item.kind is ItemKind.STATE:
            return Text.styled(body, self._style("timeline--state"))
        if item.kind is ItemKind.REDACTED:
            return Text.styled(body, self._style("timeline--state"))
        # A huge body is drawn in part, with a note (it is wrapped on every
        # redraw); the markers below still show.
        shown, cut_note = cap_plain(body)
        if item.kind is ItemKind.EMOTE:
            text = Text.assemble(
                (safe_line(item.sender_name), Style(color=sender_colour(item.sender), bold=True)),
                " ",
                shown,
            )
        elif item.kind is ItemKind.NOTICE:
            text = Text.styled(shown, self._style("timeline--notice"))
        else:
            text = Text(shown)
        if cut_note:
            text.append(f"\n{cut_note}", style=self._style("timeline--time"))
        if item.formatted is not None:
            text = Text()  # the blocks are the body; only the markers follow
        if item.highlight:
            text.stylize(Style(bold=True))
        if item.edited:
            text.append("  (edited)", style=self._style("timeline--time"))
        note = self._trust_note(item)
        if note:
            text.append(f"  · {safe_line(note)}", style=self._style("timeline--note"))
        if item.send_state is SendState.PENDING:
            text.stylize(self._style("timeline--pending"))
            text.append("  (sending…)", style=self._style("timeline--pending"))
        elif item.send_state is SendState.FAILED:
            failed = self._style("timeline--failed")
            text.append("  ✗ not sent — Ctrl+R to retry", style=failed)
        return text

    @staticmethod
    def _trust_note(item: TimelineItem) -> str:
        """Why this message is less strongly bound to its sender, if it is."""
        if item.key_source:
            return KEY_SOURCE_LABELS.get(item.key_source, item.key_source)
        if item.trust == "unknown_device":
            return "sent from a device not known yet"
        if item.trust == "unsigned":
            return "sent from a device its owner has not verified"
        return ""

    def line_texts(self) -> list[str]:
        """Every item line's plain text (for tests and screenshots' sake)."""
        return [strip.text for index in range(len(self._items)) for strip in self._render_at(index)]

    # -- selection -------------------------------------------------------------

    @property
    def selected_item(self) -> TimelineItem | None:
        if self._selected is None:
            return None
        index = self._index_of(self._selected)
        return None if index is None else self._items[index]

    def _index_of(self, key: str) -> int | None:
        index_of = getattr(self._items, "index_of", None)
        if index_of is not None:
            found = index_of(key)
            if found is not None:
                return found
        for index in range(len(self._items) - 1, -1, -1):
            if self._items[index].key == key:
                return index
        return None

    def select_last(self) -> None:
        """Start selecting: the newest message."""
        for index in range(len(self._items) - 1, -1, -1):
            if self._selectable(index):
                self._select(index)
                return

    def _selectable(self, index: int) -> bool:
        item = self._items[index]
        return (
            item.event_id is not None
            and item.membership is None
            and item.kind
            in (
                ItemKind.TEXT,
                ItemKind.EMOTE,
                ItemKind.NOTICE,
                ItemKind.UNDECRYPTABLE,
                ItemKind.REDACTED,
            )
        )

    def _select(self, index: int | None) -> None:
        self._selected = None if index is None else self._items[index].key
        if index is not None:
            self._measure(index)
            top = HEADER_LINES + self._lines.line_of(index)
            bottom = top + self._lines.height(index)
            if top < self.scroll_y:
                self._set_scroll_y(top)
            elif bottom > self.scroll_y + self._viewport_height():
                self._set_scroll_y(bottom - self._viewport_height())
            # The reader moved to this message: it stays in view.
            self._follow = self._at_end()
        self.refresh()

    def action_select(self, step: int) -> None:
        current = self._index_of(self._selected) if self._selected else None
        if current is None:
            self.select_last()
            return
        index = current + step
        while 0 <= index < len(self._items) and not self._selectable(index):
            index += step
        if 0 <= index < len(self._items):
            self._select(index)
        elif step > 0:
            self.action_leave()

    def action_act(self, action: str) -> None:
        item = self.selected_item
        if item is not None:
            self.post_message(self.ItemAction(action, item))

    def action_leave(self) -> None:
        self._select(None)
        self.post_message(self.Left())

    def clear_selection(self) -> None:
        if self._selected is not None:
            self._select(None)

    def on_click(self, event: events.Click) -> None:
        if self.new_below and event.y == self._viewport_height() - 1:
            self.jump_to_latest()  # the "↓ N new messages" line
            return
        position = self.item_at_line(round(self.scroll_y) + event.y)
        if position is not None and self._selectable(position[0]):
            self.focus()
            self._select(position[0])

    def on_blur(self) -> None:
        # Focus went elsewhere on this screen (the composer): the selection
        # ends. A dialog on top (reaction picker, confirm) keeps it.
        if self.app.screen is self.screen:
            self.clear_selection()
