"""A `ScrollView` on Textual's Line API over a long list of items, each
drawn as any number of lines.

Only visible lines are rendered, and only items near the viewport are
measured: cost follows the viewport, not the list's length. An item not
measured yet counts as one line; measured items' extra lines sit in a
Fenwick tree (`LineIndex`), so finding the item at a scroll line and
updating one height are O(log n), and a 100,000-item list costs eight
bytes per item. When items above the top of the viewport turn out taller
than estimated, the scroll position moves by the difference, so what the
reader looks at does not jump.

Following the end is a state the reader sets by scrolling, not a position
judged after the fact: a reader at the bottom stays there whatever changes
height (an item grows, the viewport shrinks, the terminal is resized, the
list is shown again), and every frame puts the end in view. A reader who
scrolled up stays put; items that arrive meanwhile are counted on a
"↓ N new" line at the bottom, and a click on it (or `jump_to_latest`)
goes back to the end.

An item is selected with the keyboard or the mouse; the selection is drawn
on top of the lines, which subclasses build and cache in `_strips`.

A subclass says what the items are: `_item_count`, `_key_of`, `_index_of`,
`_render_at` (the item's strips), `_selectable`, `_counts_as_new`, the
header line above the items, and what to do when the top is reached or a
range of items was measured for the screen.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.ui.widgets.line_index import LineIndex
from tuichat.ui.widgets.style_memo import StyleMemo

HEADER_LINES = 1  # a line above the items (a subclass draws it)
# How far beyond the viewport (in screens) items are measured ahead.
MEASURE_AHEAD = 1


class VirtualLines(StyleMemo, ScrollView):
    """Items drawn as lines, measured lazily, newest at the bottom."""

    # Component classes the mechanics draw with (a subclass names its own).
    SELECTED_STYLE = "lines--selected"
    JUMP_STYLE = "lines--jump"
    COMPONENT_CLASSES = {SELECTED_STYLE, JUMP_STYLE}

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._lines = LineIndex()
        self._width = 0
        # Keyed by the subclass: (item key, version, width, …) -> lines.
        self._strips: LRUCache[tuple[Any, ...], list[Strip]] = LRUCache(4096)
        self._look: tuple[Style, ...] | None = None  # the styles built lines used
        self._look_stale = True
        self._selected: str | None = None  # key of the selected item
        # The reader follows the newest item: kept from their last scroll
        # (see `watch_scroll_y`), not judged from a position that a height
        # change has already moved.
        self._follow = True
        self._own_scroll = False  # a scroll made by the view, not the reader
        self._new_below = 0  # items arrived while the reader was scrolled up

    # -- what a subclass provides ---------------------------------------------

    # The defaults are those of an empty list.

    def _item_count(self) -> int:
        return 0

    def _key_of(self, index: int) -> str:
        return str(index)

    def _index_of(self, key: str) -> int | None:
        return None

    def _render_at(self, index: int) -> list[Strip]:
        return []

    def _selectable(self, index: int) -> bool:
        return True

    def _counts_as_new(self, index: int) -> bool:
        return True

    def _header_line(self, width: int) -> Strip:
        return Strip.blank(width, self._base_style)

    def _empty_line(self, width: int) -> Strip:
        """The first line under the header when there are no items."""
        return Strip.blank(width, self._base_style)

    def _jump_label(self, count: int) -> str:
        return f" ↓ {count} new · End: jump to latest "

    def _near_top(self) -> None:
        """The reader scrolled to the header line."""

    def _measured_range(self, first: int, last: int) -> None:
        """Items `first`..`last` were measured to draw the screen."""

    # -- following -------------------------------------------------------------

    def _count_new(self, known: int) -> None:
        """Items from `known` on are new to a reader scrolled up: count them
        for the "new" line."""
        self._new_below += sum(
            1 for index in range(known, self._item_count()) if self._counts_as_new(index)
        )

    def jump_to_latest(self) -> None:
        """Show the newest item and follow new ones again."""
        self._follow = True
        self._new_below = 0
        self._scroll_to_end()
        self.refresh()

    def action_jump_to_latest(self) -> None:
        self.jump_to_latest()

    # Keys move the view at once: an animated scroll is stopped by the
    # first item above the screen measured taller than estimated (keeping
    # the top line in place scrolls), so Home stopped short of the top.
    def action_scroll_home(self) -> None:
        self.scroll_to(y=0, animate=False)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    @property
    def following(self) -> bool:
        """Whether the newest item is kept in view."""
        return self._follow

    @property
    def new_below(self) -> int:
        """Items that arrived since the reader scrolled up."""
        return 0 if self._follow else self._new_below

    def _scroll_to_end(self) -> None:
        # Measure the last screens first, so the end is where it will stay.
        # Not before the first layout: at width 0 every item would be
        # wrapped at the minimum width, then measured again.
        if self._width:
            self._measure_back_from(self._item_count() - 1, self._viewport_height() * 2)
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

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self._own_scroll:
            # The reader scrolled (keys, wheel, scrollbar, or the screen
            # clamping the position to a taller viewport): follow the newest
            # item from now on if and only if they are at the bottom.
            self._follow = self._at_end()
            if self._follow and self._new_below:
                self._new_below = 0
                self.refresh()
        if new_value < HEADER_LINES + 1:
            self._near_top()

    # -- measuring -------------------------------------------------------------

    def _current_width(self) -> int:
        return self.scrollable_content_region.width or self.size.width

    def _viewport_height(self) -> int:
        return max(1, self.scrollable_content_region.height or self.size.height)

    def _measure(self, index: int) -> int:
        """Measure item `index` (if not yet); returns the lines it gained
        over its estimate."""
        lines = self._lines
        if lines.measured(index):
            return 0
        height = len(self._render_at(index))
        return lines.set_height(index, height)

    def _measure_back_from(self, index: int, budget: int) -> int:
        """Measure items from `index` back until `budget` lines are
        covered; returns the first item measured."""
        while index >= 0 and budget > 0:
            self._measure(index)
            budget -= self._lines.height(index)
            index -= 1
        return index + 1

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._width, HEADER_LINES + self._lines.total)

    def _set_scroll_y(self, y: float) -> None:
        self._update_virtual_size()
        self._scroll_self(y)

    def _prepare_viewport(self) -> None:
        """Measure the items on and around the screen before they are drawn;
        keep the top line's content in place if items above it grew."""
        count = self._item_count()
        if not count:
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
            position = (count - 1, 0)
        first = position[0]
        shift = 0
        # A screen of lines above, measured nearest first.
        budget = height * MEASURE_AHEAD
        index = first - 1
        while index >= 0 and budget > 0:
            shift += self._measure(index)
            budget -= self._lines.height(index)
            index -= 1
        low = index + 1
        self._measure(first)
        budget = height * (1 + MEASURE_AHEAD)
        index = first + 1
        while index < count and budget > 0:
            self._measure(index)
            budget -= self._lines.height(index)
            index += 1
        high = index - 1
        if self._follow:
            # Whatever changed height since the last frame (an item, the
            # viewport, the width), the end is where the reader stays.
            end_low = self._measure_back_from(count - 1, height * 2)
            self._update_virtual_size()
            if round(self.scroll_y) != self.max_scroll_y:
                self._scroll_self(self.max_scroll_y)
            self._measured_range(low, high)
            if high < count - 1:
                self._measured_range(max(end_low, high + 1), count - 1)
        else:
            if shift:
                self._set_scroll_y(self.scroll_y + shift)
            else:
                self._update_virtual_size()
            self._measured_range(low, high)

    def _rewidth(self, width: int) -> None:
        """A new width: every height is unknown again. Keep the item at the
        top of the screen at the top (or the end in view)."""
        top = self._lines.locate(max(0, round(self.scroll_y) - HEADER_LINES))
        self._width = width
        self._lines.reset(self._item_count())
        if self._follow or top is None:
            self._scroll_to_end()
        else:
            self._set_scroll_y(HEADER_LINES + self._lines.line_of(top[0]))

    def on_resize(self) -> None:
        self.refresh()

    # -- looks -----------------------------------------------------------------

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

    # -- drawing ---------------------------------------------------------------

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
            if line == HEADER_LINES and not self._item_count():
                return self._empty_line(width)
            return Strip.blank(width, self._base_style)
        index, offset = position
        if not self._lines.measured(index):
            # Drawn before `_prepare_viewport` saw it (a scroll in between):
            # measured now; the lines below move, this frame stays coherent.
            self._measure(index)
        strips = self._render_at(index)
        strip = strips[offset] if offset < len(strips) else Strip.blank(width)
        strip = strip.adjust_cell_length(width, self._base_style)
        if self._selected is not None and self._key_of(index) == self._selected:
            # Over the segments' own background, not under it.
            selected = self._style(self.SELECTED_STYLE)
            strip = Strip(Segment.apply_style(list(strip), post_style=selected), width)
        return strip

    def _jump_line(self, width: int) -> Strip:
        """Over the bottom line while scrolled up: how many items came."""
        label = self._jump_label(self._new_below)
        style = self._style(self.JUMP_STYLE)
        return Strip([Segment(label.center(width)[:width], style)]).adjust_cell_length(width, style)

    # -- selection -------------------------------------------------------------

    @property
    def selected_index(self) -> int | None:
        return None if self._selected is None else self._index_of(self._selected)

    def select_last(self) -> None:
        """Start selecting: the newest selectable item."""
        for index in range(self._item_count() - 1, -1, -1):
            if self._selectable(index):
                self._select(index)
                return

    def select_key(self, key: str) -> bool:
        """Select the item with this key (an event id), scrolled into view;
        False if it is not here."""
        index = self._index_of(key)
        if index is None or not self._selectable(index):
            return False
        self._select(index)
        return True

    def _select(self, index: int | None) -> None:
        self._selected = None if index is None else self._key_of(index)
        if index is not None:
            self._measure(index)
            top = HEADER_LINES + self._lines.line_of(index)
            bottom = top + self._lines.height(index)
            if top < self.scroll_y:
                self._set_scroll_y(top)
            elif bottom > self.scroll_y + self._viewport_height():
                self._set_scroll_y(bottom - self._viewport_height())
            # The reader moved to this item: it stays in view.
            self._follow = self._at_end()
        self.refresh()

    def _step_selection(self, step: int) -> bool:
        """Select the next selectable item `step` away (the newest if none
        is selected); False if there is none that way."""
        current = self.selected_index
        if current is None:
            self.select_last()
            return True
        index = current + step
        count = self._item_count()
        while 0 <= index < count and not self._selectable(index):
            index += step
        if 0 <= index < count:
            self._select(index)
            return True
        return False

    def clear_selection(self) -> None:
        if self._selected is not None:
            self._select(None)

    def on_click(self, event: events.Click) -> None:
        if self.new_below and event.y == self._viewport_height() - 1:
            self.jump_to_latest()  # the "↓ N new" line
            return
        position = self.item_at_line(round(self.scroll_y) + event.y)
        if position is not None and self._selectable(position[0]):
            self.focus()
            self._select(position[0])

    def on_blur(self) -> None:
        # Focus went elsewhere on this screen: the selection ends. A dialog
        # on top (a picker, a confirmation) keeps it.
        if self.app.screen is self.screen:
            self.clear_selection()
