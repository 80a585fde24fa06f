"""Hostile strings sent through the real homeserver by a peer: what the
terminal would show holds no control sequence, markup stays literal, and
clicking it does nothing."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from nio import ToDeviceMessage, ToDeviceResponse

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.session import Profile
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.verification import VerificationDialog
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.timeline_view import GUTTER, TimelineView

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
        await wait_ui(pilot, lambda: app.rooms.get(room_id))
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.current_room_id == room_id)
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
    return str(dialog.query_one("#state").render())


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
    from tuichat.ui.app import MAX_PENDING_VERIFICATIONS

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
        assert list(app.pending_verifications) == txns[-MAX_PENDING_VERIFICATIONS:]
        assert len(app.screen.query("Toast")) == 1
        notice = str(app.main.feedback.render())
        assert f"{MAX_PENDING_VERIFICATIONS} verification requests are waiting" in notice
