"""The header above the timeline: room name, topic and encryption state."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tuichat.model.rooms import RoomSummary
from tuichat.model.sanitize import safe_line


def header_text(room: RoomSummary | None) -> Text:
    if room is None:
        return Text("No room selected", style=Style(italic=True))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(safe_line(room.name), style=Style(bold=True))
    if room.pinned:  # issue 22: /pins lists them
        count = len(room.pinned)
        text.append(f"  📌 {count} pinned", style=Style(color="cyan"))
    if room.topic:
        text.append("  —  ")
        text.append(safe_line(room.topic, max_length=1024), style=Style(dim=True))
    return text


def encryption_text(room: RoomSummary | None) -> Text:
    """Encryption and device trust: whether every device in the room is verified."""
    if room is None:
        return Text("")
    if not room.encrypted:
        return Text("not encrypted", style=Style(color="yellow"))
    text = Text("🔒 encrypted", style=Style(color="green"))
    # Only what is true: "all devices verified" needs devices. A member with
    # no device cannot read what is sent, however verified the others are.
    keyless = room.members_without_devices
    if keyless:
        if room.is_direct and keyless == 1:
            who = "they have"
        else:
            who = f"{keyless} member{'s have' if keyless != 1 else ' has'}"
        text.append(safe_line(f" · {who} no device to read it"), style=Style(color="red"))
    if room.unverified_devices:
        count = room.unverified_devices
        text.append(
            f" · {count:d} unverified device{'s' if count != 1 else ''}",
            style=Style(color="yellow"),
        )
    elif room.devices:
        text.append(" · all devices verified", style=Style(color="green"))
    elif not keyless:
        text.append(" · no other devices", style=Style(dim=True))
    if room.verified_only:
        text.append(" · keys to verified only", style=Style(color="cyan"))
    return text


class RoomHeader(Widget):
    """Drawn from the room at the width it has: a resize redraws it without
    a new layout (a `Static` updated on resize asked for one, which cost
    the first frame a second layout pass)."""

    DEFAULT_CSS = """
    RoomHeader {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """

    _room: RoomSummary | None = None

    def show_room(self, room: RoomSummary | None) -> None:
        self._room = room
        self.refresh()

    def render(self) -> Text:
        room = self._room
        text = header_text(room)
        right = encryption_text(room)
        width = max(10, self.content_size.width)
        if right.plain:
            text.truncate(max(1, width - right.cell_len - 2), overflow="ellipsis")
            text.pad_right(max(0, width - text.cell_len - right.cell_len))
            text.append_text(right)
        return text
