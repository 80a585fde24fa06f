"""Hostile strings sent through the real homeserver by a peer: what the
terminal would show holds no control sequence, markup stays literal, and
clicking it does nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.session import Profile
from tuichat.ui.app import TuichatApp
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
