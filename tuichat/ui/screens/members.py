"""The room's members; Enter chooses one (the dialog's result: user id and
display name), whose devices the caller opens."""

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


class MembersDialog(ModalScreen[tuple[str, str] | None]):
    DEFAULT_CSS = """
    MembersDialog { align: center middle; }
    MembersDialog > Vertical {
        width: 70; height: auto; max-height: 80%; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    MembersDialog OptionList { height: auto; max-height: 24; margin-top: 1; }
    """

    BINDINGS = [Binding("escape", "app.pop_screen", "Close")]

    def __init__(self, room_name: SafeText, members: Sequence[tuple[str, str, str]]) -> None:
        """`members`: (user id, display name, membership), as the room state
        has them (a state key is any string a server sent): cleaned where drawn."""
        super().__init__()
        self.room_name = room_name
        self.members = list(members)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("Members of ", "bold"), (self.room_name, "bold")))
            options = []
            for user_id, name, membership in self.members:
                label = Text(safe_line(name), style="bold")
                label.append(f"  {safe_line(user_id)}", style="dim")
                if membership != "join":
                    label.append(f"  ({safe_line(membership)})", style="italic dim")
                options.append(Option(label, id=user_id))
            yield OptionList(*options)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        user_id = event.option.id or ""
        name = next((n for u, n, _ in self.members if u == user_id), user_id)
        self.dismiss((user_id, name))
