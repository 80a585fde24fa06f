"""The timeline: a `ScrollView` on Textual's Line API.

Only visible lines are rendered. Each item is wrapped once per width into a
list of strips, cached by ``(key, version, width)``; a prefix sum of item
heights maps a scroll line to its item. A change from the model invalidates
only the items it names, and a prepend shifts the scroll position by the
inserted height so the view does not jump.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime
from itertools import accumulate

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.model.items import KEY_SOURCE_LABELS, ItemKind, SendState, TimelineItem
from tuichat.model.timeline import ChangeKind, TimelineChange

TIME_WIDTH = 5
LOCK_WIDTH = 2
SENDER_WIDTH = 14
GUTTER = TIME_WIDTH + 1 + LOCK_WIDTH + SENDER_WIDTH + 1
MIN_BODY_WIDTH = 12

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
    return datetime.fromtimestamp(timestamp_ms / 1000).strftime("%H:%M")


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

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._items: Sequence[TimelineItem] = ()
        self._heights: list[int] = []
        self._offsets: list[int] = [0]  # offsets[i] = first line of item i
        self._width = 0
        self._strips: LRUCache[tuple[str, int, int], list[Strip]] = LRUCache(4096)

    # -- data ------------------------------------------------------------------

    @property
    def items(self) -> Sequence[TimelineItem]:
        return self._items

    def set_items(self, items: Sequence[TimelineItem]) -> None:
        """Show another timeline (a room switch): measure it, show its end."""
        self._items = items
        # Strips are keyed by event id; ids from another room (a hostile
        # server could reuse them) must never show their cached lines here.
        self._strips.clear()
        self._remeasure(0)
        self._scroll_to_end()
        self.refresh()

    def apply_change(self, change: TimelineChange) -> None:
        """Bring the view up to date after the model changed."""
        at_bottom = self.is_at_bottom
        if change.kind is ChangeKind.RESET:
            self._remeasure(0)
        elif change.kind is ChangeKind.PREPENDED:
            if change.count:
                added = self._measure_range(0, change.count)
                self._heights[0:0] = added
                self._rebuild_offsets(0)
                self.scroll_to(
                    y=self.scroll_y + sum(added), animate=False, immediate=True, force=True
                )
        else:
            first = len(self._items)
            for index in change.indices:
                if index < len(self._heights):
                    self._heights[index] = self._measure(index)
                    first = min(first, index)
            if change.kind is ChangeKind.APPENDED:
                del self._heights[change.index :]
                self._heights.extend(self._measure_range(change.index, len(self._items)))
                first = min(first, change.index)
            self._rebuild_offsets(first)
        self._update_virtual_size()
        if at_bottom:
            self._scroll_to_end()
        self.refresh()

    def _scroll_to_end(self) -> None:
        # `force`: right after a size change the scrollbars are not updated
        # yet, and without it Textual would refuse to scroll.
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)

    @property
    def is_at_bottom(self) -> bool:
        return self.scroll_y >= self.max_scroll_y - 1

    # -- measuring -------------------------------------------------------------

    def _body_width(self) -> int:
        return max(MIN_BODY_WIDTH, self._width - GUTTER)

    def _remeasure(self, first: int) -> None:
        self._width = self.scrollable_content_region.width or self.size.width
        self._heights = self._measure_range(first, len(self._items))
        self._rebuild_offsets(0)
        self._update_virtual_size()

    def _measure_range(self, start: int, end: int) -> list[int]:
        return [self._measure(index) for index in range(start, end)]

    def _measure(self, index: int) -> int:
        return len(self._render_item(self._items[index]))

    def _rebuild_offsets(self, first: int) -> None:
        """Recompute the prefix sums from item `first` on."""
        first = max(0, min(first, len(self._heights), len(self._offsets) - 1))
        head = self._offsets[: first + 1]
        tail = accumulate(self._heights[first:], initial=head[-1])
        next(tail)  # `initial` itself is already head[-1]
        head.extend(tail)
        self._offsets = head

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._width, self._offsets[-1] if self._offsets else 0)

    def on_resize(self) -> None:
        width = self.scrollable_content_region.width
        if width != self._width:
            at_bottom = self.is_at_bottom
            self._remeasure(0)
            if at_bottom:
                self._scroll_to_end()

    # -- rendering -------------------------------------------------------------

    def item_at_line(self, line: int) -> tuple[int, int] | None:
        """(item index, line within the item) for a virtual line number."""
        if not self._heights or line < 0 or line >= self._offsets[-1]:
            return None
        index = bisect_right(self._offsets, line) - 1
        return index, line - self._offsets[index]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        position = self.item_at_line(self.scroll_offset.y + y)
        if position is None:
            if not self._items and y == 0:
                style = self.get_component_rich_style("timeline--empty")
                return Strip([Segment(" No messages yet.", style)]).adjust_cell_length(
                    width, self.rich_style
                )
            return Strip.blank(width, self.rich_style)
        index, offset = position
        strips = self._render_item(self._items[index])
        strip = strips[offset] if offset < len(strips) else Strip.blank(width)
        return strip.adjust_cell_length(width, self.rich_style)

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
        """Every line's plain text (for tests and screenshots' sake)."""
        return [strip.text for item in self._items for strip in self._render_item(item)]
