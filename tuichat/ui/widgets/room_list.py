"""The room list: an Invites section, then rooms by recent activity; with
spaces, the tree of spaces (collapsible), people, and other rooms."""

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
from tuichat.model.space_tree import RowKind, TreeRow, build_tree
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


def tree_label(row: TreeRow, room: RoomSummary) -> Text:
    """A space's row (▸ collapsed, ▾ open, with its rooms' counts when
    collapsed), or a room's row indented under its space."""
    indent = "  " * row.depth
    if row.kind is not RowKind.SPACE:
        label = Text(indent, no_wrap=True, overflow="ellipsis")
        label.append_text(room_label(room).split("\n")[0])
        if row.suggested:
            label.append(" (suggested)", style=Style(dim=True, italic=True))
        return label
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(f"{indent}{'▸' if row.collapsed else '▾'} ", style=Style(dim=True))
    name = room.name if row.room is not None else f"{room.name} (not joined)"
    label.append(safe_line(name), style=Style(bold=True))
    if row.highlight:
        label.append(f" ({_badge(row.highlight)}!)", style=Style(color="red", bold=True))
    elif row.unread:
        label.append(f" ({_badge(row.unread)})", style=Style(bold=True))
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
        self._rooms: list[RoomSummary] = []
        # Rows of the space tree that draw differently (spaces, rooms in one).
        self._tree: dict[str, TreeRow] = {}
        self.collapsed: set[str] = set()
        self.scoped_space: str | None = None  # chosen with the next-space key

    @property
    def room_ids(self) -> list[str]:
        return list(self._order)

    def show_rooms(self, rooms: Sequence[RoomSummary], current: str | None) -> None:
        """Rows are (header text | None, room | None, line within the room);
        with spaces, the tree `tuichat.model.space_tree` lays out."""
        cursor = self._order[self.highlighted] if self.highlighted is not None else None
        self._rooms = list(rooms)
        rows: list[tuple[str | None, RoomSummary | None, int]] = []
        order: list[str] = []
        self._tree = {}
        for tree_row in build_tree(self._rooms, frozenset(self.collapsed)):
            if tree_row.kind is RowKind.HEADER:
                rows.append((tree_row.title, None, 0))
                continue
            room = tree_row.room
            if room is None:  # a space not joined, named by its rooms
                room = RoomSummary(tree_row.space_id, tree_row.title, is_space=True)
            if tree_row.kind is RowKind.SPACE:
                self._tree[room.room_id] = tree_row
                order.append(room.room_id)
                rows.append((None, room, 0))
                continue
            if tree_row.depth or tree_row.suggested:
                self._tree[room.room_id] = tree_row
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
        tree_row = self._tree.get(room.room_id)
        if tree_row is not None:
            return tree_label(tree_row, room)
        label = room_label(room).split("\n")
        return label[min(line, len(label) - 1)]

    # -- spaces (issue 22) -------------------------------------------------------------

    def toggle_space(self, space_id: str) -> None:
        """Collapse or open a space's rooms."""
        self.collapsed ^= {space_id}
        self.show_rooms(self._rooms, self._current)

    def selected_space(self) -> str | None:
        """The space under the cursor, or the space the cursor's room is in."""
        if self.highlighted is None:
            return None
        room_id = self._order[self.highlighted]
        tree_row = self._tree.get(room_id)
        if tree_row is not None and tree_row.kind is RowKind.SPACE:
            return room_id
        for number in range(self._first_row.get(room_id, 0), -1, -1):
            room = self._rows[number][1]
            if room is not None and room.is_space:
                row = self._tree.get(room.room_id)
                if row is not None and (tree_row is None or row.depth < tree_row.depth):
                    return room.room_id
        return None

    def action_next_space(self) -> str | None:
        """Choose the next space (its row under the cursor; Ctrl+K then
        looks only in it); after the last, no space again. Returns it."""
        spaces = [r for r in self._order if r in self._tree and self._tree[r].kind is RowKind.SPACE]
        position = spaces.index(self.scoped_space) if self.scoped_space in spaces else -1
        self.scoped_space = spaces[position + 1] if position + 1 < len(spaces) else None
        if self.scoped_space is not None:
            self._move_to(self._order.index(self.scoped_space))
        elif self._current in self._first_row:
            self._move_to(self._order.index(self._current))
        return self.scoped_space

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
            room_id = self._order[self.highlighted]
            tree_row = self._tree.get(room_id)
            if tree_row is not None and tree_row.kind is RowKind.SPACE:
                self.toggle_space(room_id)  # a space is opened and closed, not read
                return
            self.post_message(self.RoomChosen(room_id))

    def on_click(self, event: events.Click) -> None:
        number = self.scroll_offset.y + event.y
        if 0 <= number < len(self._rows):
            room = self._rows[number][1]
            if room is not None:
                self.highlighted = self._order.index(room.room_id)
                self.refresh()
                self.action_choose()
