"""Faults injected between tuichat and Synapse by a loopback proxy: failed
key uploads, queries, claims and to-device sends, and a sync answer that
carried a room key lost with the client. Every message decrypts in the end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import UserFactory
from tests.fault_proxy import FaultProxy
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, join_invite
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.login import login
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.matrix.service.sync_loop import LONG_POLL_MARGIN
from tuichat.model.connection import ConnectionState
from tuichat.model.events import ConnectionChanged


@pytest.fixture
async def proxy(synapse: LocalSynapse) -> AsyncIterator[tuple[FaultProxy, str]]:
    fault_proxy = FaultProxy(synapse.url)
    url = await fault_proxy.start()
    yield fault_proxy, url
    await fault_proxy.close()


async def _invited_behind_proxy(
    url: str, new_user: UserFactory, profile: Profile, peer_factory: Callable[..., Any]
) -> tuple[NioPeer, str]:
    """Alice logs in through the proxy; Bob (straight to Synapse) invites her
    to an encrypted room."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await login(profile, homeserver=url, user=alice.user_id, password=alice.password)
    peer: NioPeer = await peer_factory(bob)
    return peer, await peer.create_room(invite=[alice.user_id], encrypted=True)


async def test_failed_key_endpoints_delay_but_never_lose_messages(
    proxy: tuple[FaultProxy, str],
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    fault_proxy, url = proxy
    rules = [
        fault_proxy.fail("/keys/upload", 2),
        fault_proxy.fail("/keys/query", 2),
        fault_proxy.fail("/keys/claim", 2),
        fault_proxy.fail("/sendToDevice", 2),
    ]
    peer, room_id = await _invited_behind_proxy(url, new_user, profile, peer_factory)
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        await join_invite(service, recorder, peer, room_id)
        sent = [f"from alice {n}" for n in range(3)]
        for body in sent:
            service.send_text(room_id, body)
        for body in sent:
            await peer.wait_for_text(room_id, body, timeout=60)
        assert not peer.undecryptable
        for n in range(3):
            await peer.send_text(room_id, f"from bob {n}")
        for n in range(3):
            await wait_until(lambda n=n: recorder.text_from(room_id, f"from bob {n}"), 60)
        assert [rule.served for rule in rules] == [2, 2, 2, 2]
    finally:
        await service.stop()


async def test_a_room_key_lost_with_the_client_comes_again(
    proxy: tuple[FaultProxy, str],
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    fault_proxy, url = proxy
    peer, room_id = await _invited_behind_proxy(url, new_user, profile, peer_factory)
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        await join_invite(service, recorder, peer, room_id)
        fault_proxy.hold_to_device_syncs = True
        await peer.send_text(room_id, "the key of this one is held")
        await wait_until(lambda: fault_proxy.held > 0, 30)
    finally:
        await service.stop()  # the held answer never arrives
    fault_proxy.hold_to_device_syncs = False
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        item = await wait_until(
            lambda: recorder.text_from(room_id, "the key of this one is held"), 60
        )
        assert item.trust in ("verified", "unverified")
    finally:
        await service.stop()


async def test_a_hung_server_is_noticed_within_the_long_poll_timeout_and_a_margin(
    proxy: tuple[FaultProxy, str], new_user: UserFactory, profile: Profile
) -> None:
    """A server that keeps the connection open and never answers (not one
    that closes it) must not go on showing "synced"."""
    fault_proxy, url = proxy
    alice = new_user("alice", "Alice")
    await login(profile, homeserver=url, user=alice.user_id, password=alice.password)
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        await wait_until(lambda: service.connection_state is ConnectionState.SYNCED, 30)
        fault_proxy.hang = True
        hung_at = asyncio.get_running_loop().time()
        await wait_until(
            lambda: service.connection_state is ConnectionState.RECONNECTING,
            1.0 + LONG_POLL_MARGIN + 5.0,
        )
        # Noticed after the long poll's own timeout, not before it.
        assert asyncio.get_running_loop().time() - hung_at >= 1.0
        changes = [e for e in recorder.events if isinstance(e, ConnectionChanged)]
        assert changes[-1].detail == "the server does not answer"
        fault_proxy.hang = False
        await wait_until(lambda: service.connection_state is ConnectionState.SYNCED, 60)
    finally:
        await service.stop()
