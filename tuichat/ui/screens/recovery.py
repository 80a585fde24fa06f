"""Recover encrypted history: unlock with the recovery key or passphrase, or
set recovery up when the account has none. The dialog runs the person's
choice through the service handed to it, as a worker of the App (whose
failures are reported with the others'), and shows progress and the
outcome (`show_progress`, `show_done`, `show_error`, `show_recovery_key`).
A wrong key or an unreachable server comes back from the service as
`Failed`, shown as the outcome.

Setting up recovery on an account without cross-signing keys creates them;
the server may ask for the account password or, on OAuth 2.0 API servers
(no password), for an approval on its account page: the dialog then shows
that page's address (and opens it when a browser can be opened) with a
"Done" button, and the set-up goes on once the person presses it.

The same concept as `tuichat/matrix/crypto/recovery.py`, seen from the
other side: that module restores and sets up keys, this dialog asks for
the key or passphrase and shows the outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Static

from tuichat.browser import can_open_browser, open_browser
from tuichat.matrix.service import Failed
from tuichat.model.sanitize import SafeText, safe_line, safe_text

if TYPE_CHECKING:
    from textual.worker import Worker

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
    RecoveryDialog #recovery-key, RecoveryDialog #approval {
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
        # Without a password: OAuth 2.0 API accounts approve in the browser.
        self.approves_in_browser = bool(service is not None and service.oauth_account)
        self._approved: asyncio.Event | None = None
        self._worker: Worker[None] | None = None

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
                if not self.approves_in_browser:
                    yield Input(
                        password=True,
                        placeholder="Account password (needed to create cross-signing keys)",
                        id="password",
                    )
            yield ProgressBar(total=None, show_eta=False, id="progress")
            yield Static(id="outcome")
            yield Static(id="approval")
            yield Static(id="recovery-key")
            with Horizontal():
                yield Button("Not now", id="close")
                yield Button("Done", variant="primary", id="approved")
                if self.has_secret_storage:
                    yield Button("Restore", variant="primary", id="restore")
                else:
                    yield Button("Set up recovery", variant="primary", id="setup")

    def on_mount(self) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.query_one("#recovery-key", Static).display = False
        self.query_one("#approval", Static).display = False
        self.query_one("#approved", Button).display = False
        if self.has_secret_storage:
            self.query_one("#secret", Input).focus()
        elif self.approves_in_browser:
            self.query_one("#setup", Button).focus()
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
            passwords = self.query("#password").results(Input)
            self._run(self._set_up(next((i.value for i in passwords), "")))

    @on(Button.Pressed, "#approved")
    def _approval_done(self) -> None:
        if self._approved is not None:
            self._approved.set()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        if self._approved is not None and self._worker is not None:
            self._worker.cancel()  # it waits for an approval that will not come
        self.dismiss(None)

    # -- through the service ---------------------------------------------------------------

    def _run(self, work: Coroutine[Any, Any, None]) -> None:
        self._worker = self.app.run_worker(
            work, group="recovery", exclusive=True, exit_on_error=False
        )

    async def _restore_with(self, secret: str, is_passphrase: bool) -> None:
        if self.service is None:
            return
        kwargs = {"passphrase": secret} if is_passphrase else {"recovery_key": secret}
        result = await self.service.recover(progress=self.show_progress, **kwargs)
        if isinstance(result, Failed):
            self.show_error(safe_text(result.message))
            return
        self.show_done(
            safe_text(
                f"Restored {result.imported} room keys from your backup. "
                "Encrypted history fills in as it is decrypted."
            )
        )

    async def _set_up(self, password: str) -> None:
        if self.service is None:
            return
        recovery_key = await self.service.setup_recovery(
            password=password or None, approve=self._approve
        )
        if isinstance(recovery_key, Failed):
            self.show_error(safe_text(f"Setting up recovery failed: {recovery_key.message}"))
            return
        self.show_recovery_key(recovery_key)

    async def _approve(self, url: str) -> None:
        """Show the server's approval page and wait for "Done"."""
        self._approved = asyncio.Event()
        opened = can_open_browser() and await open_browser(url)
        self.show_approval(url, opened)
        try:
            await self._approved.wait()
        finally:
            self._approved = None  # closing the dialog cancels the wait
        self.query_one("#approval", Static).display = False
        self.query_one("#approved", Button).display = False
        self.show_progress(0, 0)

    # -- progress and outcome ------------------------------------------------------------

    def show_progress(self, done: int, total: int) -> None:
        bar = self.query_one("#progress", ProgressBar)
        bar.display = True
        bar.update(total=total or None, progress=done)
        outcome = self.query_one("#outcome", Static)
        outcome.remove_class("-error")
        outcome.update(Text(f"Restoring keys… {done}/{total}" if total else "Working…"))

    def show_approval(self, url: str, opened: bool) -> None:
        """The approval page's address (the server's text: sanitised) and
        the "Done" button to press once it is approved."""
        self.query_one("#progress", ProgressBar).display = False
        outcome = self.query_one("#outcome", Static)
        outcome.remove_class("-error")
        outcome.update(
            Text(
                "Your server asks you to approve creating your cross-signing keys on its "
                "account page"
                + (" (opened in your browser)" if opened else "; open this address")
                + ". Press Done once you have approved it."
            )
        )
        box = self.query_one("#approval", Static)
        box.display = True
        box.update(Text(safe_line(url)))
        done = self.query_one("#approved", Button)
        done.display = True
        done.focus()

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
