"""A room upgrade followed across, through the screen against Synapse: the
tombstone says the room was replaced and Enter on it joins the successor;
the old room leaves the list; the new room's first line leads back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.model.rooms import Membership
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.timeline_view import HistoryState, TimelineView


async def test_a_tombstone_leads_to_the_successor_and_the_successor_back(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    old = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Old hall")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await join_in_ui(pilot, app, peer, old, alice.user_id)
        status, body = synapse._request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(old)}/upgrade",
            {"new_version": "10"},
            token=bob.access_token,
        )
        assert status == 200, body
        new = body["replacement_room"]
        # An invite-only room stays so: Element invites the members across.
        await peer.client.room_invite(new, alice.user_id)
        view = app.query_one(TimelineView)
        await wait_ui(
            pilot, lambda: any("This room has been replaced" in line for line in view.line_texts())
        )
        await pilot.press("ctrl+s")
        await wait_ui(pilot, lambda: view.selected_item is not None)
        assert view.selected_item is not None and view.selected_item.link_room == new
        await pilot.press("enter")
        await wait_ui(
            pilot, lambda: (r := app.state.rooms.get(new)) and r.membership is Membership.JOIN
        )
        await wait_ui(pilot, lambda: app.state.current_room_id == new)
        rooms = app.query_one(RoomListView)
        await wait_ui(pilot, lambda: old not in rooms.room_ids)
        await wait_ui(
            pilot, lambda: any("It continues the room" in line for line in view.line_texts())
        )
        create = next(i for i in app.state.timelines[new] if i.link_room == old)
        assert create.link_room == old


async def test_scrolling_back_in_the_successor_continues_into_the_old_rooms_history(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    old = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Old hall")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await join_in_ui(pilot, app, peer, old, alice.user_id)
        view = app.query_one(TimelineView)

        def shown(text: str) -> bool:
            return any(text in line for line in view.line_texts())

        for n in range(1, 4):
            await peer.send_text(old, f"old message {n}")
        await wait_ui(pilot, lambda: shown("old message 3"))
        status, body = synapse._request(
            "POST",
            f"/_matrix/client/v3/rooms/{quote(old)}/upgrade",
            {"new_version": "10"},
            token=bob.access_token,
        )
        assert status == 200, body
        new = body["replacement_room"]
        await peer.client.room_invite(new, alice.user_id)
        await wait_ui(pilot, lambda: shown("This room has been replaced"))
        await pilot.press("ctrl+s")
        await wait_ui(pilot, lambda: view.selected_item is not None)
        await pilot.press("enter")
        await wait_ui(pilot, lambda: app.state.current_room_id == new)
        await peer.send_text(new, "first in the new room")
        await wait_ui(pilot, lambda: shown("first in the new room"))

        # At the top of the new room, older history is the old room's.
        for _ in range(100):
            if view.history is HistoryState.START:
                break
            view.focus()
            await pilot.press("home")
            await pilot.pause(0.1)
        assert view.history is HistoryState.START
        items = list(app.state.timelines[new])
        olds = [i for i in items if i.body.startswith("old message")]
        assert [i.body for i in olds] == ["old message 1", "old message 2", "old message 3"]
        assert all(i.encrypted for i in olds)
        keys = [i.key for i in items]
        divider = keys.index(f"upgrade:{old}")
        created = next(n for n, i in enumerate(items) if "It continues the room" in i.body)
        assert keys.index(olds[-1].key) < divider < created
        assert not any("This room has been replaced" in i.body for i in items)
        # On the screen, from the top down: the old room's messages, the
        # divider, then the new room's creation.
        view.focus()
        await pilot.press("home")
        seen: list[str] = []
        for _ in range(40):
            seen += [t for t in view.line_texts() if t not in seen[-60:]]
            await pilot.press("pagedown")
            await pilot.pause()
        first = next(n for n, t in enumerate(seen) if "old message 1" in t)
        line = next(n for n, t in enumerate(seen) if "Earlier messages in the previous room" in t)
        after = next(n for n, t in enumerate(seen) if "It continues the room" in t)
        assert first < line < after
