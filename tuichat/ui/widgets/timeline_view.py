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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.model.items import KEY_SOURCE_LABELS, ItemKind, SendState, TimelineItem
from tuichat.model.timeline import ChangeKind, TimelineChange
from tuichat.ui.widgets.line_index import LineIndex

TIME_WIDTH = 5
LOCK_WIDTH = 2
SENDER_WIDTH = 14
GUTTER = TIME_WIDTH + 1 + LOCK_WIDTH + SENDER_WIDTH + 1
MIN_BODY_WIDTH = 12
HEADER_LINES = 1  # the history marker
# How far beyond the viewport (in screens) items are measured ahead.
MEASURE_AHEAD = 1


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
    """A stable colour per user id (the same in every run)."""
    digest = hashlib.sha256(user_id.encode("utf-8", "replace")).digest()
    return SENDER_COLOURS[digest[0] % len(SENDER_COLOURS)]


def _clock(timestamp_ms: int) -> str:
    if timestamp_ms <= 0:
        return "--:--"
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000).strftime("%H:%M")
    except (ValueError, OverflowError, OSError):
        return "--:--"  # a server may send any number (year 10000, 2**70, …)


def _fit(text: str, width: int) -> Text:
    """`text` right-aligned in `width` cells, cut with an ellipsis if longer."""
    line = Text(text, no_wrap=True, overflow="ellipsis")
    line.truncate(width, overflow="ellipsis")
    line.align("right", width)
    return line


