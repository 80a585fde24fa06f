"""The verification dialog: a QR code to scan, or emoji to compare.

An incoming request asks to accept or decline. When the other device can
scan, the dialog shows a QR code (black on white, half blocks) with
"Compare emoji instead" one key away (e); once they scanned it, it asks
whether they did ("Yes, they scanned it" / "No"). Otherwise both people
compare seven emoji (with names, and the numbers as a fallback) and press
"They match" or "They don't match". The other side's progress and the
outcome (verified, or cancelled with the reason) are shown until the
dialog is closed. Each choice goes to the service handed to the dialog (none in a
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
    if phase is Phase.READY and view.qr:
        return f"Scan this code with {other_name}{device}, or press e to compare emoji instead."
    if phase is Phase.QR_SCANNED:
        return (
            f"{other_name}{device} says they scanned the code. Did they scan it? "
            "Confirm only if their screen says so."
        )
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


# Dark modules black, light ones white, whatever the theme: a dark
# background would invert the code, which many scanners cannot read.
QR_STYLE = "#000000 on #ffffff"


def qr_text(view: VerificationView) -> Text:
    """The view's QR code (tuichat's own payload, not remote text), with
    error correction L as Element's, to keep it small on the screen."""
    from tuichat.qr_text import qr_lines

    text = Text(justify="center")
    for index, row in enumerate(qr_lines(view.qr, error="l")):
        if index:
            text.append("\n")
        text.append(safe_text(row), style=QR_STYLE)
    return text


class VerificationDialog(ModalScreen[None]):
    DEFAULT_CSS = """
    VerificationDialog { align: center middle; }
    VerificationDialog > Vertical {
        width: 96; max-width: 100%; height: auto; max-height: 100%; padding: 1 2;
        overflow-y: auto;
        border: thick $primary; background: $surface;
    }
    VerificationDialog #sas { height: auto; margin: 1 0; }
    VerificationDialog #qr { height: auto; width: 100%; margin: 1 0 0 0; }
    VerificationDialog #state { height: auto; }
    VerificationDialog Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    VerificationDialog Button { margin-left: 2; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("e", "emoji", "Compare emoji", show=False),
    ]

    class Choice(Message):
        """accept, decline, match, mismatch, emoji, scanned, not_scanned or cancel."""

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
        self._qr_drawn = b""

    @property
    def transaction_id(self) -> str:
        return self.view.transaction_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Verification", style="bold"))
            yield Static(id="state")
            yield Static(id="qr")
            yield Static(id="sas")
            with Horizontal(id="buttons"):
                yield Button("Decline", id="decline")
                yield Button("Accept", variant="primary", id="accept")
                yield Button("Compare emoji instead", id="emoji")
                yield Button("No", variant="error", id="not_scanned")
                yield Button("Yes, they scanned it", variant="success", id="scanned")
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
        sas.display = view.phase in (Phase.SHOW_SAS, Phase.CONFIRMED) and bool(view.emoji)
        if sas.display:
            sas.update(emoji_text(view))
        code = self.query_one("#qr", Static)
        showing_qr = view.phase is Phase.READY and bool(view.qr)
        if showing_qr and self._qr_drawn != view.qr:
            code.update(qr_text(view))
            self._qr_drawn = view.qr
        code.display = showing_qr
        emoji = self.query_one("#emoji", Button)
        emoji.label = "Compare emoji instead" if showing_qr else "Compare emoji"
        incoming = view.phase is Phase.REQUESTED and not view.we_requested
        comparing = view.phase is Phase.SHOW_SAS
        scanned = view.phase is Phase.QR_SCANNED
        finished = view.phase in (Phase.DONE, Phase.CANCELLED)
        visible = {
            "decline": incoming,
            "accept": incoming,
            # Either side may start emoji once ready (a request from a
            # device that only shows codes would otherwise wait for ever).
            "emoji": view.phase is Phase.READY,
            "not_scanned": scanned,
            "scanned": scanned,
            "mismatch": comparing,
            "match": comparing,
            "cancel": not (incoming or comparing or scanned or finished),
            "close": finished,
        }
        for button_id, shown in visible.items():
            self.query_one(f"#{button_id}", Button).display = shown
        # Neither answer has the focus while comparing (emoji, or whether
        # they scanned): a stray Enter must not say "They match" (Tab
        # reaches the buttons).
        focus = next((b for b in ("accept", "close", "emoji", "cancel") if visible[b]), None)
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

    def action_emoji(self) -> None:
        if self.view.phase is Phase.READY:
            self._choose("emoji")

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
            "emoji": service.start_emoji_verification,
            "scanned": service.confirm_verification,
            "not_scanned": service.cancel_verification,
            "mismatch": service.reject_verification,
            "cancel": service.cancel_verification,
        }
        call = calls.get(choice)
        if call is not None:
            # A worker of the App: it outlives the dialog, and its failure
            # is reported with the others'.
            self.app.run_worker(call(self.transaction_id), group="commands", exit_on_error=False)
