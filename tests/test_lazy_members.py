"""issue 25: syncs load members lazily, and a room key still reaches every
member: the list is fetched in full before a key is shared (real Synapse,
nio peers on the other side). These run on both sync modes
(tests/conftest.py): `lazy_load_members` on /v3/sync, `$LAZY` required
state on sliding sync."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory, join_invite
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import sliding_sync, sync_loop
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.members import MembersDialog
from tuichat.ui.widgets.composer import Composer


def _short_timelines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five events a sync: a member who joined before them is not in it."""
    monkeypatch.setattr(sync_loop, "TIMELINE_LIMIT", 5)
    monkeypatch.setattr(sliding_sync, "LIST_TIMELINE_LIMIT", 5)


async def _room_with_a_quiet_member(
    bob_peer: NioPeer,
    carol_peer: NioPeer,
    carol: RegisteredUser,
    alice: RegisteredUser,
    name: str | None = "Lazy",
) -> str:
    """Bob's encrypted room: Carol joined and said nothing, Alice invited,
    then more than a five-event timeline of Bob's messages."""
    # A named room: the server sends no heroes (whose members it would include).
    room_id = await bob_peer.create_room(invite=[carol.user_id], encrypted=True, name=name)
    await carol_peer.join(room_id)
    await bob_peer.wait_for_member(room_id, carol.user_id)
    await bob_peer.client.room_invite(room_id, alice.user_id)
    # Bob's peer sees the invite before it sends: nio drops a room's outbound
    # session when the members change, and a send sharing it at that moment
    # fails inside nio (KeyError after the share).
    await wait_until(lambda: alice.user_id in bob_peer.client.rooms[room_id].invited_users)
    for number in range(6):
        await bob_peer.send_text(room_id, f"filler {number}")
    return room_id


async def test_a_member_lazy_loading_left_out_gets_the_room_key(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _short_timelines(monkeypatch)
    alice, bob, carol = new_user("alice", "Alice"), new_user("bob", "Bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    bob_peer: NioPeer = await peer_factory(bob)
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await _room_with_a_quiet_member(bob_peer, carol_peer, carol, alice)
    await join_invite(service, recorder, bob_peer, room_id)
    state = service.room_state(room_id)
    assert state is not None and state.encrypted
    assert state.membership_of(bob.user_id) == "join"
    assert state.membership_of(carol.user_id) is None, "members were not loaded lazily"
    assert not service.members_complete(room_id)

    service.send_text(room_id, "for every member")
    assert await carol_peer.wait_for_text(room_id, "for every member") == alice.user_id
    assert not carol_peer.undecryptable
    assert state.membership_of(carol.user_id) == "join"
    assert service.members_complete(room_id)


async def test_the_member_list_and_name_completion_show_every_member(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _short_timelines(monkeypatch)
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    carol = new_user("carol", "Carol")
    await log_in(synapse, profile, alice)
    bob_peer: NioPeer = await peer_factory(bob)
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await _room_with_a_quiet_member(bob_peer, carol_peer, carol, alice)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, bob_peer, room_id, alice.user_id)
        composer = app.query_one(Composer)
        await wait_ui(pilot, lambda: ("Carol", carol.user_id) in composer.members)
        await type_text(pilot, "/members")
        dialog = await wait_ui(pilot, lambda: isinstance(app.screen, MembersDialog) and app.screen)
        shown = {user_id: membership for user_id, _name, membership in dialog.members}
        assert shown == {alice.user_id: "join", bob.user_id: "join", carol.user_id: "join"}


async def test_a_room_without_a_name_is_named_after_members_lazy_loading_left_out(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol said nothing the sync shows, and the room is named after her
    all the same (/v3/sync sends the heroes' member events, sliding sync
    their display names beside them)."""
    _short_timelines(monkeypatch)
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    carol = new_user("carol", "Carol")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    bob_peer: NioPeer = await peer_factory(bob)
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await _room_with_a_quiet_member(bob_peer, carol_peer, carol, alice, name=None)
    await join_invite(service, recorder, bob_peer, room_id)
    await wait_until(lambda: "Carol" in recorder.rooms()[room_id].name)
    assert sorted(recorder.rooms()[room_id].name.split(" and ")) == ["Bob", "Carol"]


def _member(user_id: str, membership: str, event_id: str) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "state_key": user_id,
        "sender": user_id,
        "event_id": event_id,
        "content": {"membership": membership},
    }


class _Olm:
    def __init__(self) -> None:
        self.users_for_key_query: set[str] = set()
        self.tracked_users = {"@bob:x"}


class _Crypto:
    """What `MemberLists` uses of the crypto engine: its HTTP client (which
    answers `reply`, after `meanwhile` ran as a sync would), rotation, olm."""

    def __init__(self, reply: dict[str, Any], meanwhile: Callable[[], None]) -> None:
        self.http = self
        self.olm = _Olm()
        self.rotated: list[str] = []
        self._reply, self._meanwhile = reply, meanwhile

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self._meanwhile()
        return self._reply

    def rotate(self, room_id: str, reason: str) -> None:
        self.rotated.append(reason)


async def test_the_fetched_list_replaces_stale_members_but_not_what_a_sync_brought() -> None:
    from types import SimpleNamespace

    from tuichat.matrix.content.room_state import RoomState
    from tuichat.matrix.service.history import TimelineGaps
    from tuichat.matrix.service.member_lists import MemberLists

    state = RoomState("!r:x")
    for event in (
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1"}},
        _member("@alice:x", "join", "$a"),
        _member("@bob:x", "join", "$b1"),
        _member("@erin:x", "join", "$e1"),
    ):
        state.apply(event)
    reply = {
        "chunk": [
            _member("@alice:x", "join", "$a"),
            _member("@bob:x", "leave", "$b2"),  # left in a gap lazy loading hid
            _member("@carol:x", "join", "$c"),  # never seen: lazily left out
            _member("@dave:x", "invite", "$d"),
            _member("@erin:x", "join", "$e1"),  # older than what the sync brings
        ]
    }
    crypto = _Crypto(reply, lambda: state.apply(_member("@erin:x", "leave", "$e2")))
    context = SimpleNamespace(states={"!r:x": state}, crypto=crypto, emit=lambda event: None)
    gaps = TimelineGaps()
    summarised: list[set[str]] = []
    views = SimpleNamespace(emit_summaries=summarised.append)
    members = MemberLists(context, gaps, views)  # type: ignore[arg-type]
    assert not members.is_complete("!r:x")

    await members.ensure_complete("!r:x")

    assert state.members() == ["@alice:x", "@carol:x", "@dave:x"]
    assert state.membership_of("@bob:x") == "leave"
    assert state.membership_of("@erin:x") == "leave"
    assert crypto.rotated == ["1 member(s) left"]
    assert crypto.olm.users_for_key_query == {"@carol:x", "@dave:x"}
    assert members.is_complete("!r:x")
    assert summarised == [{"!r:x"}]  # the room's shield counts them all
    gaps.add("!r:x")  # a limited sync: member changes in its gap may be missing
    assert not members.is_complete("!r:x")
