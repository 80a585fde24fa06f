"""Nothing lost, nothing doubled: the outbox on disk, sending while the
homeserver is down, and after the client was killed (kill -9), against a
Synapse of this module's own that the tests stop and start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import log_in
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, join_invite
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.matrix.storage.outbox import Outbox
from tuichat.model.events import SendStateChanged
from tuichat.model.items import SendState

# -- the outbox file ---------------------------------------------------------------------


def test_the_outbox_keeps_order_and_no_plaintext(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path, "k" * 43)
    for n in range(3):
        outbox.add("!r:x", f"t{n}", "m.room.message", {"body": f"a secret {n}"})
    outbox.remove("t1")
    outbox.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"a secret" not in raw
    assert oct((tmp_path / Outbox.FILE_NAME).stat().st_mode & 0o777) == "0o600"
    entries, unreadable = Outbox(tmp_path, "k" * 43).pending()
    assert [e.txn_id for e in entries] == ["t0", "t2"] and unreadable == 0
    assert entries[1].content == {"body": "a secret 2"}


def test_an_outbox_sealed_with_another_key_is_reported_not_sent(tmp_path: Path) -> None:
    Outbox(tmp_path, "k" * 43).add("!r:x", "t0", "m.room.message", {"body": "x"})
    entries, unreadable = Outbox(tmp_path, "other" * 9).pending()
    assert entries == [] and unreadable == 1


# -- against a homeserver that goes away ---------------------------------------------


@pytest.fixture(scope="module")
def own_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSynapse]:
    server = LocalSynapse(tmp_path_factory.mktemp("outbox-synapse"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def conversation(
    own_synapse: LocalSynapse, tmp_path: Path
) -> AsyncIterator[tuple[Profile, NioPeer, str]]:
    import uuid

    alice = own_synapse.register(f"alice-{uuid.uuid4().hex[:8]}")
    bob = own_synapse.register(f"bob-{uuid.uuid4().hex[:8]}")
    profile = Profile(tmp_path / "alice")
    await log_in(own_synapse, profile, alice)
    peer = NioPeer(own_synapse.url, bob, tmp_path / "bob")
    await peer.start()
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    await join_invite(service, recorder, peer, room_id)
    service.send_text(room_id, "hello before")
    await peer.wait_for_text(room_id, "hello before", timeout=30)
    await service.stop()
    yield profile, peer, room_id
    await peer.close()


def _restart_peer_sync(peer: NioPeer) -> None:
    # nio gives up syncing after a few failed attempts while the server is down.
    if peer._task is None or peer._task.done():
        peer._task = asyncio.create_task(peer.client.sync_forever(timeout=1000))


def _received(peer: NioPeer, room_id: str) -> list[str]:
    return [body for room, _, body in peer.messages if room == room_id]


async def test_messages_written_while_the_server_is_down_arrive_once_in_order(
    own_synapse: LocalSynapse, conversation: tuple[Profile, NioPeer, str]
) -> None:
    profile, peer, room_id = conversation
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    own_synapse.stop()
    try:
        bodies = [f"offline {n}" for n in range(3)]
        for body in bodies:
            service.send_text(room_id, body)
        await asyncio.sleep(3)  # several failed attempts
        failed = [
            e
            for e in recorder.events
            if isinstance(e, SendStateChanged) and e.state is not SendState.PENDING
        ]
        assert failed == [], "still pending, not failed, while the server is down"
        assert len(service.outbox.pending()[0]) == 3
    finally:
        own_synapse.start()
    _restart_peer_sync(peer)
    for body in bodies:
        await peer.wait_for_text(room_id, body, timeout=90)
    await peer.send_text(room_id, "bob is back")
    await wait_until(lambda: recorder.text_from(room_id, "bob is back"), 60)
    await asyncio.sleep(2)  # a duplicate would have arrived by now
    received = _received(peer, room_id)
    assert [b for b in received if b.startswith("offline")] == bodies
    assert service.outbox.pending()[0] == []
    await service.stop()


async def test_messages_pending_when_the_client_is_killed_are_sent_once_on_restart(
    own_synapse: LocalSynapse, conversation: tuple[Profile, NioPeer, str]
) -> None:
    profile, peer, room_id = conversation
    bodies = [f"before the kill {n}" for n in range(3)]
    own_synapse.stop()
    child = subprocess.Popen(  # noqa: ASYNC220 - killed with SIGKILL below, never awaited
        [sys.executable, "-m", "tests.outbox_child", str(profile.root), room_id, *bodies],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        assert line.strip() == "queued"
        await asyncio.sleep(1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        own_synapse.start()
    _restart_peer_sync(peer)
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    for body in bodies:
        await peer.wait_for_text(room_id, body, timeout=90)
    await asyncio.sleep(2)
    received = _received(peer, room_id)
    assert [b for b in received if b.startswith("before the kill")] == bodies
    assert service.outbox.pending()[0] == []
    await service.stop()
