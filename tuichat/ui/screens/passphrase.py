"""A dialog that asks for a passphrase without showing it."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tuichat.model.sanitize import SafeText, safe_line


class PassphraseDialog(ModalScreen[str | None]):
    """Dismisses with the passphrase, or None when cancelled. The text is
    never echoed, logged or kept after the dialog closes."""

    DEFAULT_CSS = """
    PassphraseDialog { align: center middle; }
    PassphraseDialog > Vertical {
        width: 64; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    PassphraseDialog Input { margin-top: 1; }
    PassphraseDialog #problem { color: $error; height: auto; margin-top: 1; }
    PassphraseDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    PassphraseDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: SafeText,
        explanation: SafeText,
        *,
        confirm: bool,
        check: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self._title = title
        self._explanation = explanation
        self._confirm = confirm
        # Says why a passphrase is not good enough (too weak), or None.
        self._check = check

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._title, style="bold"))
            yield Static(Text(self._explanation))
            yield Input(password=True, placeholder="Passphrase", id="passphrase")
            if self._confirm:
                yield Input(password=True, placeholder="Passphrase again", id="again")
            yield Static(id="problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("OK", variant="primary", id="ok")

    def on_mount(self) -> None:
        self.query_one("#passphrase", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if self._confirm and event.input.id == "passphrase":
            self.query_one("#again", Input).focus()
            return
        self._accept()

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self._accept()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _accept(self) -> None:
        passphrase = self.query_one("#passphrase", Input).value
        problem = self.query_one("#problem", Static)
        if not passphrase:
            problem.update(Text("Enter a passphrase."))
            return
        if self._confirm and self.query_one("#again", Input).value != passphrase:
            problem.update(Text("The passphrases differ."))
            return
        weakness = self._check(passphrase) if self._check else None
        if weakness:
            problem.update(Text(safe_line(weakness[0].upper() + weakness[1:] + ".")))
            return
        self.dismiss(passphrase)
