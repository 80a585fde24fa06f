"""Notifications through the screen (Pilot), against the real Synapse, with
Element's stack (the matrix-js-sdk peer) as Alice's other client and as
Bob: a room Element mutes is marked and stops ringing, `/notify` is read
by Element, Alt+A goes to the room with a mention, F9 lists mentions and
Enter jumps to one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.model.items import TimelineItem
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.mentions import MentionsScreen
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.status_line import Feedback
from tuichat.ui.widgets.timeline_view import TimelineView

pytestmark = requires_js_peer


def _row(rooms: RoomListView, name: str) -> str:
    return next((row for row in rooms.row_texts() if name in row), "")


def _mention(body: str, user_id: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.mentions": {"user_ids": [user_id]}}


async def test_room_settings_mentions_view_and_next_activity(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    element: JsPeer = await js_peer_factory(alice, "element")
    bob_js: JsPeer = await js_peer_factory(bob)
    quiet = await bob_js.create_room(invite=[alice.user_id], name="Quiet")
    busy = await bob_js.create_room(invite=[alice.user_id], name="Busy")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    rung: list[tuple[str, TimelineItem]] = []
    async with app.run_test(size=(120, 36)) as pilot:
        original = app.notifier.message

        def message(room: str, item: TimelineItem) -> bool:
            rung.append((room, item))
            return original(room, item)

        app.notifier.message = message  # type: ignore[method-assign]
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        for room_id in (quiet, busy):
            await wait_ui(pilot, lambda room_id=room_id: app.state.rooms.get(room_id), 30)
            await type_text(pilot, f"/join {room_id}")
            await wait_ui(pilot, lambda room_id=room_id: app.state.current_room_id == room_id, 30)
            await bob_js.wait_for_member(room_id, alice.user_id)
        rooms = app.query_one(RoomListView)
        feedback = app.query_one(Feedback)

        # Element mutes Quiet: tuichat marks it, and a mention there is silent.
        await element.set_room_notif_state(quiet, "mute")
        await wait_ui(pilot, lambda: "🔕" in _row(rooms, "Quiet"), 30)
        await bob_js.send_event(quiet, "m.room.message", _mention("Alice: hush", alice.user_id))
        await wait_ui(
            pilot, lambda: any(i.body == "Alice: hush" for i in app.state.timeline(quiet)), 30
        )
        await pilot.pause(0.2)
        assert not rung
        assert "!" not in _row(rooms, "Quiet") and "(1" not in _row(rooms, "Quiet")
        await pilot.press("alt+a")  # nothing worth going to: muted rooms do not count
        await wait_ui(pilot, lambda: "No other room" in feedback.text, 10)
        assert app.state.current_room_id == busy

        # /notify here: shown, then written as Element reads it.
        await type_text(pilot, "/notify")
        await wait_ui(pilot, lambda: "account's default" in feedback.text, 10)
        await type_text(pilot, "/notify mentions")
        assert await element.room_notif_state(busy, wait_for="mentions") == "mentions"
        await wait_ui(pilot, lambda: _row(rooms, "Busy").rstrip().endswith("@"), 30)

        # Unmuted by Element: a mention rings and counts; Alt+A goes there.
        await element.set_room_notif_state(quiet, "all")
        await wait_ui(pilot, lambda: "🔕" not in _row(rooms, "Quiet"), 30)
        await bob_js.send_event(quiet, "m.room.message", _mention("Alice: now", alice.user_id))
        await wait_ui(pilot, lambda: "(1!)" in _row(rooms, "Quiet"), 30)
        await wait_ui(pilot, lambda: any(i.body == "Alice: now" for _, i in rung), 10)
        assert all(i.body != "Alice: hush" for _, i in rung)
        await pilot.press("alt+a")
        await wait_ui(pilot, lambda: app.state.current_room_id == quiet, 10)
        await wait_ui(pilot, lambda: "(1!)" not in _row(rooms, "Quiet"), 10)

        # F9: the mention (not the muted one), Enter jumps to it.
        app.chat.switch_room(busy)
        await pilot.press("f9")
        screen = await wait_ui(
            pilot, lambda: app.screen if isinstance(app.screen, MentionsScreen) else None, 10
        )
        texts = [str(screen._found[i].item.body) for i in range(len(screen._found))]
        assert texts == ["Alice: now"]
        await pilot.press("enter")
        await wait_ui(pilot, lambda: app.state.current_room_id == quiet, 10)
        view = app.query_one(TimelineView)
        await wait_ui(
            pilot,
            lambda: view.selected_item is not None and view.selected_item.body == "Alice: now",
            10,
        )
