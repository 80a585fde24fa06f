"""Spaces with Element's stack, through the screen: the matrix-js-sdk peer
builds a space with a nested space and rooms; tuichat shows the tree, rolls
unread counts up into a collapsed space, browses the hierarchy and joins a
room from it through the servers the space names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import OptionList

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.model.rooms import Membership
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.space_browser import SpaceBrowser
from tuichat.ui.widgets.room_list import RoomListView

pytestmark = requires_js_peer


async def _build_space(js: JsPeer) -> dict[str, str]:
    club = await js.create_space("Club")
    teams = await js.create_space("Teams")
    general = await js.create_room([], encrypted=False, name="General", preset="public_chat")
    dev = await js.create_room([], encrypted=False, name="Dev", preset="public_chat")
    await js.add_space_child(club, general, order="b")
    await js.add_space_child(club, teams, order="a")
    await js.add_space_child(teams, dev, suggested=True)
    return {"club": club, "teams": teams, "general": general, "dev": dev}


async def test_the_space_tree_roll_up_and_joining_through_the_hierarchy_browser(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    ids = await _build_space(js)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        for key in ("club", "teams", "general"):
            await type_text(pilot, f"/join {ids[key]}")
            await wait_ui(
                pilot,
                lambda key=key: (
                    (r := app.state.rooms.get(ids[key])) and r.membership is Membership.JOIN
                ),
                30,
            )
        rooms = app.query_one(RoomListView)
        await wait_ui(
            pilot, lambda: rooms.row_texts()[:3] == ["▾ Club", "  ▾ Teams", "     # General"], 30
        )

        # Bob writes in General; Alice is elsewhere: Club, collapsed, carries the count.
        await type_text(pilot, f"/join {ids['teams']}")
        await js.send_event(
            ids["general"], "m.room.message", {"msgtype": "m.text", "body": "hi"}, encrypted=False
        )
        await wait_ui(pilot, lambda: (r := app.state.rooms.get(ids["general"])) and r.unread, 30)
        rooms.toggle_space(ids["club"])
        await wait_ui(pilot, lambda: rooms.row_texts()[0] == "▸ Club (1)")
        rooms.toggle_space(ids["club"])

        # Alt+S chooses Club; the browser lists every room of it, nested ones too.
        await pilot.press("alt+s")
        assert rooms.scoped_space == ids["club"]
        await type_text(pilot, "/space browse")
        browser = await wait_ui(
            pilot, lambda: isinstance(app.screen, SpaceBrowser) and app.screen, 30
        )
        listed = {room.name: room for room in browser.rooms}
        assert set(listed) == {"Teams", "General", "Dev"}
        assert listed["General"].joined and not listed["Dev"].joined
        assert listed["Dev"].suggested and listed["Dev"].via == ("localhost",)
        options = browser.query_one(OptionList)
        options.highlighted = [r.name for r in browser.rooms].index("Dev")
        await pilot.press("enter")
        await wait_ui(
            pilot,
            lambda: (r := app.state.rooms.get(ids["dev"])) and r.membership is Membership.JOIN,
            30,
        )
        await wait_ui(pilot, lambda: "       # Dev (suggested)" in rooms.row_texts(), 30)


async def test_a_space_created_here_takes_a_room_and_a_peer_sees_it(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    alice = new_user("alice", "Alice")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    space_id = await service.create_space("Home")
    room_id = await service.create_named_room("Kitchen")
    assert space_id and room_id
    await wait_until(lambda: space_id in service.states and room_id in service.states, 30)
    assert service.states[space_id].is_space
    assert await service.set_space_child(space_id, room_id, True)
    hierarchy = await service.space_hierarchy(space_id)
    assert hierarchy is not None and [r.name for r in hierarchy] == ["Kitchen"]
    assert hierarchy[0].joined
    await wait_until(lambda: service.states[room_id].space_parents() == (space_id,), 30)
    assert await service.set_space_child(space_id, room_id, False)
    assert await service.space_hierarchy(space_id) == []
