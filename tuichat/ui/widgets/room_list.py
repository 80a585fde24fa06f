"""The room list: an Invites section, then rooms by recent activity."""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.sanitize import safe_line
from tuichat.ui.widgets.style_memo import StyleMemo

DM_MARK = "@"
ENCRYPTED_MARK = "🔒"
# Notifications (issue 23): a room marked unread; a room's own setting.
MARKED_UNREAD_MARK = "•"
MODE_MARKS = {"mute": "🔕", "mentions": "@", "all": "🔔"}


def _badge(count: int) -> str:
    return "99+" if count > 99 else str(count)


def room_label(room: RoomSummary) -> Text:
    """One room's row: markers, name, counters. The name is remote text and is
    placed as plain Text, never as markup."""
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(ENCRYPTED_MARK if room.encrypted else "  ")
    label.append(" ")
    label.append(DM_MARK if room.is_direct else "#", style=Style(dim=True))
    label.append(" ")
    label.append(safe_line(room.name), style=Style(bold=bool(room.unread)))
    if room.membership is Membership.INVITE and room.inviter:
        invited = safe_line(f"invited by {room.inviter}")
        label.append(f"\n     {invited}", style=Style(dim=True, italic=True))
    if room.highlight:
        label.append(f" ({_badge(room.highlight)}!)", style=Style(color="red", bold=True))
    elif room.unread:
        label.append(f" ({_badge(room.unread)})", style=Style(bold=True))
    elif room.marked_unread:
        label.append(f" ({MARKED_UNREAD_MARK})", style=Style(bold=True))
    if room.notify_mode in MODE_MARKS:
        label.append(f" {MODE_MARKS[room.notify_mode]}", style=Style(dim=True))
    return label


class RoomListView(StyleMemo, ScrollView, can_focus=True):
    """Shows room summaries; posts `RoomChosen` when one is chosen (Enter or
    a click). A Line API view: only the rows on screen are rendered, so a
    thousand rooms cost what the visible forty do, and a refresh after
    every sync only rebuilds a list of row references."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor(-10)", show=False),
        Binding("pagedown", "cursor(10)", show=False),
        Binding("home", "cursor_to(0)", show=False),
        Binding("end", "cursor_to(-1)", show=False),
        Binding("enter", "choose", "Open room", show=False),
    ]

    COMPONENT_CLASSES = {"room-list--header", "room-list--cursor", "room-list--current"}

    DEFAULT_CSS = """
    RoomListView {
        width: 32;
        height: 1fr;
        border: none;
        border-right: tall $panel;
        background: $panel-darken-1;
        padding: 0;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    RoomListView > .room-list--header { text-style: bold underline; }
    RoomListView > .room-list--current {
        background: $primary 35%;
        color: $foreground;
        text-style: bold;
    }
    RoomListView:focus > .room-list--cursor { background: $accent 60%; }
    """

    class RoomChosen(Message):
        def __init__(self, room_id: str) -> None:
            super().__init__()
            self.room_id = room_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._order: list[str] = []
        self._rows: list[tuple[str | None, RoomSummary | None, int]] = []
        self._first_row: dict[str, int] = {}
        self._current: str | None = None
        self.highlighted: int | None = None  # index into `room_ids`

    @property
    def room_ids(self) -> list[str]:
        return list(self._order)

    def show_rooms(self, rooms: Sequence[RoomSummary], current: str | None) -> None:
        """Rows are (header text | None, room | None, line within the room)."""
        cursor = self._order[self.highlighted] if self.highlighted is not None else None
        invites = [r for r in rooms if r.membership is Membership.INVITE]
        joined = [r for r in rooms if r.membership is Membership.JOIN]
        rows: list[tuple[str | None, RoomSummary | None, int]] = []
        order: list[str] = []
        if invites:
            rows.append(("Invites", None, 0))
            for room in invites:
                self._add_room(rows, order, room)
            rows.append(("Rooms", None, 0))
        for room in joined:
            self._add_room(rows, order, room)
        self._rows, self._order, self._current = rows, order, current
        self._first_row = {}
        for number, (_, room, line) in enumerate(rows):
            if room is not None and line == 0:
                self._first_row[room.room_id] = number
        # While the user moves through the list, keep their cursor; otherwise
        # the cursor follows the room on screen.
        target = cursor if self.has_focus and cursor in self._first_row else current
        self.highlighted = order.index(target) if target in self._first_row else None
        self.virtual_size = Size(self.size.width, len(rows))
        self.refresh()

    @staticmethod
    def _add_room(
        rows: list[tuple[str | None, RoomSummary | None, int]],
        order: list[str],
        room: RoomSummary,
    ) -> None:
        order.append(room.room_id)
        rows.append((None, room, 0))
        if room.membership is Membership.INVITE and room.inviter:
            rows.append((None, room, 1))

    def row_texts(self) -> list[str]:
        """Every row's plain text (tests' sake)."""
        return [self._row_text(number).plain for number in range(len(self._rows))]

    # -- rendering ---------------------------------------------------------------

    def _row_text(self, number: int) -> Text:
        header, room, line = self._rows[number]
        if room is None:
            return Text(safe_line(header))
        label = room_label(room).split("\n")
        return label[min(line, len(label) - 1)]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        number = self.scroll_offset.y + y
        if number >= len(self._rows):
            return Strip.blank(width, self._base_style)
        header, room, _line = self._rows[number]
        if room is None:
            style = self._style("room-list--header")
            text = Text(f" {safe_line(header)}", style=style, no_wrap=True)
        else:
            text = self._row_text(number)
            text.no_wrap = True
            text.overflow = "ellipsis"
        text.truncate(width, overflow="ellipsis", pad=True)
        if room is not None:
            # The room on screen is marked whether or not the list has the
            # focus (the cursor, shown only with the focus, used to hide
            # it: it sits on that room until moved); the whole row width.
            if room.room_id == self._current:
                text.stylize(self._style("room-list--current"))
            if self.highlighted is not None and self._order[self.highlighted] == room.room_id:
                text.stylize(self._style("room-list--cursor"))
        # The widget's colours under the text's own: without them the rows
        # took the terminal's default colours, not the theme's.
        strip = Strip(Segment.apply_style(list(text.render(self.app.console)), self._base_style))
        return strip.adjust_cell_length(width, self._base_style)

    # -- moving and choosing --------------------------------------------------------

    def action_cursor(self, step: int) -> None:
        if not self._order:
            return
        start = self.highlighted if self.highlighted is not None else -1 if step > 0 else 0
        self._move_to(max(0, min(len(self._order) - 1, start + step)))

    def action_cursor_to(self, index: int) -> None:
        if self._order:
            self._move_to(index % len(self._order))

    def _move_to(self, index: int) -> None:
        self.highlighted = index
        row = self._first_row[self._order[index]]
        self.scroll_to_region(Region(0, row, 1, 1), animate=False, immediate=True)
        self.refresh()

    def action_choose(self) -> None:
        if self.highlighted is not None:
            self.post_message(self.RoomChosen(self._order[self.highlighted]))

    def on_click(self, event: events.Click) -> None:
        number = self.scroll_offset.y + event.y
        if 0 <= number < len(self._rows):
            room = self._rows[number][1]
            if room is not None:
                self.highlighted = self._order.index(room.room_id)
                self.refresh()
                self.post_message(self.RoomChosen(room.room_id))
