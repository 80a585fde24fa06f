"""A list of rooms to join: a space's rooms as its hierarchy lists them, or
a server's public rooms (name, topic, members, whether you joined); Enter
returns the room, for the caller to join through the servers named."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tuichat.model.sanitize import SafeText, safe_line
from tuichat.model.space_tree import HierarchyRoom


def hierarchy_label(room: HierarchyRoom) -> Text:
    label = Text(safe_line(room.name), style="bold")
    if room.is_space:
        label.append("  (space)", style="italic")
    members = f"{room.members} member{'' if room.members == 1 else 's'}"
    label.append(safe_line(f"  {members}"), style="dim")
    label.append(
        "  joined" if room.joined else "  Enter: join", style="green" if room.joined else ""
    )
    if room.suggested:
        label.append("  suggested", style="italic dim")
    if room.topic:
        label.append(f"\n  {safe_line(room.topic)}", style="dim")
    return label


class SpaceBrowser(ModalScreen[HierarchyRoom | None]):
    DEFAULT_CSS = """
    SpaceBrowser { align: center middle; }
    SpaceBrowser > Vertical {
        width: 80; height: auto; max-height: 85%; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    SpaceBrowser OptionList { height: auto; max-height: 30; margin-top: 1; }
    """

    BINDINGS = [Binding("escape", "app.pop_screen", "Close")]

    def __init__(self, title: SafeText, rooms: Sequence[HierarchyRoom]) -> None:
        super().__init__()
        self.title_text = title
        self.rooms = list(rooms)

    def compose(self) -> ComposeResult:
        with Vertical():
            count = f"  ({len(self.rooms)} rooms)"
            yield Label(Text.assemble((self.title_text, "bold"), count))
            yield OptionList(
                *(Option(hierarchy_label(room), id=room.room_id) for room in self.rooms)
            )

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        room = next((r for r in self.rooms if r.room_id == event.option.id), None)
        self.dismiss(room)
