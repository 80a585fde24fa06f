"""The Devices screen: a user's identity, devices, fingerprints and trust.

For your own account it also says whether a dehydrated device (MSC3814)
receives room keys while you are signed out.

Keys: v verify (after comparing the fingerprint out of band), e verify by
QR code or emoji, u unverify, b blacklist, n unblacklist, i ignore, a accept
a changed identity, r refresh, m manage your account (the server's account
page, on OAuth 2.0 API servers), Escape back. The screen loads its data and
carries out these choices through the service handed to it (none in a
screen shown without a connection: it shows what it is given).

The same concept as `tuichat/model/devices.py`, seen from the other side:
that module holds the values, this screen shows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tuichat.matrix.service import Failed
from tuichat.model.dehydration import DehydrationState
from tuichat.model.devices import DeviceInfo, IdentityState, Trust
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted
from tuichat.ui.screens.confirm import ConfirmDialog

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService

TRUST_STYLES = {
    Trust.VERIFIED: Style(color="green", bold=True),
    Trust.UNVERIFIED: Style(color="yellow"),
    Trust.BLACKLISTED: Style(color="red", bold=True),
    Trust.IGNORED: Style(dim=True),
    Trust.KEYS_CHANGED: Style(color="red", bold=True, reverse=True),
}


def _last_seen(info: DeviceInfo) -> str:
    parts = []
    if info.last_seen_ts:
        parts.append(datetime.fromtimestamp(info.last_seen_ts / 1000).strftime("%Y-%m-%d %H:%M"))
    if info.last_seen_ip:
        parts.append(info.last_seen_ip)
    return "  ".join(parts)


def _curve_line(device: DeviceInfo) -> SafeText:
    return safe_line(f"Curve25519 of {device.device_id}: {device.curve25519}")


def _signed_text(signed: bool | None) -> Text:
    if signed is None:
        return Text("—", style="dim")
    return Text("✓ yes", style="green") if signed else Text("✗ no", style="yellow")


class DevicesScreen(Screen[None]):
    DEFAULT_CSS = """
    DevicesScreen { layout: vertical; }
    DevicesScreen #devices-title { height: auto; padding: 0 1; background: $panel; }
    DevicesScreen #identity { height: auto; padding: 0 1; margin: 1 1 0 1; }
    DevicesScreen #dehydrated { height: auto; padding: 0 1; margin: 0 1; color: $text-muted; }
    DevicesScreen #this-device {
        height: auto; padding: 1 1; border: round $success; margin: 1 1 0 1;
    }
    DevicesScreen DataTable { height: 1fr; margin: 1 1; }
    DevicesScreen #devices-status { height: auto; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("v", "trust('verify')", "Verify"),
        Binding("e", "emoji", "QR/emoji verify"),
        Binding("u", "trust('unverify')", "Unverify"),
        Binding("b", "trust('blacklist')", "Blacklist"),
        Binding("n", "trust('unblacklist')", "Unblacklist"),
        Binding("i", "trust('ignore')", "Ignore"),
        Binding("a", "acknowledge", "Accept new identity", show=False),
        Binding("r", "refresh", "Refresh"),
        Binding("m", "manage_account", "Manage account"),
    ]

    def __init__(
        self, user_id: str, display_name: SafeText, service: MatrixService | None = None
    ) -> None:
        super().__init__()
        self.user_id = user_id
        self.display_name = display_name
        self.service = service
        self._devices: list[DeviceInfo] = []
        # What was loaded before the widgets existed: the answer
        # can come before the screen is mounted (no request to the server
        # when the keys are known), and is shown once it is.
        self._early_devices: Sequence[DeviceInfo] | None = None
        self._early_identity: IdentityState | None = None
        self._early_status: tuple[SafeText, bool] | None = None
        self._ready = False  # the widgets exist (from the start of `on_mount`)
        self._dehydrated_line: Text | None = None  # your own devices only (issue 26)

    def compose(self) -> ComposeResult:
        with Vertical():
            title = Text.assemble(("Devices of ", "bold"), (self.display_name, "bold"))
            title.append(f"  {safe_line(self.user_id)}", style="dim")
            yield Static(title, id="devices-title")
            yield Static(id="identity")
            yield Static(id="dehydrated")
            yield Static(Text("Loading…", style="dim"), id="this-device")
            yield DataTable(id="device-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="devices-status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(
            "Device", "Name", "Trust", "Signed by owner", "Session key (Ed25519)", "Last seen"
        )
        table.focus()
        self._ready = True
        if self._early_devices is not None:
            self.show_devices(self._early_devices)
        if self._early_identity is not None:
            self.show_identity(self._early_identity)
        if self._early_status is not None:
            self.show_status(self._early_status[0], error=self._early_status[1])
        self.query_one("#dehydrated", Static).display = self._dehydrated_line is not None
        if self._dehydrated_line is not None:
            self.query_one("#dehydrated", Static).update(self._dehydrated_line)
        self._early_devices = self._early_identity = self._early_status = None

    @property
    def _gone(self) -> bool:
        """Closed already (Escape while an answer was on its way): what comes
        now has nothing to fill."""
        return self._ready and not self.is_attached

    def show_identity(self, state: IdentityState) -> None:
        """The user's cross-signing identity: verified by you, not verified,
        changed since first seen (shown loudly), or none."""
        if self._gone:
            return
        if not self._ready:
            self._early_identity = state
            return
        texts = {
            IdentityState.VERIFIED: Text(
                "Identity: ✓ verified by you (their signed devices are trusted)", style="green"
            ),
            IdentityState.UNVERIFIED: Text(
                "Identity: not verified — press e on a device, or /verify the person, to verify it",
                style="yellow",
            ),
            IdentityState.CHANGED: Text(
                " ⚠ This person's identity CHANGED since you first saw it. "
                "Verify them again; press a to accept the new identity. ",
                style="bold reverse red",
            ),
            IdentityState.NONE: Text(
                "Identity: no cross-signing keys (devices must be verified one by one)", style="dim"
            ),
        }
        self.query_one("#identity", Static).update(texts.get(state, texts[IdentityState.NONE]))

    def show_dehydration(self, state: DehydrationState | Failed) -> None:
        """Whether your account has a dehydrated device (your own devices only)."""
        if isinstance(state, Failed):
            line = Text(safe_line(f"Dehydrated device: unknown ({state.message})"), style="red")
        else:
            line = Text(safe_line(state.line()))
        self._dehydrated_line = line
        if self._gone or not self._ready:
            return
        widget = self.query_one("#dehydrated", Static)
        widget.display = True
        widget.update(line)

    def show_devices(self, devices: Sequence[DeviceInfo]) -> None:
        if self._gone:
            return
        if not self._ready:
            self._early_devices = devices
            return
        self._devices = [d for d in devices if not d.this_device]
        this = next((d for d in devices if d.this_device), None)
        header = self.query_one("#this-device", Static)
        if this is not None:
            header.display = True
            header.update(
                Text.assemble(
                    ("This device: ", "bold"),
                    safe_line(this.device_id),
                    "\n",
                    ("Session key: ", "bold"),
                    (safe_line(this.fingerprint), "bold green"),
                    "\n",
                    ("Curve25519:  ", "dim"),
                    (safe_line(this.curve25519), "dim"),
                    "\nCompare the session key with what the other device shows.",
                )
            )
        else:
            header.display = False
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for device in self._devices:
            table.add_row(
                Text(safe_line(device.device_id)),
                Text(safe_line(device.display_name), style="italic"),
                Text(safe_line(device.trust.value), style=TRUST_STYLES[device.trust]),
                _signed_text(device.cross_signed),
                Text(safe_line(device.fingerprint)),
                Text(safe_line(_last_seen(device)), style="dim"),
                key=device.device_id,
            )
        if self._devices:
            table.move_cursor(row=min(cursor, len(self._devices) - 1))
        status = self.query_one("#devices-status", Static)
        if not self._devices:
            status.update(Text("No other devices.", style="italic"))
        else:
            selected = self.selected
            status.update(Text(_curve_line(selected)) if selected else Text(""))

    def show_status(self, text: SafeText, *, error: bool = False) -> None:
        if self._gone:
            return
        if not self._ready:
            self._early_status = (text, error)
            return
        self.query_one("#devices-status", Static).update(Text(text, style="red" if error else ""))

    @property
    def selected(self) -> DeviceInfo | None:
        table = self.query_one(DataTable)
        if not self._devices or table.cursor_row < 0:
            return None
        return self._devices[min(table.cursor_row, len(self._devices) - 1)]

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        selected = self.selected
        if selected is not None:
            self.show_status(_curve_line(selected))

    def action_trust(self, action: str) -> None:
        selected = self.selected
        if selected is None:
            return
        if action != "verify":
            self._set_trust(selected.device_id, action)
            return
        # Trust is not given by one stray key: verifying by hand means the
        # fingerprint was compared out of band, so ask.
        device_id = selected.device_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._set_trust(device_id, "verify")

        self.app.push_screen(
            ConfirmDialog(
                safe_line(f"Verify {device_id} of {self.display_name} by hand?"),
                safe_text(
                    "Only if its session key matches what that device shows, compared "
                    f"over a channel you trust:\n{selected.fingerprint}"
                ),
                yes="Verify",
            ),
            answered,
        )

    def action_emoji(self) -> None:
        selected, service = self.selected, self.service
        if selected is not None and service is not None:
            call = service.request_verification(self.user_id, selected.device_id)
            self.app.run_worker(call, group="verification", exit_on_error=False)

    def action_acknowledge(self) -> None:
        if self.service is not None:
            self.service.acknowledge_identity(self.user_id)

    def action_refresh(self) -> None:
        self.load(refresh=True)

    def action_manage_account(self) -> None:
        """Your account's page on the server: the selected session's page
        when one of your devices is selected, else the list of sessions."""
        service = self.service
        if service is None:
            return
        if self.user_id != service.user_id:
            self.show_status(trusted("Only your own account has a page to manage."), error=True)
            return
        from tuichat.ui.manage_account import open_account_page

        selected = self.selected
        action, device_id = ("device", selected.device_id) if selected else ("sessions", None)
        call = open_account_page(
            service, action, lambda text, error: self.show_status(text, error=error), device_id
        )
        self.app.run_worker(call, group="account", exit_on_error=False)

    # -- through the service ---------------------------------------------------------------
    # Workers of the App: their failures are reported with the others'.

    def load(self, *, refresh: bool = False) -> None:
        """Fill in the devices and the identity (`refresh`: ask the server
        again rather than use the keys known)."""
        if self.service is None:
            self.show_status(trusted("Not connected yet."), error=True)
            return
        self.app.run_worker(self._load(refresh), group="devices", exit_on_error=False)

    async def _load(self, refresh: bool) -> None:
        assert self.service is not None
        self.show_devices(await self.service.devices(self.user_id, refresh=refresh))
        self.show_identity(self.service.identity_state(self.user_id))
        if self.user_id == self.service.user_id:
            self.show_dehydration(await self.service.dehydration_state())

    def _set_trust(self, device_id: str, action: str) -> None:
        if self.service is None:
            return
        if not self.service.set_device_trust(self.user_id, device_id, action):
            self.show_status(safe_text(f"Unknown device {device_id}"), error=True)
