"""The room list: an Invites section, then rooms by recent activity."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tuichat.model.rooms import Membership, RoomSummary

DM_MARK = "@"
ENCRYPTED_MARK = "🔒"


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
    label.append(room.name, style=Style(bold=bool(room.unread)))
    if room.membership is Membership.INVITE and room.inviter:
        label.append(f"\n     invited by {room.inviter}", style=Style(dim=True, italic=True))
    if room.highlight:
        label.append(f" ({_badge(room.highlight)}!)", style=Style(color="red", bold=True))
    elif room.unread:
        label.append(f" ({_badge(room.unread)})", style=Style(bold=True))
    return label


class RoomListView(OptionList):
    """Shows room summaries; posts `RoomChosen` when one is selected."""

    DEFAULT_CSS = """
    RoomListView {
        width: 32;
        height: 1fr;
        border: none;
        border-right: tall $panel;
        background: $panel-darken-1;
        padding: 0;
    }
    """

    class RoomChosen(Message):
        def __init__(self, room_id: str) -> None:
            super().__init__()
            self.room_id = room_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._order: list[str] = []
        self._current: str | None = None

    @property
    def room_ids(self) -> list[str]:
        return list(self._order)

    def show_rooms(self, rooms: Sequence[RoomSummary], current: str | None) -> None:
        self._current = current
        invites = [r for r in rooms if r.membership is Membership.INVITE]
        joined = [r for r in rooms if r.membership is Membership.JOIN]
        options: list[Option | None] = []
        order: list[str] = []
        if invites:
            options.append(Option(Text("Invites", style="bold underline"), disabled=True))
            for room in invites:
                options.append(Option(room_label(room), id=room.room_id))
                order.append(room.room_id)
            options.append(Option(Text("Rooms", style="bold underline"), disabled=True))
        for room in joined:
            options.append(Option(room_label(room), id=room.room_id))
            order.append(room.room_id)
        self._order = order
        # While the user moves through the list, keep their cursor; otherwise
        # the cursor follows the room on screen.
        cursor = self.highlighted_option.id if self.highlighted_option else None
        target = cursor if self.has_focus and cursor in order else current
        with self.prevent(OptionList.OptionHighlighted):
            self.clear_options()
            self.add_options(options)
            if target in order:
                self.highlighted = self.get_option_index(target)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.RoomChosen(event.option.id))
