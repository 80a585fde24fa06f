"""The service layer against the real Synapse, with a nio peer on the other side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in, service_and_peer_in_room
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.model.events import (
    LocalEchoAdded,
    SendStateChanged,
)
from tuichat.model.items import SendState


async def _join_from_invite(service: MatrixService, recorder: Recorder, room_id: str) -> None:
    await wait_until(lambda: room_id in recorder.rooms())
    assert await service.join(room_id) == room_id
    await wait_until(lambda: room_id in service.client.rooms)  # type: ignore[union-attr]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_service_and_peer_exchange_messages(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    encrypted: bool,
) -> None:
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=encrypted
    )
    await wait_until(
        lambda: recorder.rooms().get(room_id) and recorder.rooms()[room_id].encrypted == encrypted
    )

    await peer.send_text(room_id, "hello from bob")
    item = await wait_until(lambda: recorder.text_from(room_id, "hello from bob"))
    assert item.sender == peer.user_id
    assert item.sender_name == "Bob"
    assert item.encrypted is encrypted
    assert item.utd_reason is None

    txn_id = service.send_text(room_id, "hello from alice")
    echo = next(e for e in recorder.events if isinstance(e, LocalEchoAdded))
    assert echo.item.txn_id == txn_id and echo.item.send_state is SendState.PENDING
    sender = await peer.wait_for_text(room_id, "hello from alice")
    assert sender == service.user_id
    sent = await wait_until(lambda: [e for e in recorder.events if isinstance(e, SendStateChanged)])
    assert sent[0].state is SendState.SENT and sent[0].event_id
    remote_echo = await wait_until(lambda: recorder.text_from(room_id, "hello from alice"))
    assert remote_echo.txn_id == txn_id
    assert remote_echo.event_id == sent[0].event_id


async def test_restart_reuses_the_device_and_continues_from_the_cache(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    peer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)

    first = Recorder()
    service = MatrixService(profile, first, sync_timeout_ms=1000)
    await service.start()
    await _join_from_invite(service, first, room_id)
    await peer.wait_for_member(room_id, alice.user_id)
    await peer.send_text(room_id, "before restart")
    await wait_until(lambda: first.text_from(room_id, "before restart"))
    await service.stop()

    await peer.send_text(room_id, "while away")

    second = Recorder()
    service = MatrixService(profile, second, sync_timeout_ms=1000)
    # Before any network traffic, the cache already knows the room.
    assert room_id in service.states
    cached = service.snapshot.timelines[room_id]
    assert any(item.encrypted and item.utd_reason == "decrypting" for item in cached)
    await service.open()
    # Cached ciphertext is decrypted as soon as the store is open.
    assert second.text_from(room_id, "before restart") is not None
    await service.start()
    try:
        assert service.session.device_id == device_id
        await wait_until(lambda: second.text_from(room_id, "while away"))
        service.send_text(room_id, "after restart")
        await peer.wait_for_text(room_id, "after restart")
    finally:
        await service.stop()
    status, body = synapse._request(
        "GET",
        "/_matrix/client/v3/devices",
        token=profile.load_session().access_token,  # type: ignore[union-attr]
    )
    assert status == 200
    tuichat_devices = [
        d["device_id"] for d in body["devices"] if d.get("display_name") == "tuichat-test"
    ]
    assert tuichat_devices == [device_id], "a restart must never create a new device"


async def test_unreachable_server_shows_reconnecting_with_the_error(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    from dataclasses import replace

    from tuichat.demo.synapse import free_port
    from tuichat.model.events import ConnectionChanged, ConnectionState

    await log_in(synapse, profile, new_user("erin"))
    session = profile.load_session()
    assert session is not None
    profile.save_session(replace(session, homeserver=f"http://127.0.0.1:{free_port()}"))
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        change = await wait_until(
            lambda: next(
                (
                    e
                    for e in recorder.events
                    if isinstance(e, ConnectionChanged) and e.state is ConnectionState.RECONNECTING
                ),
                None,
            )
        )
        assert "connect" in change.detail.lower()
    finally:
        await service.stop()
