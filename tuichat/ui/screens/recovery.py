"""Recover encrypted history: unlock with the recovery key or passphrase, or
set recovery up when the account has none. The dialog runs the person's
choice through the service handed to it, as a worker of the App (whose
failures are reported with the others'), and shows progress and the
outcome (`show_progress`, `show_done`, `show_error`, `show_recovery_key`).

The matrix errors it catches are imported when a choice runs: their modules
bring nio, and this dialog can open before the service has imported it.

The same concept as `tuichat/matrix/crypto/recovery.py`, seen from the
other side: that module restores and sets up keys, this dialog asks for
the key or passphrase and shows the outcome.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Static

from tuichat.model.sanitize import SafeText, safe_line, safe_text

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService


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

    def __init__(
        self,
        service: MatrixService | None,
        *,
        has_secret_storage: bool,
        backup_count: int = 0,
    ) -> None:
        super().__init__()
        self.service = service
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
        self._run(self._restore_with(secret, is_passphrase))

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#setup")
    def _setup(self) -> None:
        if not self.busy:
            self.busy = True
            self.show_progress(0, 0)
            self._run(self._set_up(self.query_one("#password", Input).value))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)

    # -- through the service ---------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        self.app.run_worker(work, group="recovery", exclusive=True, exit_on_error=False)

    async def _restore_with(self, secret: str, is_passphrase: bool) -> None:
        from tuichat.matrix.service import (
            NETWORK_ERRORS,
            BackupError,
            MatrixHttpError,
            SecretStorageError,
        )

        if self.service is None:
            return
        try:
            kwargs = {"passphrase": secret} if is_passphrase else {"recovery_key": secret}
            result = await self.service.recover(progress=self.show_progress, **kwargs)
        except (SecretStorageError, BackupError) as error:
            self.show_error(safe_text(str(error)))
            return
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            self.show_error(safe_text(f"The server could not be reached: {error}"))
            return
        self.show_done(
            safe_text(
                f"Restored {result.imported} room keys from your backup. "
                "Encrypted history fills in as it is decrypted."
            )
        )

    async def _set_up(self, password: str) -> None:
        from tuichat.matrix.service import NETWORK_ERRORS, MatrixHttpError, SecretStorageError

        if self.service is None:
            return
        try:
            recovery_key = await self.service.setup_recovery(password=password or None)
        except SecretStorageError as error:
            self.show_error(safe_text(str(error)))
            return
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            self.show_error(safe_text(f"Setting up recovery failed: {error}"))
            return
        self.show_recovery_key(recovery_key)

    # -- progress and outcome ------------------------------------------------------------

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
