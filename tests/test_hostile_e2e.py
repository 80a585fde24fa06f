"""Hostile strings sent through the real homeserver by a peer: what the
terminal would show holds no control sequence, markup stays literal, and
clicking it does nothing."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nio import ToDeviceMessage, ToDeviceResponse

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.verification import VerificationDialog
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.timeline_view import GUTTER, TimelineView

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
BODY = "[@click=app.quit]quit[/] \x1b[2J\x1b]52;c;ZXZpbA==\x07 \x1b]8;;https://evil\x1b\\x \u202egnp.exe"


async def test_hostile_names_and_bodies_reach_the_screen_defused(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice = new_user("alice", "Alice")
    mallory = new_user("mallory", "\x1b[31m[b]Mallory[/b]\u202e\x07")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(mallory)
    room_id = await peer.create_room(
        invite=[alice.user_id], encrypted=True, name="[@click=app.quit]\x1b]0;pwned\x07Room"
    )
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id))
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await peer.wait_for_member(room_id, alice.user_id)
        await peer.send_text(room_id, BODY)
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: any("quit[/]" in line for line in view.line_texts()))
        await pilot.pause()
        screen = app.export_screenshot()
        assert not FORBIDDEN.search(screen), FORBIDDEN.findall(screen)[:5]
        shown = "\n".join(view.line_texts())
        assert "[@click=app.quit]quit[/]" in shown  # literally
        assert "␛" in shown and "␇" in shown  # control characters made visible
        assert "[b]Mallory[/b]" in shown
        rooms = "\n".join(app.query_one(RoomListView).row_texts())
        assert "[@click=app.quit]" in rooms and "\x1b" not in rooms
        # Clicking the would-be action link does nothing.
        line = next(n for n, text in enumerate(view.line_texts()) if "quit[/]" in text)
        await pilot.click(TimelineView, offset=(GUTTER + 3, line - int(view.scroll_y) + 1))
        await pilot.pause()
        assert app.is_running


async def test_hostile_formatted_bodies_go_through_the_whitelist_on_screen(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, mallory = new_user("alice", "Alice"), new_user("mallory", "Mallory")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(mallory)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Links")
    html = (
        '<a href="https://evil.example/steal">https://bank.example/login</a> '
        '<a href="javascript:alert(1)">[@click=app.quit]run[/]</a> '
        "<script>document.write('x')</script><b>&#27;]8;;https://evil&#27;\\bold</b> "
        '<img src="https://tracker.example/p.png" alt="pic"> '
        + "<blockquote>" * 150
        + "deep"
        + "</blockquote>" * 150
    )
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(140, 30)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        await peer.send_event(
            room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "plain fallback",
                "format": "org.matrix.custom.html",
                "formatted_body": html,
            },
        )
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: any("bank.example" in line for line in view.line_texts()))
        await pilot.pause()
        screen = app.export_screenshot()
        assert not FORBIDDEN.search(screen), FORBIDDEN.findall(screen)[:5]
        shown = "\n".join(view.line_texts())
        # The link shows where it really goes; the javascript: one goes nowhere.
        assert "https://bank.example/login <https://evil.example/steal>" in shown
        assert "javascript" not in shown and "[@click=app.quit]run[/]" in shown
        assert "document.write" not in shown and "[image: pic]" in shown
        assert "tracker.example" not in shown
        # 150 nested quotes: drawn a few bars deep, the text still on screen.
        assert "deep" in screen
        line = next(n for n, text in enumerate(view.line_texts()) if "run[/]" in text)
        column = view.line_texts()[line].index("run[/]")
        await pilot.click(TimelineView, offset=(column, line - int(view.scroll_y) + 1))
        await pilot.pause()
        assert app.is_running


# -- the real terminal: tuichat in a pseudo-terminal ------------------------------------

# One hostile string, after a tag naming the field it is put in: an OSC 52
# clipboard write, an OSC 8 link, an OSC 0 title, a CSI that asks the
# terminal to type its title back (never one of Textual's), the C1 form of
# CSI, and a bidi override.
HOSTILE_SEQUENCES = (
    "\x1b]52;c;SEVDSU9VUw==\x07"
    "\x1b]8;;evil.example\x1b\\L\x1b]8;;\x1b\\"
    "\x1b]0;PWNED\x07"
    "\x1b[21t"
    "\x9b21t"
    "\u202eR"
)
# What Textual itself writes: CSI sequences (cursor, colours, modes, queries),
# a few two-character ESC sequences, and OSC 22 (the mouse pointer's shape).
OWN_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
OWN_ESC = re.compile(r"\x1b[78=>]")
OWN_OSC = re.compile(r"\x1b\]22;[a-z-]*(?:\x07|\x1b\\)")
C1_AND_BIDI = re.compile("[\x80-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\udc80-\udcff]")


def hostile(tag: str) -> str:
    return f"{tag}{HOSTILE_SEQUENCES}"


class PtyTerminal:
    """A pseudo-terminal whose output is read (all of it) by a thread."""

    def __init__(self, rows: int, columns: int) -> None:
        import fcntl
        import os
        import struct
        import termios
        import threading

        self.master, self.slave = os.openpty()
        size = struct.pack("HHHH", rows, columns, 0, 0)
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, size)
        self.output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        import os

        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return  # the child closed its side
            if not chunk:
                return
            with self._lock:
                self.output += chunk

    def text(self) -> str:
        with self._lock:
            return bytes(self.output).decode("utf-8", "surrogateescape")

    def shown(self) -> str:
        """What reached the screen as text, Textual's own sequences taken out."""
        return OWN_ESC.sub("", OWN_CSI.sub("", OWN_OSC.sub("", self.text())))

    def type(self, keys: str) -> None:
        import os

        os.write(self.master, keys.encode("utf-8"))

    async def wait_for(self, marker: str, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while marker not in self.shown():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"{marker!r} never reached the terminal; its last output: "
                    f"{self.shown()[-3000:]!r}"
                )
            await asyncio.sleep(0.1)

    def close(self) -> None:
        import os

        for fd in (self.slave, self.master):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reader.join(5)


