"""The TUI driven with Pilot against the real Synapse and a nio peer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from tests.conftest import UserFactory, log_in
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.model.items import SendState
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.status_line import Feedback
from tuichat.ui.widgets.timeline_view import TimelineView


async def wait_ui(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 20.0) -> Any:
    """Let the app run until `predicate` holds."""

    async def check() -> object:
        return predicate()

    deadline = 0.0
    while deadline < timeout:
        value = await check()
        if value:
            return value
        await pilot.pause(0.05)
        deadline += 0.05
    raise TimeoutError("UI condition not met")


def record_views(view: TimelineView) -> list[list[str]]:
    """Record the timeline's text after every change the app applies."""
    snapshots: list[list[str]] = []
    original = view.apply_change

    def apply_change(change: Any) -> None:
        original(change)
        snapshots.append(view.line_texts())

    view.apply_change = apply_change  # type: ignore[method-assign]
    return snapshots


async def join_in_ui(
    pilot: Pilot[Any], app: Any, peer: Any, room_id: str, user_id: str, timeout: float = 20.0
) -> None:
    """Join `room_id` (an invite from `peer`) with /join, and wait until the
    peer (nio or js) sees `user_id` in it."""
    await wait_ui(pilot, lambda: app.state.rooms.get(room_id), timeout)
    await type_text(pilot, f"/join {room_id}")
    await wait_ui(pilot, lambda: app.state.current_room_id == room_id, timeout)
    await peer.wait_for_member(room_id, user_id)


async def type_text(pilot: Pilot[Any], text: str) -> None:
    composer = pilot.app.query_one(Composer)
    composer.focus()
    composer.insert(text)
    await pilot.press("enter")


async def test_message_is_echoed_then_confirmed_and_encrypted_reply_appears(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Secret plans")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id))
        rooms = app.query_one(RoomListView)
        await wait_ui(pilot, lambda: rooms.row_texts() and "Invites" in rooms.row_texts()[0])

        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await peer.wait_for_member(room_id, alice.user_id)

        view = app.query_one(TimelineView)
        snapshots = record_views(view)
        await type_text(pilot, "hello bob")
        await wait_ui(
            pilot,
            lambda: any(
                e.body == "hello bob" and e.send_state is SendState.SENT
                for e in app.state.timelines[room_id]
            ),
        )
        echoed = [s for s in snapshots if any("hello bob  (sending…)" in line for line in s)]
        assert echoed, "the local echo was never shown as pending"
        assert any("hello bob" in line and "sending" not in line for line in view.line_texts())
        assert await peer.wait_for_text(room_id, "hello bob") == alice.user_id

        await peer.send_text(room_id, "hi alice, this is encrypted")
        await wait_ui(
            pilot,
            lambda: any("hi alice, this is encrypted" in line for line in view.line_texts()),
        )
        reply = next(
            i for i in app.state.timelines[room_id] if i.body == "hi alice, this is encrypted"
        )
        assert reply.encrypted and reply.sender_name == "Bob"
        line = next(line for line in view.line_texts() if "hi alice" in line)
        # Encrypted, from a device nobody verified: the marker says so.
        assert reply.trust == "unverified"
        assert "⚠" in line and "Bob" in line


async def test_unknown_command_shows_an_error_line(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    await log_in(synapse, profile, new_user("carol"))
    app = TuichatApp(profile, connect=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await type_text(pilot, "/frobnicate now")
        await pilot.pause()
        feedback = app.query_one(Feedback)
        assert feedback.has_class("-visible") and feedback.has_class("-error")
        assert "Unknown command /frobnicate" in str(feedback.render())
        await type_text(pilot, "/help")
        await pilot.pause()
        from tests.test_keys import shown_text
        from tuichat.ui.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)  # every command, scrollable
        assert "/join" in shown_text(app.screen.query_one("#help-text", Static), 100)


async def test_composer_keys(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    await log_in(synapse, profile, new_user("dave"))
    app = TuichatApp(profile, connect=False)
    messages: list[Any] = []
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press("a", "alt+enter", "b", "ctrl+j", "c")
        assert composer.text == "a\nb\nc"
        await pilot.press("enter")
        await pilot.pause()
        # A bubbling message is seen once per node it passes: count it once.
        sent = list({id(m): m.text for m in messages if isinstance(m, Composer.Submitted)}.values())
        assert sent == ["a\nb\nc"] and composer.text == ""
        # Up on an empty composer edits your last message in the room shown
        # (none here): it never brings back text to be sent a second time.
        await pilot.press("up")
        await pilot.pause()
        assert composer.text == "" and app.state.draft is None
        await pilot.press("x", "alt+enter", "y", "up")
        assert composer.text == "x\ny" and composer.cursor_location == (0, 1)


async def test_restart_shows_cached_rooms_and_messages_before_the_first_sync(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    monkeypatch: Any,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Cached room")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id))
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await peer.wait_for_member(room_id, alice.user_id)
        await peer.send_text(room_id, "a secret worth caching")
        await wait_ui(
            pilot,
            lambda: any(i.body == "a secret worth caching" for i in app.state.timelines[room_id]),
        )

    # No plaintext on disk: the cache holds the ciphertext as it came.
    cache_bytes = b"".join(
        p.read_bytes() for p in profile.root.iterdir() if p.name.startswith("cache.sqlite3")
    )
    assert b"Cached room" in cache_bytes  # state is plaintext on the server too
    assert b"a secret worth caching" not in cache_bytes

    # The next start never gets an answer to its first sync.
    from tuichat.matrix.service.sync_loop import SyncLoop

    blocked = asyncio.Event()
    sync_started = asyncio.Event()

    async def never_returns(self: SyncLoop, timeout_ms: int) -> dict[str, Any]:
        sync_started.set()
        await blocked.wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(SyncLoop, "_sync_request", never_returns)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        # Painted from the cache at once, before the crypto store is even open.
        assert app.state.current_room_id == room_id
        assert app.state.rooms.get(room_id).name == "Cached room"  # type: ignore[union-attr]
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: sync_started.is_set())
        await wait_ui(
            pilot, lambda: any("a secret worth caching" in line for line in view.line_texts())
        )
        assert app.state.connection is ConnectionState.SYNCING  # the first sync is still pending
        assert "Cached room" in app.query_one(RoomListView).row_texts()[0]
