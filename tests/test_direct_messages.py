"""Encrypted DMs and invites, against the real Synapse, with a nio peer and
with the matrix-js-sdk peer, in both roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.session import Profile
from tuichat.model.events import Notice, SwitchToRoom
from tuichat.model.rooms import Membership
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.invite import InviteDialog
from tuichat.ui.screens.new_dm import NewDmDialog
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.timeline_view import TimelineView


def _state(
    synapse: LocalSynapse, user: RegisteredUser, room_id: str, event_type: str, state_key: str = ""
) -> dict[str, Any]:
    status, body = synapse._request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}",
        token=user.access_token,
    )
    assert status == 200, body
    return body


def _m_direct(synapse: LocalSynapse, user: RegisteredUser) -> dict[str, list[str]]:
    status, body = synapse._request(
        "GET",
        f"/_matrix/client/v3/user/{quote(user.user_id)}/account_data/m.direct",
        token=user.access_token,
    )
    return body if status == 200 else {}


def _create_event(synapse: LocalSynapse, user: RegisteredUser, room_id: str) -> dict[str, Any]:
    status, body = synapse._request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=f&limit=30",
        token=user.access_token,
    )
    assert status == 200
    return body


def _notices(recorder: Recorder) -> list[str]:
    return [e.text for e in recorder.events if isinstance(e, Notice)]


async def test_dm_you_start_is_encrypted_direct_and_the_first_message_reaches_them(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    peer: NioPeer = await peer_factory(bob)

    room_id = await service.create_dm([bob.user_id])
    assert room_id is not None
    await wait_until(lambda: SwitchToRoom(room_id) in recorder.events)
    # Before Bob joins: named after him, encrypted, direct, and writable.
    summary = await wait_until(lambda: recorder.rooms().get(room_id))
    assert summary.name == "Bob" and summary.is_direct and summary.encrypted
    service.send_text(room_id, "written before you joined")
    await wait_until(lambda: recorder.text_from(room_id, "written before you joined"))

    assert _state(synapse, alice, room_id, "m.room.encryption")["algorithm"] == (
        "m.megolm.v1.aes-sha2"
    )
    assert _state(synapse, alice, room_id, "m.room.join_rules")["join_rule"] == "invite"
    assert _state(synapse, alice, room_id, "m.room.member", bob.user_id)["is_direct"] is True
    assert room_id in _m_direct(synapse, alice)[bob.user_id]
    # The encryption event came with the room's first state, not later.
    chunk = _create_event(synapse, alice, room_id)["chunk"]
    types = [e["type"] for e in chunk]
    assert types.index("m.room.encryption") < types.index(
        "m.room.member", 1 + types.index("m.room.member")
    )

    await peer.join(room_id)
    assert await peer.wait_for_text(room_id, "written before you joined") == alice.user_id
    await peer.send_text(room_id, "got it")
    await wait_until(lambda: recorder.text_from(room_id, "got it"))

    # A second /dm with Bob switches to this room instead of creating one.
    await wait_until(lambda: service.states[room_id].membership_of(bob.user_id) == "join")
    rooms_before = set(service.states)
    again = await service.create_dm([bob.user_id])
    assert again == room_id and set(service.states) == rooms_before


@pytest.mark.parametrize(
    ("user_id", "problem"),
    [("bob", "user ids look like"), ("@nobody-here:localhost", "there is no user")],
)
async def test_malformed_or_unknown_user_creates_nothing(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
    user_id: str,
    problem: str,
) -> None:
    from tuichat.model import commands

    parsed = commands.parse(f"/dm {user_id}")
    if isinstance(parsed, commands.CommandError):
        assert problem in parsed.message
        return
    await log_in(synapse, profile, new_user("alice"))
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    assert await service.create_dm([user_id]) is None
    assert any(problem in text for text in _notices(recorder))
    _status, joined = synapse._request(
        "GET", "/_matrix/client/v3/joined_rooms", token=service.session.access_token
    )
    assert joined["joined_rooms"] == []


async def test_invite_to_a_dm_shows_who_and_is_recorded_when_accepted(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], direct=True)

    invite = await wait_until(lambda: recorder.rooms().get(room_id))
    assert invite.membership is Membership.INVITE
    assert invite.inviter == "Bob" and invite.name == "Bob"
    assert invite.is_direct and invite.encrypted

    assert await service.accept_invite(room_id)
    await wait_until(lambda: room_id in _m_direct(synapse, alice).get(bob.user_id, []))
    joined = await wait_until(
        lambda: (r := recorder.rooms().get(room_id)) and r.membership is Membership.JOIN and r
    )
    assert joined.is_direct and joined.encrypted
    await peer.send_text(room_id, "welcome")
    await wait_until(lambda: recorder.text_from(room_id, "welcome"))
    service.send_text(room_id, "thanks")
    await peer.wait_for_text(room_id, "thanks")


async def test_declined_invites_disappear(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], direct=True)
    await wait_until(lambda: room_id in recorder.rooms())
    assert await service.decline_invite(room_id)
    from tuichat.model.events import RoomRemoved

    await wait_until(lambda: RoomRemoved(room_id) in recorder.events)
    assert room_id not in service.states


async def test_invited_members_get_the_key_for_messages_after_the_invite(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol", "Carol")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    peer_bob: NioPeer = await peer_factory(bob)
    peer_carol: NioPeer = await peer_factory(carol)
    room_id = await service.create_room(name="Group", invite=(bob.user_id,))
    assert room_id is not None
    await peer_bob.join(room_id)
    service.send_text(room_id, "before carol was invited")
    await peer_bob.wait_for_text(room_id, "before carol was invited")

    await wait_until(
        lambda: room_id in service.states and service.states[room_id].membership is Membership.JOIN
    )
    assert await service.invite(room_id, carol.user_id)
    await wait_until(lambda: service.states[room_id].membership_of(carol.user_id) == "invite")
    service.send_text(room_id, "after carol was invited")
    await wait_until(lambda: recorder.text_from(room_id, "after carol was invited"))
    await peer_carol.join(room_id)  # joins only now
    assert await peer_carol.wait_for_text(room_id, "after carol was invited") == alice.user_id
    assert not [m for m in peer_carol.messages if m[2] == "before carol was invited"]


@requires_js_peer
async def test_dm_with_the_js_peer_in_both_roles(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    js: JsPeer = await js_peer_factory(bob)

    # You invite them.
    ours = await service.create_dm([bob.user_id])
    assert ours is not None
    # Their invite says "direct": Element files it under DMs.
    assert _state(synapse, alice, ours, "m.room.member", bob.user_id)["is_direct"] is True
    await js.join(ours)
    service.send_text(ours, "hello js, from tuichat's DM")
    assert (await js.wait_for_message(ours, "hello js, from tuichat's DM"))["encrypted"]
    await js.send(ours, "hello tuichat")
    await wait_until(lambda: recorder.text_from(ours, "hello tuichat"), 30)
    assert recorder.rooms()[ours].is_direct

    # They invite you; you accept.
    theirs = await js.create_room(invite=[alice.user_id], is_direct=True)
    invite = await wait_until(lambda: recorder.rooms().get(theirs), 30)
    assert invite.is_direct and invite.encrypted and invite.inviter == "Bob"
    assert await service.accept_invite(theirs)
    await wait_until(lambda: theirs in _m_direct(synapse, alice).get(bob.user_id, []), 30)
    await js.wait_for_member(theirs, alice.user_id)
    await js.send(theirs, "from the js DM")
    await wait_until(lambda: recorder.text_from(theirs, "from the js DM"), 30)
    service.send_text(theirs, "answer in the js DM")
    await js.wait_for_message(theirs, "answer in the js DM")
    assert recorder.rooms()[theirs].is_direct and recorder.rooms()[theirs].encrypted


async def test_new_dm_dialog_and_invite_dialog(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob", "Bob"), new_user("carol", "Carol")
    await log_in(synapse, profile, alice)
    peer_carol: NioPeer = await peer_factory(carol)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        await pilot.press("ctrl+n")
        await wait_ui(pilot, lambda: isinstance(app.screen, NewDmDialog))
        await pilot.press(*bob.user_id)
        await wait_ui(pilot, lambda: "Bob" in str(app.screen.query_one("#who").render()))
        await pilot.press("enter")
        room_id = await wait_ui(
            pilot, lambda: app.state.current_room_id if app.state.current_room_id else None
        )
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id).name == "Bob")  # type: ignore[union-attr]
        assert app.state.rooms.get(room_id).is_direct  # type: ignore[union-attr]

        # An incoming DM invite: shown in Invites; Enter opens the dialog; A accepts.
        invited = await peer_carol.create_room(invite=[alice.user_id], direct=True)
        await wait_ui(pilot, lambda: app.state.rooms.get(invited))
        rooms = app.query_one(RoomListView)
        await wait_ui(pilot, lambda: rooms.row_texts() and "Invites" in rooms.row_texts()[0])
        assert "invited by Carol" in rooms.row_texts()[2]
        rooms.focus()
        rooms.action_cursor_to(0)  # the invite is the first room
        await pilot.press("enter")
        await wait_ui(pilot, lambda: isinstance(app.screen, InviteDialog))
        await pilot.press("a")
        await wait_ui(pilot, lambda: app.state.current_room_id == invited)
        await peer_carol.wait_for_member(invited, alice.user_id)
        await type_text(pilot, "hi carol")
        assert await peer_carol.wait_for_text(invited, "hi carol") == alice.user_id
        view = app.query_one(TimelineView)
        assert any("hi carol" in line for line in view.line_texts())


async def test_a_new_dm_is_named_after_the_invitee_before_the_invite_arrives(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    """A sync can bring a new room's first events (its creation and our
    join) before the invite: the DM is named after Bob at once, never
    "Empty Room"."""
    from tuichat.matrix.service import MatrixService

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = MatrixService(profile, recorder)
    await service.open()  # no sync loop: the test delivers the first sync itself
    try:
        room_id = await service.create_dm([bob.user_id])
        assert room_id is not None
        first_events = [
            {
                "type": "m.room.create",
                "state_key": "",
                "sender": alice.user_id,
                "event_id": "$create",
                "origin_server_ts": 1,
                "content": {"creator": alice.user_id, "room_version": "10"},
            },
            {
                "type": "m.room.member",
                "state_key": alice.user_id,
                "sender": alice.user_id,
                "event_id": "$join",
                "origin_server_ts": 2,
                "content": {"membership": "join", "displayname": "Alice"},
            },
        ]
        await service.handle_sync(
            {
                "next_batch": "s1",
                "rooms": {
                    "join": {
                        room_id: {
                            "timeline": {"events": first_events, "limited": False},
                            "state": {"events": []},
                            "summary": {"m.joined_member_count": 1, "m.invited_member_count": 0},
                        }
                    }
                },
            }
        )
        summary = recorder.rooms()[room_id]
        assert summary.is_direct and summary.name == "Bob"
    finally:
        await service.stop()


async def test_a_dm_header_says_when_the_other_person_has_no_device(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    """A DM with someone whose only session never uploaded device keys (a
    client without encryption): nobody on their side can read it. The
    header said "all devices verified" (no unverified device was left)."""
    import nio

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        await type_text(pilot, f"/dm {bob.user_id}")
        room_id = await wait_ui(
            pilot,
            lambda: (s := app.state.current_summary) is not None and s.is_direct and s.room_id,
        )
        # Bob joins from a client that has no encryption (no device keys).
        plain = nio.AsyncClient(synapse.url, bob.user_id, device_id=bob.device_id)
        plain.access_token = bob.access_token
        try:
            assert isinstance(await plain.join(room_id), nio.JoinResponse)
        finally:
            await plain.close()

        def header() -> str:
            return str(app.main.header.render())

        await wait_ui(pilot, lambda: "they have no device" in header(), 30)
        assert "all devices verified" not in header()
