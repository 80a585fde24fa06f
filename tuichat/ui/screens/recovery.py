"""Recover encrypted history: unlock with the recovery key or passphrase, or
set recovery up when the account has none. The dialog reports the person's
choice as a message; the App runs it and feeds progress and the outcome
back through `show_progress`, `show_done`, `show_error`, `show_recovery_key`.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Static

from tuichat.model.sanitize import SafeText, safe_line


class RecoveryDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    RecoveryDialog { align: center middle; }
    RecoveryDialog > Vertical {
        width: 80; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    RecoveryDialog Input, RecoveryDialog Checkbox, RecoveryDialog ProgressBar { margin-top: 1; }
    RecoveryDialog #outcome { height: auto; margin-top: 1; }
    RecoveryDialog #outcome.-error { color: $error; }
    RecoveryDialog #recovery-key {
        height: auto; margin-top: 1; padding: 1 2; border: round $warning;
    }
    RecoveryDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    RecoveryDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "close", "Close")]

    class RestoreRequested(Message):
        def __init__(self, secret: str, is_passphrase: bool) -> None:
            super().__init__()
            self.secret, self.is_passphrase = secret, is_passphrase

    class SetupRequested(Message):
        def __init__(self, password: str) -> None:
            super().__init__()
            self.password = password

    def __init__(self, *, has_secret_storage: bool, backup_count: int = 0) -> None:
        super().__init__()
        self.has_secret_storage = has_secret_storage
        self.backup_count = backup_count
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            if self.has_secret_storage:
                yield Label(Text("Recover encrypted history", style="bold"))
                count = f" ({self.backup_count} keys)" if self.backup_count else ""
                yield Static(
                    Text(
                        "Your account keeps a key backup" + count + ". Enter your recovery key "
                        "(or recovery passphrase) to read your encrypted history on this device."
                    )
                )
                yield Input(password=True, placeholder="EsTc … recovery key", id="secret")
                yield Checkbox("This is my passphrase, not the recovery key", id="is-passphrase")
            else:
                yield Label(Text("Set up recovery", style="bold"))
                yield Static(
                    Text(
                        "Your account has no recovery yet. Setting it up creates a recovery key "
                        "and a key backup (and cross-signing keys, if you have none), so a new "
                        "device, tuichat or Element, can read your encrypted history."
                    )
                )
                yield Input(
                    password=True,
                    placeholder="Account password (needed to create cross-signing keys)",
                    id="password",
                )
            yield ProgressBar(total=None, show_eta=False, id="progress")
            yield Static(id="outcome")
            yield Static(id="recovery-key")
            with Horizontal():
                yield Button("Not now", id="close")
                if self.has_secret_storage:
                    yield Button("Restore", variant="primary", id="restore")
                else:
                    yield Button("Set up recovery", variant="primary", id="setup")

    def on_mount(self) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.query_one("#recovery-key", Static).display = False
        if self.has_secret_storage:
            self.query_one("#secret", Input).focus()
        else:
            self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#secret")
    @on(Button.Pressed, "#restore")
    def _restore(self) -> None:
        if self.busy:
            return
        secret = self.query_one("#secret", Input).value.strip()
        if not secret:
            self.show_error("Enter your recovery key or passphrase.")
            return
        self.busy = True
        is_passphrase = self.query_one("#is-passphrase", Checkbox).value
        self.show_progress(0, 0)
        self.post_message(self.RestoreRequested(secret, is_passphrase))

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#setup")
    def _setup(self) -> None:
        if not self.busy:
            self.busy = True
            self.show_progress(0, 0)
            self.post_message(self.SetupRequested(self.query_one("#password", Input).value))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

    # -- fed by the App ------------------------------------------------------------------

    def show_progress(self, done: int, total: int) -> None:
        bar = self.query_one("#progress", ProgressBar)
        bar.display = True
        bar.update(total=total or None, progress=done)
        outcome = self.query_one("#outcome", Static)
        outcome.remove_class("-error")
        outcome.update(Text(f"Restoring keys… {done}/{total}" if total else "Working…"))

    def show_error(self, message: SafeText) -> None:
        self.busy = False
        self.query_one("#progress", ProgressBar).display = False
        outcome = self.query_one("#outcome", Static)
        outcome.add_class("-error")
        outcome.update(Text(message))

    def show_done(self, message: SafeText) -> None:
        self.busy = False
        self.query_one("#progress", ProgressBar).display = False
        outcome = self.query_one("#outcome", Static)
        outcome.remove_class("-error")
        outcome.update(Text(message))
        self.query_one("#close", Button).label = "Close"
        for button_id in ("#restore", "#setup"):
            for button in self.query(button_id):
                button.display = False

    def show_recovery_key(self, recovery_key: str) -> None:
        self.show_done(
            "Recovery is set up. Write the recovery key down and keep it safe: "
            "it is shown only this once."
        )
        box = self.query_one("#recovery-key", Static)
        box.display = True
        box.update(Text(safe_line(recovery_key), style="bold"))