async def test_no_hostile_sequence_from_any_remote_field_reaches_the_terminal(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    peer_factory: Callable[..., Any],
) -> None:
    """The real `tuichat` in a pseudo-terminal, a real Synapse behind a proxy
    that can answer with a hostile error text, and a nio peer putting one
    hostile string in every remote field tuichat shows. The raw bytes
    written to the terminal hold no escape sequence but Textual's own CSI
    ones, no C1 control and no bidi control; every field was drawn (its tag
    is on the screen, its sequences made visible)."""
    import os
    import signal
    import sys

    from nio import AsyncClient, AsyncClientConfig, ErrorResponse, LoginResponse

    from tests.fault_proxy import FaultProxy
    from tuichat.matrix.account.login import login

    alice = new_user("alice", "Alice")
    mallory = new_user("mallory", hostile("NICK"))
    proxy = FaultProxy(synapse.url)
    proxy_url = await proxy.start()
    profile_dir = tmp_path / "profile"
    await login(
        Profile(profile_dir),
        homeserver=proxy_url,
        user=alice.user_id,
        password=alice.password,
        device_name="tuichat-pty",
    )
    peer: NioPeer = await peer_factory(mallory)
    client = peer.client
    # A second device of Mallory's with a hostile id and name, keys uploaded.
    device = AsyncClient(
        synapse.url,
        mallory.user_id,
        device_id=hostile("DEVID"),
        store_path=str(tmp_path / "device"),
        config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
    )
    (tmp_path / "device").mkdir()
    assert isinstance(await device.login(mallory.password, hostile("DEVNAME")), LoginResponse)
    await device.keys_upload()
    await device.close()

    # An invite to a room known by its alias only.
    alias_room = await peer.create_room(encrypted=False)
    # Unique per run: the test runs once per sync mode on one Synapse.
    alias = f"#{hostile('ALIAS')}{uuid.uuid4().hex[:6]}:{synapse.server_name}"
    answers = [
        await client.room_put_alias(alias, alias_room),
        await client.room_put_state(alias_room, "m.room.canonical_alias", {"alias": alias}),
    ]
    assert not any(isinstance(answer, ErrorResponse) for answer in answers), [
        getattr(a, "message", a) for a in answers
    ]
    await client.room_invite(alias_room, alice.user_id)
    # The room alice joins: name, topic, a member known by its state key.
    room_id = await peer.create_room(
        invite=[alice.user_id], encrypted=False, name=hostile("ROOMNAME")
    )
    await client.room_put_state(room_id, "m.room.topic", {"topic": hostile("TOPIC")})
    await client.room_invite(room_id, f"@{hostile('STATEKEY')}:{synapse.server_name}")
    body_id = await peer.send_text(room_id, hostile("BODY"))
    await peer.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "html",
            "format": "org.matrix.custom.html",
            "formatted_body": f"<b>{hostile('HTML')}</b> <code>{hostile('CODE')}</code>",
        },
    )
    await peer.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": hostile("FILE"),
            "filename": hostile("FILE"),
            "url": f"mxc://{synapse.server_name}/nothing",
            "info": {"mimetype": hostile("MIME"), "size": 3},
        },
    )
    await peer.send_event(
        room_id,
        "m.reaction",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": body_id, "key": hostile("RK")}},
    )

    config = tmp_path / "config.toml"
    # No bell of tuichat's own (a two-person room rings under the default push
    # rules): any BEL in the output then came from remote text.
    config.write_text("previews = false\n[notifications]\nbell = false\n", encoding="utf-8")
    environment = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "TUICHAT_CONFIG": str(config),
        "HOME": str(tmp_path),
    }
    terminal = PtyTerminal(rows=50, columns=320)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tuichat",
        "--profile",
        str(profile_dir),
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=terminal.slave,
        env=environment,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        await terminal.wait_for("Invites")
        await terminal.wait_for("ALIAS")  # an invite's name: its alias
        terminal.type(f"/join {room_id}\r")
        await peer.wait_for_member(room_id, alice.user_id, timeout=60)
        for tag in ("ROOMNAME", "TOPIC", "BODY", "HTML", "CODE", "FILE", "RK", "STATEKEY"):
            await terminal.wait_for(tag)
        await terminal.wait_for("NICK")  # the sender's name
        await client.room_typing(room_id, True, timeout=30_000)
        await terminal.wait_for("is typing")
        terminal.type("\x1bOQ")  # F2: the members
        await terminal.wait_for("Members of")
        await asyncio.sleep(0.5)
        terminal.type("\x1b")
        await asyncio.sleep(0.5)
        terminal.type(f"/devices {mallory.user_id}\r")
        await terminal.wait_for("DEVID")
        await terminal.wait_for("DEVNAME")
        terminal.type("\x1b")
        await asyncio.sleep(0.5)
        # Server error text: a refused join (feedback line), a failed sync
        # (status line).
        proxy.fail("/join", 1, status=403, error=hostile("JOINERR"))
        terminal.type(f"/join #nowhere:{synapse.server_name}\r")
        await terminal.wait_for("JOINERR")
        proxy.fail("/sync", 1, status=502, error=hostile("SYNCERR"))
        await peer.send_text(room_id, "wake the sync")
        await terminal.wait_for("SYNCERR")
        terminal.type("\x11")  # Ctrl+Q
        await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)
        terminal.close()
        await proxy.close()

    raw = OWN_OSC.sub("", terminal.text())
    shown = terminal.shown()
    leaks = [raw[max(0, m.start() - 30) : m.start() + 10] for m in re.finditer("\x1b\\]", raw)]
    assert not leaks, f"OSC sequences reached the terminal, after: {leaks[:5]}"
    assert "\x1b[21t" not in raw, "the hostile CSI reached the terminal"
    assert "\x1b" not in shown, repr(shown[shown.index("\x1b") - 40 :][:80])
    assert "\x07" not in raw, "a bell (an OSC terminator) reached the terminal"
    assert not C1_AND_BIDI.search(raw), C1_AND_BIDI.findall(raw)[:5]
    # Drawn, made visible: the sequences as control pictures.
    assert shown.count("␛]52;c;") >= 10


