"""A room's pinned messages, newest pin first: who wrote each and its first
line (remote text, cleaned where drawn). Escape closes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tuichat.model.sanitize import SafeText, safe_line


class PinnedDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    PinnedDialog { align: center middle; }
    PinnedDialog > Vertical {
        width: 80; height: auto; max-height: 80%; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    PinnedDialog OptionList { height: auto; max-height: 24; margin-top: 1; }
    """

    BINDINGS = [Binding("escape", "app.pop_screen", "Close")]

    def __init__(self, room_name: SafeText, pins: Sequence[tuple[str, str]]) -> None:
        """`pins`: (sender's name, body) of each pinned message."""
        super().__init__()
        self.room_name = room_name
        self.pins = list(pins)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(("Pinned in ", "bold"), (self.room_name, "bold")))
            options = []
            for sender, body in self.pins:
                label = Text(safe_line(sender), style="bold")
                label.append(": ")
                label.append(safe_line(body.split("\n", 1)[0]))
                options.append(Option(label))
            yield OptionList(*options)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()
