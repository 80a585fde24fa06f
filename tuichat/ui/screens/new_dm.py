"""Ctrl+N: start an encrypted DM. Type a user id; the person's display name
is looked up and shown before you confirm."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Label, Static

from tuichat.matrix.service import ProfileLookup
from tuichat.model.sanitize import safe_line

Lookup = Callable[[str], Awaitable[ProfileLookup]]
LOOKUP_DELAY = 0.35


class NewDmDialog(ModalScreen[str | None]):
    """Dismisses with a user id whose profile was found, or None."""

    DEFAULT_CSS = """
    NewDmDialog { align: center middle; }
    NewDmDialog > Vertical {
        width: 64; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    NewDmDialog #who { height: auto; margin-top: 1; }
    NewDmDialog #who.-error { color: $error; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, lookup: Lookup) -> None:
        super().__init__()
        self._lookup = lookup
        self._found: ProfileLookup | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("New encrypted direct message", style="bold"))
            yield Input(placeholder="@someone:example.org", id="user-id")
            yield Static(Text("Type a user id, then Enter.", style="dim"), id="who")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self._found = None
        if self._timer is not None:
            self._timer.stop()
        value = event.value.strip()
        if value:
            self._timer = self.set_timer(LOOKUP_DELAY, lambda: self._look_up(value))

    @work(exclusive=True, group="lookup")
    async def _look_up(self, user_id: str) -> ProfileLookup:
        who = self.query_one("#who", Static)
        who.update(Text(safe_line(f"Looking up {user_id}…"), style="dim"))
        result = await self._lookup(user_id)
        if self.query_one(Input).value.strip() != user_id:
            return result
        if result.error:
            who.add_class("-error")
            who.update(Text(safe_line(result.error)))
        else:
            who.remove_class("-error")
            name = safe_line(result.display_name) or "(no display name)"
            who.update(Text.assemble((name, "bold"), f"  {safe_line(user_id)}  — Enter to start"))
            self._found = result
        return result

    @on(Input.Submitted)
    async def _submitted(self, event: Input.Submitted) -> None:
        user_id = event.value.strip()
        if self._found is None or self._found.user_id != user_id:
            worker = self._look_up(user_id)
            await worker.wait()
        if self._found is not None and self._found.user_id == user_id:
            self.dismiss(user_id)

    def action_cancel(self) -> None:
        self.dismiss(None)
