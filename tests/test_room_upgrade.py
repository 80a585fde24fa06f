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
from tuichat.ui.widgets.timeline_view import TimelineView


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
