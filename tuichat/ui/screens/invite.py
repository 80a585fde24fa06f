"""An invite: who invited you to what, and whether it is encrypted.
A accepts, D declines, Escape decides later."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from tuichat.model.rooms import RoomSummary
from tuichat.model.sanitize import safe_line

Decision = Literal["accept", "decline"]


class InviteDialog(ModalScreen[Decision | None]):
    DEFAULT_CSS = """
    InviteDialog { align: center middle; }
    InviteDialog > Vertical {
        width: 64; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    InviteDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    InviteDialog Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("a", "accept", "Accept"),
        Binding("d", "decline", "Decline"),
        Binding("escape", "later", "Later"),
    ]

    def __init__(self, room: RoomSummary) -> None:
        super().__init__()
        self.room = room

    def compose(self) -> ComposeResult:
        room = self.room
        kind = "a direct message" if room.is_direct else "a room"
        with Vertical():
            yield Label(Text.assemble(("Invitation to ", "bold"), (safe_line(room.name), "bold")))
            description = Text()
            description.append(safe_line(room.inviter) or "Someone", style="bold")
            description.append(f" invited you to {kind}.\n")
            if room.encrypted:
                description.append("🔒 It is end-to-end encrypted.", style="green")
            else:
                description.append("It is not encrypted.", style="yellow")
            yield Static(description)
            with Horizontal():
                yield Button("Later", id="later")
                yield Button("Decline (d)", variant="error", id="decline")
                yield Button("Accept (a)", variant="primary", id="accept")

    def on_mount(self) -> None:
        self.query_one("#accept", Button).focus()

    @on(Button.Pressed, "#accept")
    def action_accept(self) -> None:
        self.dismiss("accept")

    @on(Button.Pressed, "#decline")
    def action_decline(self) -> None:
        self.dismiss("decline")

    @on(Button.Pressed, "#later")
    def action_later(self) -> None:
        self.dismiss(None)