OSC_DEVICE = "DEV\x1b]52;c;ZXZpbA==\x07\x1b]0;pwned\x07"
OSC_REASON = "\x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x07 go away"


async def _send_verification(
    peer: NioPeer, event_type: str, recipient: str, device_id: str, content: dict[str, Any]
) -> None:
    """A verification message as a hostile client would send it: plaintext
    to-device, any field it likes."""
    response = await peer.client.to_device(
        ToDeviceMessage(event_type, recipient, device_id, content)
    )
    assert isinstance(response, ToDeviceResponse), response


def _request_content(txn: str) -> dict[str, Any]:
    return {
        "transaction_id": txn,
        "from_device": OSC_DEVICE,
        "methods": ["m.sas.v1"],
        "timestamp": int(time.time() * 1000),
    }


def _state_text(dialog: Any) -> str:
    """The dialog's state line; empty while the dialog, already the screen,
    is still composing its widgets."""
    from textual.css.query import NoMatches

    try:
        return str(dialog.query_one("#state").render())
    except NoMatches:
        return ""


async def test_hostile_verification_request_and_cancel_reach_the_dialog_defused(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """Someone in a room with us asks to verify: the dialog opens, and their
    `from_device`, their name and the reason they cancel with are drawn with
    every control character made visible (no OSC 52 clipboard write, no OSC 0
    window title reaches the terminal)."""
    alice = new_user("alice", "Alice")
    mallory = new_user("mallory", "\x1b]0;title\x07Mallory")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(mallory)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Shared")
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(140, 30)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        assert app.service is not None
        device_id = app.service.session.device_id
        txn = uuid.uuid4().hex
        await _send_verification(
            peer, "m.key.verification.request", alice.user_id, device_id, _request_content(txn)
        )
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 30
        )
        await wait_ui(pilot, lambda: "wants to verify" in _state_text(dialog))
        shown = _state_text(dialog)
        assert not FORBIDDEN.search(shown), shown
        assert "DEV␛]52;c;ZXZpbA==␇" in shown and "␛]0;title␇Mallory" in shown
        await _send_verification(
            peer,
            "m.key.verification.cancel",
            alice.user_id,
            device_id,
            {"transaction_id": txn, "code": "\x1b]0;code\x07", "reason": OSC_REASON},
        )
        await wait_ui(pilot, lambda: "cancelled" in _state_text(dialog), 30)
        shown = _state_text(dialog)
        assert not FORBIDDEN.search(shown), shown
        assert "␛]52;c;ZXZpbA==␇" in shown
        screen = app.export_screenshot()
        assert not FORBIDDEN.search(screen), FORBIDDEN.findall(screen)[:5]


