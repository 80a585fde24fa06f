"""The timeline keeps the newest message in view for a reader at the bottom,
whatever changes height, and leaves a reader who scrolled up where they are,
with a "↓ N new messages" line and End to jump back. Driven through the
whole app against the real Synapse and a nio peer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer, wait_until
from tests.test_attachments import png
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.status_line import Feedback
from tuichat.ui.widgets.timeline_view import TimelineView

HISTORY = 30  # more messages than fit on the screens used here


def on_screen(view: TimelineView) -> list[str]:
    """The timeline's rows as they are drawn now."""
    return [view.render_line(y).text.rstrip() for y in range(view.scrollable_content_region.height)]


def newest_line(view: TimelineView) -> str:
    return next(line.rstrip() for line in reversed(view.line_texts()) if line.strip())


def newest_in_view(view: TimelineView) -> bool:
    """The last line of the newest message is on the bottom row."""
    rows = [row for row in on_screen(view) if row]
    return bool(rows) and rows[-1] == newest_line(view)


async def room_with_history(
    pilot: Pilot[Any], app: TuichatApp, peer: NioPeer, alice_id: str, name: str
) -> str:
    """A room Bob fills with more messages than the screen holds, open."""
    room_id = await peer.create_room(invite=[alice_id], encrypted=True, name=name)
    await join_in_ui(pilot, app, peer, room_id, alice_id)
    for number in range(HISTORY):
        await peer.send_text(room_id, f"{name} line {number}")
    last = f"{name} line {HISTORY - 1}"
    await wait_ui(
        pilot, lambda: any(item.body == last for item in app.state.timelines[room_id]), 30
    )
    return room_id


