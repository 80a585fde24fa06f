"""A real `MatrixService` opened on a synthetic profile, without a network:
the peer's device is known and verified, and its Megolm sessions are in the
store, as if its room keys had arrived."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nio.crypto.device import OlmDevice
from nio.crypto.sessions import InboundGroupSession

from benchmarks.synthetic import PEER_DEVICE, PEER_USER, PeerDevice, make_profile, state_sync
from tuichat.matrix.service import MatrixService


class Collector:
    """The service's sink: keeps the domain events it emits."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)


async def offline_service(
    root: Path, rooms: list[str], peer: PeerDevice, *, verified: bool = True
) -> tuple[MatrixService, Collector]:
    profile = make_profile(root)
    sink = Collector()
    service = MatrixService(profile, sink)
    await service.open()
    await service.handle_sync(state_sync(rooms))
    await service.cache.flushed()  # the rooms exist in the cache from here on
    olm = service.client.tuichat_olm  # type: ignore[union-attr]
    device = OlmDevice(
        PEER_USER, PEER_DEVICE, {"ed25519": peer.ed25519, "curve25519": peer.curve25519}
    )
    olm.device_store.add(device)
    olm.store.save_device_keys({PEER_USER: {PEER_DEVICE: device}})
    olm.tracked_users.add(PEER_USER)
    olm.users_for_key_query.discard(PEER_USER)
    if verified:
        olm.verify_device(device)
    for room in rooms:
        outbound = peer.outbound(room)
        session = InboundGroupSession(
            outbound.session_key.to_base64(), peer.ed25519, peer.curve25519, room
        )
        olm.inbound_group_store.add(session)
        olm.store.save_inbound_group_session(session)
    sink.events.clear()
    return service, sink
