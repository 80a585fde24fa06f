"""The timeline: a room's items as a `VirtualLines` view, newest at the bottom.

This module joins the parts: `VirtualLines` (scrolling, measuring, the
strip cache, following the newest message, the "↓ N new messages" line,
selection), `tuichat.model.layout` (day lines, runs of membership changes,
the "new messages" line under the last item read, what to fetch) and
`MessageRenderer` (an item as strips). Strips are cached by the item's
key, version, the width and its neighbour facts, so an edit or a changed
neighbour redraws one item.

Line 0 is a marker for history: "Loading older messages…" while a page is
fetched, or where the room begins; scrolling up to it asks for more
(`NearTop`). The items on screen ask for what they lack (image previews,
the parents of replies) once per measured range (`PreviewWanted`,
`ParentMissing`), never from inside drawing. A message is selected with
the keyboard (`Ctrl+S`, then up/down) or the mouse, and acted on with the
keys below (`ItemAction`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum

from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.strip import Strip

from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.layout import (
    RUN_HEAD,
    FetchPlan,
    ItemList,
    ItemSource,
    Layout,
    MembershipDisplay,
    membership_summary,
)
from tuichat.model.search_query import SearchQuery
from tuichat.model.timeline import ChangeKind, Timeline, TimelineChange
from tuichat.ui.bindings import selected_message_bindings
from tuichat.ui.widgets.match_marks import mark_strips
from tuichat.ui.widgets.message_render import (
    GUTTER,
    MIN_BODY_WIDTH,
    SENDER_WIDTH,
    TIME_WIDTH,
    MessageRenderer,
    sender_colour,
    time_width,
)
from tuichat.ui.widgets.virtual_lines import HEADER_LINES, VirtualLines

__all__ = [
    "GUTTER",
    "HEADER_LINES",
    "MIN_BODY_WIDTH",
    "SENDER_WIDTH",
    "TIME_WIDTH",
    "HistoryState",
    "MembershipDisplay",
    "TimelineView",
    "membership_summary",
    "sender_colour",
    "time_width",
]

# Kinds of item a reader can select and act on.
_SELECTABLE = frozenset(
    (ItemKind.TEXT, ItemKind.EMOTE, ItemKind.NOTICE, ItemKind.UNDECRYPTABLE, ItemKind.REDACTED)
)


class HistoryState(StrEnum):
    MORE = "more"  # older messages exist; scrolling up loads them
    LOADING = "loading"
    START = "start"  # the beginning of the room is shown


def as_source(items: Sequence[TimelineItem]) -> ItemSource:
    """A room's `Timeline` is a source itself; any other sequence of items
    (a list, an empty tuple) is read through `ItemList`."""
    return items if isinstance(items, (Timeline, ItemList)) else ItemList(items)


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


class TimelineView(VirtualLines, can_focus=True):
    """Renders a sequence of `TimelineItem`s, newest at the bottom."""

    # The line above the first item once nothing older is left.
    start_text = "This is the beginning of the room"

    SELECTED_STYLE = "timeline--selected"
    JUMP_STYLE = "timeline--jump"

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
        # From the key table: `[keys]` in the config changes these keys.
        *selected_message_bindings(),
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

        def __init__(self, action: str, item: TimelineItem, number: int = 0) -> None:
            super().__init__()
            self.action = action
            self.item = item
            self.number = number  # "vote": the answer's number (the digit pressed)

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
        self._items: ItemSource = ItemList(())
        self._layout = Layout(self._items)
        self._renderer = MessageRenderer(self, self._when_highlighted)
        self._previews = self._renderer.previews
        self._fetch = FetchPlan()
        self.history = HistoryState.MORE
        self._asked_for_more = False
        # Items redrawn since their code blocks were highlighted: part of
        # the strip cache key, so the plain version is not reused.
        self._redraws: dict[str, int] = {}
        # search (issue 24): the result jumped to, its matched words marked.
        self._marked: tuple[str, SearchQuery] | None = None

    # -- data ------------------------------------------------------------------

    @property
    def items(self) -> ItemSource:
        return self._items

    @property
    def time_format(self) -> str:
        return self._renderer.time_format

    @time_format.setter
    def time_format(self, value: str) -> None:
        """A strftime format for message times (from the config)."""
        self._renderer.set_time_format(value)
        self._strips.clear()
        self._lines.reset(len(self._items))
        self.refresh()

    @property
    def membership_display(self) -> MembershipDisplay:
        return self._layout.membership

    @membership_display.setter
    def membership_display(self, mode: MembershipDisplay) -> None:
        self._layout.membership = mode

    @property
    def show_hidden_events(self) -> bool:
        """Whether lines naming only an event's type show (the config's
        `show_hidden_events`)."""
        return self._layout.show_hidden_events

    def set_show_hidden_events(self, shown: bool) -> None:
        """Show or leave out the lines naming only an event's type: every
        height may change, as for membership changes."""
        self._layout.show_hidden_events = shown
        self._strips.clear()
        self._lines.reset(len(self._items))
        self.refresh()

    @property
    def previews_enabled(self) -> bool:
        return self._renderer.previews_enabled

    @previews_enabled.setter
    def previews_enabled(self, enabled: bool) -> None:
        self._renderer.previews_enabled = enabled
        self._fetch.previews_enabled = enabled

    def set_items(self, items: Sequence[TimelineItem], unread_after: str | None = None) -> None:
        """Show another timeline (a room switch): show its end. A "new
        messages" line goes below the item `unread_after` (the last read),
        unless it is the last one."""
        source = as_source(items)
        self._items = self._layout.items = self._renderer.source = source
        self._layout.unread_after = unread_after
        self._selected = None
        # Keyed by event id like the strips: another room's must not show.
        self._previews.clear()
        self._fetch.previews_asked.clear()
        self._redraws.clear()
        # Strips are keyed by event id; ids from another room (a hostile
        # server could reuse them) must never show their cached lines here.
        self._strips.clear()
        self._asked_for_more = False
        self._width = self._current_width()
        self._lines.reset(len(source))
        self.jump_to_latest()

    def set_membership_display(self, mode: MembershipDisplay) -> None:
        """Show, condense or hide membership changes: every height may
        change; the "new messages" line and the selection stay."""
        self._layout.membership = mode
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
        if index >= len(self._lines):
            return
        head = self._layout.run_head(index)
        if head is not None:
            self._lines.forget(head)

    # -- what VirtualLines asks ------------------------------------------------

    def _item_count(self) -> int:
        return len(self._items)

    def _key_of(self, index: int) -> str:
        return self._items[index].key

    def _index_of(self, key: str) -> int | None:
        found = self._items.index_of(key)
        if found is not None:
            return found
        # Local echoes are not indexed by key in a `Timeline`.
        items = self._items
        for index in range(len(items) - 1, -1, -1):
            if items[index].key == key:
                return index
        return None

    def _selectable(self, index: int) -> bool:
        item = self._items[index]
        if item.event_id is None or item.membership is not None:
            return False
        # A line leading to another room (a room upgrade's) is selectable too.
        return item.kind in _SELECTABLE or item.link_room is not None

    def _counts_as_new(self, index: int) -> bool:
        return self._items[index].is_message

    def _jump_label(self, count: int) -> str:
        return f" ↓ {count} new message{'s' if count != 1 else ''} · End: jump to latest "

    def _near_top(self) -> None:
        self._maybe_near_top()

    def _measured_range(self, first: int, last: int) -> None:
        """Ask for what the items about to be drawn lack. Sent as from this
        view: made while the screen draws, a message would name the screen
        its sender and stop there instead of reaching the App."""
        images, parents = self._fetch.wanted(self._items, first, last, self._previews)
        for event_id in parents:
            self.post_message(self.ParentMissing(event_id).set_sender(self))
        for item in images:
            self.post_message(self.PreviewWanted(item).set_sender(self))

    def _wants_older(self) -> bool:
        """The reader is at the top, and older history may exist."""
        return (
            self.history is HistoryState.MORE
            and bool(len(self._items))
            and self.scroll_y < HEADER_LINES + 1
        )

    def _maybe_near_top(self) -> None:
        if not self._asked_for_more and self._wants_older():
            self._asked_for_more = True
            self.post_message(self.NearTop())

    def _header_line(self, width: int) -> Strip:
        style = self._style("timeline--empty")
        has_items = bool(len(self._items))
        if self.history is HistoryState.LOADING:
            text = " ⏳ Loading older messages…"
        elif self.history is HistoryState.START:
            text = f" ── {self.start_text} ──" if has_items else ""
        else:
            text = " ↑ Scroll up for older messages" if has_items else ""
        return Strip([Segment(text, style)]).adjust_cell_length(width, self._base_style)

    def _empty_line(self, width: int) -> Strip:
        style = self._style("timeline--empty")
        return Strip([Segment(" No messages yet.", style)]).adjust_cell_length(
            width, self._base_style
        )

    # -- drawing ---------------------------------------------------------------

    def _render_at(self, index: int) -> list[Strip]:
        item = self._items[index]
        flags, run = self._layout.flags(index, self._previews)
        key = (item.key, item.version, self._width, flags, run, self._redraws.get(item.key, 0))
        cached = self._strips.get(key)
        if cached is None:
            summary = None
            if flags & RUN_HEAD:
                summary = membership_summary([self._items[i] for i in range(index, index + run)])
            cached = self._strips[key] = self._renderer.build(item, flags, summary, self._width)
        if self._marked is not None and self._marked[0] == item.key:
            return mark_strips(cached, self._marked[1])
        return cached

    def mark_match(self, key: str | None, query: SearchQuery | None = None) -> None:
        """Mark `query`'s matches in the message `key` (None: no more)."""
        self._marked = None if key is None or query is None else (key, query)
        self.refresh()

    def _build_strips(self, item: TimelineItem) -> list[Strip]:
        """The item's own lines at the current width (no neighbour lines)."""
        return self._renderer.message_strips(item, self._width)

    def _when_highlighted(self, key: str) -> Callable[[], None]:
        return _HighlightReady(self, key)

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

    def line_texts(self) -> list[str]:
        """Every item line's plain text (for tests and screenshots' sake)."""
        return [strip.text for index in range(len(self._items)) for strip in self._render_at(index)]

    # -- selection -------------------------------------------------------------

    @property
    def selected_item(self) -> TimelineItem | None:
        index = self.selected_index
        return None if index is None else self._items[index]

    def action_select(self, step: int) -> None:
        if not self._step_selection(step) and step > 0:
            self.action_leave()

    # The last key pressed here: the App checks non-priority bindings after
    # the focused widget saw the key, so `vote` reads its digit from it.
    _last_key = ""

    def on_key(self, event: events.Key) -> None:
        self._last_key = event.key

    def action_act(self, action: str) -> None:
        item = self.selected_item
        if item is not None:
            digit = self._last_key[-1:]
            number = int(digit) if action == "vote" and digit.isdigit() else 0
            self.post_message(self.ItemAction(action, item, number))

    # The item selected when the timeline last lost the focus (the base
    # class's blur handler, which runs after this one, clears the
    # selection): what /pin and /report act on from the composer.
    last_selected: TimelineItem | None = None

    def on_blur(self) -> None:
        self.last_selected = self.selected_item

    def action_leave(self) -> None:
        self._select(None)
        self.post_message(self.Left())