async def start(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> tuple[TuichatApp, NioPeer, str]:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    return TuichatApp(profile, sync_timeout_ms=1000), peer, alice.user_id


async def settled_at_bottom(pilot: Pilot[Any], view: TimelineView) -> None:
    await wait_ui(pilot, lambda: newest_in_view(view), 5)
    assert round(view.scroll_y) == view.max_scroll_y


async def test_a_feedback_line_appearing_keeps_the_newest_message_in_view(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    app, peer, alice_id = await start(synapse, new_user, profile, peer_factory)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await room_with_history(pilot, app, peer, alice_id, "Chat")
        view = app.query_one(TimelineView)
        await settled_at_bottom(pilot, view)
        height = view.size.height
        # An error under the timeline takes a line (or three) from it.
        await type_text(pilot, "/nonsense " + "word " * 40)
        await wait_ui(pilot, lambda: app.query_one(Feedback).has_class("-visible"))
        await wait_ui(pilot, lambda: view.size.height < height)
        await settled_at_bottom(pilot, view)


async def test_resizing_the_terminal_keeps_the_newest_message_in_view(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    app, peer, alice_id = await start(synapse, new_user, profile, peer_factory)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await room_with_history(pilot, app, peer, alice_id, "Chat")
        view = app.query_one(TimelineView)
        await settled_at_bottom(pilot, view)
        for size in ((100, 18), (70, 18), (120, 26)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await settled_at_bottom(pilot, view)


async def test_switching_rooms_and_back_shows_the_newest_messages(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """A room shown again is drawn anew: its image previews fill in after
    its end was put in view, and the end must stay in view."""
    app, peer, alice_id = await start(synapse, new_user, profile, peer_factory)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        first = await room_with_history(pilot, app, peer, alice_id, "First")
        view = app.query_one(TimelineView)
        image = tmp_path / "photo.png"
        image.write_bytes(png(120, 80))
        await type_text(pilot, f"/upload {image}")
        await wait_ui(pilot, lambda: "▄" in newest_line(view) or "▀" in newest_line(view), 30)
        await peer.send_text(first, "First after the photo")
        await wait_ui(pilot, lambda: "First after the photo" in newest_line(view), 30)
        second = await room_with_history(pilot, app, peer, alice_id, "Second")
        await settled_at_bottom(pilot, view)
        for room_id, newest in ((first, "First after"), (second, "Second line 29")) * 2:
            while app.state.current_room_id != room_id:
                await pilot.press("alt+down")
            await pilot.pause()
            await settled_at_bottom(pilot, view)
            assert newest in newest_line(view)


async def test_an_image_preview_loading_keeps_the_newest_message_in_view(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    app, peer, alice_id = await start(synapse, new_user, profile, peer_factory)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        room_id = await room_with_history(pilot, app, peer, alice_id, "Chat")
        view = app.query_one(TimelineView)
        await settled_at_bottom(pilot, view)
        image = tmp_path / "chart.png"
        image.write_bytes(png(120, 80))
        await type_text(pilot, f"/upload {image}")
        await wait_until(
            lambda: peer.find_event(
                room_id, lambda e: e.get("content", {}).get("body") == "chart.png"
            ),
            30,
        )
        # The preview (half blocks, several lines) fills in under the image.
        await wait_ui(pilot, lambda: "▄" in newest_line(view) or "▀" in newest_line(view), 30)
        await settled_at_bottom(pilot, view)


async def test_new_messages_while_scrolled_up_are_counted_and_end_jumps_to_them(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    app, peer, alice_id = await start(synapse, new_user, profile, peer_factory)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        room_id = await room_with_history(pilot, app, peer, alice_id, "Chat")
        view = app.query_one(TimelineView)
        await settled_at_bottom(pilot, view)
        composer = app.query_one(Composer)
        composer.focus()

        # PageUp in the composer scrolls the timeline; what the reader looks
        # at stays put while messages arrive.
        await pilot.press("pageup")
        await wait_ui(pilot, lambda: round(view.scroll_y) < view.max_scroll_y)
        top = view.scroll_y
        await peer.send_text(room_id, "news 1")
        await peer.send_text(room_id, "news 2")
        await wait_ui(pilot, lambda: "↓ 2 new messages" in on_screen(view)[-1], 30)
        assert view.scroll_y == top and not newest_in_view(view)
        assert "↓ 2 new messages" in on_screen(view)[-1]

        # End (the composer is empty) jumps to the latest.
        await pilot.press("end")
        await settled_at_bottom(pilot, view)
        assert "news 2" in newest_line(view)
        assert not any("new messages" in row for row in on_screen(view))

        # Scrolled up again, Ctrl+End jumps too; scrolling back down to the
        # bottom by hand follows again.
        await pilot.press("pageup")
        await wait_ui(pilot, lambda: round(view.scroll_y) < view.max_scroll_y)
        await peer.send_text(room_id, "news 3")
        await wait_ui(pilot, lambda: "↓ 1 new message " in on_screen(view)[-1], 30)
        await pilot.press("ctrl+end")
        await settled_at_bottom(pilot, view)
        await pilot.press("pageup")
        await wait_ui(pilot, lambda: round(view.scroll_y) < view.max_scroll_y)
        await pilot.press("pagedown", "pagedown", "pagedown")
        await wait_ui(pilot, lambda: round(view.scroll_y) == view.max_scroll_y)
        await peer.send_text(room_id, "news 4")
        await wait_ui(pilot, lambda: "news 4" in newest_line(view), 30)
        await settled_at_bottom(pilot, view)

        # Sending while scrolled up shows what was sent.
        await pilot.press("pageup")
        await wait_ui(pilot, lambda: round(view.scroll_y) < view.max_scroll_y)
        await type_text(pilot, "my answer")
        await wait_ui(pilot, lambda: "my answer" in newest_line(view), 30)
        await settled_at_bottom(pilot, view)


async def test_page_up_and_page_down_in_the_composer_scroll_the_timeline(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    app, peer, alice_id = await start(synapse, new_user, profile, peer_factory)
    async with app.run_test(size=(100, 24)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await room_with_history(pilot, app, peer, alice_id, "Chat")
        view = app.query_one(TimelineView)
        await settled_at_bottom(pilot, view)
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press("h", "i")
        # About a page at a time (items measured on the way may move the
        # position by a line or two).
        positions = [view.scroll_y]
        page = view.scrollable_content_region.height
        for key in ("pageup", "pageup", "pagedown"):
            await pilot.press(key)
            await wait_ui(pilot, lambda: view.scroll_y != positions[-1])
            positions.append(view.scroll_y)
            # A page, or what was left of one before the top.
            assert abs(positions[-1] - positions[-2]) >= min(page - 3, positions[-2])
        assert positions[0] > positions[1] > positions[2] < positions[3]
        await pilot.press("pagedown")
        await settled_at_bottom(pilot, view)
        # The composer kept the focus and what was typed.
        assert app.focused is composer and composer.text == "hi"
