"""The emoji verification dialog.

An incoming request asks to accept or decline; then both people compare
seven emoji (with names, and the numbers as a fallback) and press "They
match" or "They don't match". The other side's progress and the outcome
(verified, or cancelled with the reason) are shown until the dialog is
closed. Each choice goes to the service handed to the dialog (none in a
dialog shown without a connection), and is posted as a `Choice` message
for whoever listens.

One concept seen from three sides, hence three modules of this name:
`tuichat/matrix/crypto/verification.py` runs the protocol,
`tuichat/model/verification.py` holds what the dialog shows, and this
module is the dialog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from tuichat.model.sanitize import clean_line, safe_line, safe_text
from tuichat.model.verification import Phase, VerificationView

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService


def describe(view: VerificationView, other_name: str) -> str:
    """The dialog's state line. The requester's name, their `from_device`
    and a cancel reason are remote text (anyone can send a request): each
    goes through the sanitiser here, where it is drawn."""
    other_name = clean_line(other_name, max_length=256)
    device = f" ({clean_line(view.other_device, max_length=128)})" if view.other_device else ""
    phase = view.phase
    if phase is Phase.REQUESTED:
        if view.we_requested:
            return f"Waiting for {other_name}{device} to accept the verification…"
        return f"{other_name}{device} wants to verify this device."
    if phase in (Phase.READY, Phase.STARTED, Phase.ACCEPTED):
        return f"Exchanging keys with {other_name}{device}…"
    if phase is Phase.SHOW_SAS:
        waiting = " They have confirmed." if view.their_mac_received else ""
        return f"Compare these emoji with {other_name}'s screen.{waiting}"
    if phase is Phase.CONFIRMED:
        return f"You confirmed. Waiting for {other_name} to confirm…"
    if phase is Phase.DONE:
        return f"✓ Verified: {other_name}{device} is now trusted."
    by = "You cancelled" if view.cancelled_by_us else f"{other_name} cancelled"
    reason = clean_line(view.cancel_reason, max_length=256)
    return f"✗ Verification cancelled: {reason} ({by})."


def unsolicited_notice(view: VerificationView, other_name: str) -> str:
    """What is said instead of opening the dialog for a request nobody asked
    for (see `VerificationView.unsolicited`)."""
    name = clean_line(other_name, max_length=256)
    device = f" ({clean_line(view.other_device, max_length=128)})" if view.other_device else ""
    return (
        f"{name}{device} asks to verify this device; you share no room with them, or "
        "you blocked that device. Type /verifications to answer or decline."
    )


def emoji_text(view: VerificationView) -> Text:
    # The emoji and names come from tuichat's own table, not the network.
    text = Text(justify="center")
    for emoji, _name in view.emoji:
        text.append(safe_line(emoji).center(12))
    text.append("\n")
    for _emoji, name in view.emoji:
        text.append(safe_line(name).center(12)[:12], style="bold")
    if view.decimals:
        numbers = safe_line("  ".join(str(n) for n in view.decimals))
        text.append(f"\n\n{numbers}", style="dim")
    return text


class VerificationDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    VerificationDialog { align: center middle; }
    VerificationDialog > Vertical {
        width: 96; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    VerificationDialog #sas { height: auto; margin: 1 0; }
    VerificationDialog #state { height: auto; }
    VerificationDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    VerificationDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "close", "Close")]

    class Choice(Message):
        """accept, decline, match, mismatch or cancel."""

        def __init__(self, transaction_id: str, choice: str) -> None:
            super().__init__()
            self.transaction_id, self.choice = transaction_id, choice

    def __init__(
        self, view: VerificationView, other_name: str, service: MatrixService | None = None
    ) -> None:
        super().__init__()
        self.view = view
        self.other_name = other_name
        self.service = service

    @property
    def transaction_id(self) -> str:
        return self.view.transaction_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Emoji verification", style="bold"))
            yield Static(id="state")
            yield Static(id="sas")
            with Horizontal(id="buttons"):
                yield Button("Decline", id="decline")
                yield Button("Accept", variant="primary", id="accept")
                yield Button("They don't match", variant="error", id="mismatch")
                yield Button("They match", variant="success", id="match")
                yield Button("Cancel", id="cancel")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.update_view(self.view)

    def update_view(self, view: VerificationView) -> None:
        self.view = view
        self.query_one("#state", Static).update(Text(safe_text(describe(view, self.other_name))))
        sas = self.query_one("#sas", Static)
        sas.display = view.phase in (Phase.SHOW_SAS, Phase.CONFIRMED)
        if sas.display:
            sas.update(emoji_text(view))
        incoming = view.phase is Phase.REQUESTED and not view.we_requested
        comparing = view.phase is Phase.SHOW_SAS
        finished = view.phase in (Phase.DONE, Phase.CANCELLED)
        visible = {
            "decline": incoming,
            "accept": incoming,
            "mismatch": comparing,
            "match": comparing,
            "cancel": not (incoming or comparing or finished),
            "close": finished,
        }
        for button_id, shown in visible.items():
            self.query_one(f"#{button_id}", Button).display = shown
        # Neither answer has the focus while comparing: a stray Enter must
        # not say "They match" (Tab reaches the buttons).
        focus = next((b for b in ("accept", "close", "cancel") if visible[b]), None)
        if focus:
            self.query_one(f"#{focus}", Button).focus()
        elif isinstance(self.focused, Button) and self.focused.id in visible:
            self.set_focus(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "close":
            self.dismiss(None)
            return
        self._choose(str(event.button.id))

    def action_close(self) -> None:
        if self.view.phase not in (Phase.DONE, Phase.CANCELLED):
            self._choose("cancel")
        self.dismiss(None)

    def _choose(self, choice: str) -> None:
        self.post_message(self.Choice(self.transaction_id, choice))
        service = self.service
        if service is None:
            return
        calls = {
            "accept": service.accept_verification,
            "decline": service.cancel_verification,
            "match": service.confirm_verification,
            "mismatch": service.reject_verification,
            "cancel": service.cancel_verification,
        }
        call = calls.get(choice)
        if call is not None:
            # A worker of the App: it outlives the dialog, and its failure
            # is reported with the others'.
            self.app.run_worker(call(self.transaction_id), group="commands", exit_on_error=False)