@pytest.mark.parametrize("who", ["stranger", "stranger_starting_at_once", "blacklisted_device"])
async def test_unsolicited_verification_request_is_a_notice_not_a_dialog(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    who: str,
) -> None:
    """A request from someone we share no room with (also in the older flow
    that opens with `start`), or from a device we blacklisted, opens nothing
    by itself: a notice says it is there, and /verifications opens it."""
    alice, mallory = new_user("alice", "Alice"), new_user("mallory", "Mallory")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(mallory)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        service = app.service
        assert service is not None and service.crypto is not None
        content = _request_content(uuid.uuid4().hex)
        if who == "blacklisted_device":
            room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
            await join_in_ui(pilot, app, peer, room_id, alice.user_id)
            await service.devices(mallory.user_id, refresh=True)
            assert service.set_device_trust(mallory.user_id, peer.client.device_id, "blacklist")
            content["from_device"] = peer.client.device_id
        txn = content["transaction_id"]
        event_type = "m.key.verification.request"
        if who == "stranger_starting_at_once":
            event_type = "m.key.verification.start"
            content = {
                "transaction_id": txn,
                "from_device": peer.client.device_id,
                "method": "m.sas.v1",
                "key_agreement_protocols": ["curve25519-hkdf-sha256"],
                "hashes": ["sha256"],
                "message_authentication_codes": ["hkdf-hmac-sha256.v2"],
                "short_authentication_string": ["emoji", "decimal"],
            }
        await _send_verification(
            peer, event_type, alice.user_id, service.session.device_id, content
        )
        verifications = service.crypto.verifications
        await wait_ui(pilot, lambda: verifications.get(txn) is not None, 30)
        await pilot.pause(1.0)
        assert not any(isinstance(s, VerificationDialog) for s in app.screen_stack)
        notice = str(app.main.feedback.render())
        assert "/verifications" in notice, notice
        assert ("Mallory" if who == "blacklisted_device" else mallory.user_id) in notice
        assert not FORBIDDEN.search(notice), notice

        await type_text(pilot, "/verifications")
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 10
        )
        assert dialog.transaction_id == txn
        shown = _state_text(dialog)
        assert not FORBIDDEN.search(shown), shown
        if who == "stranger_starting_at_once":
            assert "Exchanging keys" in shown, shown
            return
        assert "wants to verify" in shown, shown
        await pilot.click("#decline")
        await wait_ui(pilot, lambda: "You cancelled" in _state_text(dialog), 30)


async def test_a_flood_of_verification_requests_from_a_stranger_is_one_notice(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """Anyone can send requests: a flood gives one toast, a count in the
    feedback line, and at most MAX_PENDING_VERIFICATIONS kept to open."""
    from tuichat.ui.controllers.people import MAX_PENDING_VERIFICATIONS

    alice, mallory = new_user("alice", "Alice"), new_user("mallory", "Mallory")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(mallory)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(140, 30), notifications=True) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        assert app.service is not None and app.service.crypto is not None
        flood = MAX_PENDING_VERIFICATIONS + 5
        txns = [uuid.uuid4().hex for _ in range(flood)]
        for txn in txns:
            await _send_verification(
                peer,
                "m.key.verification.request",
                alice.user_id,
                app.service.session.device_id,
                _request_content(txn),
            )
        verifications = app.service.crypto.verifications
        await wait_ui(pilot, lambda: all(verifications.get(t) for t in txns), 30)
        await pilot.pause(0.5)
        assert not any(isinstance(s, VerificationDialog) for s in app.screen_stack)
        assert list(app.people.pending_verifications) == txns[-MAX_PENDING_VERIFICATIONS:]
        assert len(app.screen.query("Toast")) == 1
        notice = str(app.main.feedback.render())
        assert f"{MAX_PENDING_VERIFICATIONS} verification requests are waiting" in notice