class TimelineView(ScrollView, can_focus=True):
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
    }

    DEFAULT_CSS = """
    TimelineView {
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
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
    """

    class NearTop(Message):
        """The reader scrolled to the top and older history may exist."""

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._items: Sequence[TimelineItem] = ()
        self._lines = LineIndex()
        self._width = 0
        self._strips: LRUCache[tuple[str, int, int], list[Strip]] = LRUCache(4096)
        self.history = HistoryState.MORE
        self._asked_for_more = False

    # -- data ------------------------------------------------------------------

    @property
    def items(self) -> Sequence[TimelineItem]:
        return self._items

    def set_items(self, items: Sequence[TimelineItem]) -> None:
        """Show another timeline (a room switch): show its end."""
        self._items = items
        # Strips are keyed by event id; ids from another room (a hostile
        # server could reuse them) must never show their cached lines here.
        self._strips.clear()
        self._asked_for_more = False
        self._width = self._current_width()
        self._lines.reset(len(items))
        self._scroll_to_end()
        self.refresh()

    def set_history(self, state: HistoryState) -> None:
        if state is not self.history:
            self.history = state
            self._asked_for_more = False
            self.refresh_line(0)
            if state is HistoryState.MORE:
                self.call_after_refresh(self._maybe_near_top)

    def ask_again(self) -> None:
        """Older history can be loaded now (an earlier NearTop came too
        early): ask again if the top is still in view."""
        self._asked_for_more = False
        self._maybe_near_top()

    def apply_change(self, change: TimelineChange) -> None:
        """Bring the view up to date after the model changed."""
        at_bottom = self.is_at_bottom
        lines = self._lines
        if change.kind is ChangeKind.RESET:
            lines.reset(len(self._items))
            self._asked_for_more = False
        elif change.kind is ChangeKind.PREPENDED:
            if change.count:
                lines.insert_front(change.count)
                # The lines shown move down by the new items (one line each
                # until measured; measuring them adjusts again).
                self._set_scroll_y(self.scroll_y + change.count)
            self._asked_for_more = False
        else:
            for index in change.indices:
                if index < len(lines):
                    lines.forget(index)
            if change.kind is ChangeKind.APPENDED:
                lines.truncate(min(change.index, len(lines)))
                lines.extend(len(self._items) - len(lines))
        self._update_virtual_size()
        if at_bottom:
            self._scroll_to_end()
        self.refresh()

    def _scroll_to_end(self) -> None:
        # Measure the last screens first, so the end is where it will stay.
        self._measure_back_from(len(self._items) - 1, self._viewport_height() * 2)
        self._update_virtual_size()
        # `force`: right after a size change the scrollbars are not updated
        # yet, and without it Textual would refuse to scroll.
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)

    @property
    def is_at_bottom(self) -> bool:
        return self.scroll_y >= self.max_scroll_y - 1

    # -- measuring -------------------------------------------------------------

    def _current_width(self) -> int:
        return self.scrollable_content_region.width or self.size.width

    def _viewport_height(self) -> int:
        return max(1, self.scrollable_content_region.height or self.size.height)

    def _body_width(self) -> int:
        return max(MIN_BODY_WIDTH, self._width - GUTTER)

    def _measure(self, index: int) -> int:
        """Measure item `index` (if not yet); returns the lines it gained
        over its estimate."""
        lines = self._lines
        if lines.measured(index):
            return 0
        height = len(self._render_item(self._items[index]))
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
        self.scroll_to(y=y, animate=False, immediate=True, force=True)

    def _prepare_viewport(self) -> None:
        """Measure the items on and around the screen before they are drawn;
        keep the top line's content in place if items above it grew."""
        if not self._items:
            return
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
        start = max(0, first - height * MEASURE_AHEAD)
        for index in range(start, first):
            shift += self._measure(index)
        self._measure(first)
        budget = height * (1 + MEASURE_AHEAD)
        index = first + 1
        while index < len(self._items) and budget > 0:
            self._measure(index)
            budget -= self._lines.height(index)
            index += 1
        if shift:
            self._set_scroll_y(self.scroll_y + shift)
        else:
            self._update_virtual_size()

    def _rewidth(self, width: int) -> None:
        """A new width: every height is unknown again. Keep the item at the
        top of the screen at the top (or the end in view)."""
        at_bottom = self.is_at_bottom
        top = self._lines.locate(max(0, round(self.scroll_y) - HEADER_LINES))
        self._width = width
        self._lines.reset(len(self._items))
        if at_bottom or top is None:
            self._scroll_to_end()
        else:
            self._set_scroll_y(HEADER_LINES + self._lines.line_of(top[0]))

    def on_resize(self) -> None:
        self.refresh()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value < HEADER_LINES + 1:
            self._maybe_near_top()

    def _maybe_near_top(self) -> None:
        if (
            self.history is HistoryState.MORE
            and not self._asked_for_more
            and self._items
            and self.scroll_y < HEADER_LINES + 1
        ):
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
        line = self.scroll_offset.y + y
        if line < HEADER_LINES:
            return self._header_line(width)
        position = self.item_at_line(line)
        if position is None:
            if not self._items and line == HEADER_LINES:
                style = self.get_component_rich_style("timeline--empty")
                return Strip([Segment(" No messages yet.", style)]).adjust_cell_length(
                    width, self.rich_style
                )
            return Strip.blank(width, self.rich_style)
        index, offset = position
        if not self._lines.measured(index):
            # Drawn before `_prepare_viewport` saw it (a scroll in between):
            # measured now; the lines below move, this frame stays coherent.
            self._measure(index)
        strips = self._render_item(self._items[index])
        strip = strips[offset] if offset < len(strips) else Strip.blank(width)
        return strip.adjust_cell_length(width, self.rich_style)

    def _header_line(self, width: int) -> Strip:
        style = self.get_component_rich_style("timeline--empty")
        if self.history is HistoryState.LOADING:
            text = " ⏳ Loading older messages…"
        elif self.history is HistoryState.START:
            text = " ── This is the beginning of the room ──" if self._items else ""
        else:
            text = " ↑ Scroll up for older messages" if self._items else ""
        return Strip([Segment(text, style)]).adjust_cell_length(width, self.rich_style)

    def _render_item(self, item: TimelineItem) -> list[Strip]:
        key = (item.key, item.version, self._width)
        cached = self._strips.get(key)
        if cached is None:
            cached = self._strips[key] = self._build_strips(item)
        return cached

    def _lock(self, item: TimelineItem) -> Text:
        """The 2-cell marker: 🔒 encrypted; ⚠ encrypted, but from a device
        that is not verified (or not known yet); blank when not encrypted."""
        if not item.encrypted:
            return Text("  ")
        if item.trust in ("unverified", "unknown_device", "unsigned"):
            return Text.styled("⚠ ", self._style("timeline--unverified"))
        return Text.styled("🔒", self._style("timeline--lock"))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name, partial=True)

    def _build_strips(self, item: TimelineItem) -> list[Strip]:
        console = self.app.console
        base = self.rich_style
        clock = _clock(item.timestamp).ljust(TIME_WIDTH)
        time_text = Text.styled(clock, self._style("timeline--time"))
        lock = self._lock(item)
        body = self._body(item)
        if item.kind in (ItemKind.STATE, ItemKind.EMOTE):
            sender = _fit("*" if item.kind is ItemKind.EMOTE else "--", SENDER_WIDTH)
            sender.stylize(self._style("timeline--state"))
        else:
            sender = _fit(item.sender_name, SENDER_WIDTH)
            sender.stylize(Style(color=sender_colour(item.sender), bold=True))
        lines = body.wrap(console, self._body_width())
        if not lines:
            lines.append(Text(""))
        first_prefix = Text.assemble(time_text, " ", lock, sender, " ")
        blank_prefix = Text(" " * GUTTER)
        strips = []
        for number, line in enumerate(lines):
            prefix = first_prefix if number == 0 else blank_prefix
            segments = list(prefix.render(console)) + list(line.render(console))
            strips.append(Strip(Segment.apply_style(segments, base)))
        return strips

    def _body(self, item: TimelineItem) -> Text:
        """The item's body as Text. Remote strings are placed as plain Text,
        never parsed as markup. Styles go on as spans (`Text.styled`):
        `Text.render`, which builds the strips, ignores a Text's base style."""
        if item.kind is ItemKind.UNDECRYPTABLE:
            return Text.styled(
                f"Unable to decrypt: {item.utd_text}", self._style("timeline--undecryptable")
            )
        if item.kind is ItemKind.STATE:
            return Text.styled(item.body, self._style("timeline--state"))
        if item.kind is ItemKind.REDACTED:
            return Text.styled(item.body, self._style("timeline--state"))
        if item.kind is ItemKind.EMOTE:
            text = Text.assemble(
                (item.sender_name, Style(color=sender_colour(item.sender), bold=True)),
                " ",
                item.body,
            )
        elif item.kind is ItemKind.NOTICE:
            text = Text.styled(item.body, self._style("timeline--notice"))
        else:
            text = Text(item.body)
        if item.highlight:
            text.stylize(Style(bold=True))
        note = self._trust_note(item)
        if note:
            text.append(f"  · {note}", style=self._style("timeline--note"))
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
        return [strip.text for item in self._items for strip in self._render_item(item)]
