"""issue 25: syncs load members lazily, and a room key still reaches every
member: the list is fetched in full before a key is shared (real Synapse,
nio peers on the other side)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.recorder import Recorder, ServiceFactory, join_invite
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import sync_loop


async def test_a_member_lazy_loading_left_out_gets_the_room_key(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_loop, "TIMELINE_LIMIT", 5)
    alice, bob, carol = new_user("alice", "Alice"), new_user("bob", "Bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    bob_peer: NioPeer = await peer_factory(bob)
    carol_peer: NioPeer = await peer_factory(carol)
    # A named room: the server sends no heroes (whose members it would include).
    room_id = await bob_peer.create_room(invite=[carol.user_id], encrypted=True, name="Lazy")
    await carol_peer.join(room_id)
    await bob_peer.wait_for_member(room_id, carol.user_id)
    await bob_peer.client.room_invite(room_id, alice.user_id)
    # Carol says nothing; her join falls out of a five-event timeline.
    for number in range(6):
        await bob_peer.send_text(room_id, f"filler {number}")
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
