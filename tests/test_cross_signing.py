"""Cross-signing with Element's stack (matrix-js-sdk + Rust crypto) against
the real Synapse: a tuichat device Element trusts, and people verified once
for all their devices."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_devices import _views
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.crypto.cross_signing import MASTER, SELF_SIGNING, USER_SIGNING
from tuichat.matrix.service import MatrixService
from tuichat.model.events import TimelineAppended
from tuichat.model.items import ItemKind
from tuichat.model.verification import Phase

pytestmark = requires_js_peer
JsPeers = Callable[..., Any]


async def poll(check: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    """Await `check()` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.3)


async def _knows(js: JsPeer, user_id: str, device_id: str) -> bool:
    return any(d["device_id"] == device_id for d in await js.device_keys(user_id))


async def _signed_status(js: JsPeer, user_id: str, device_id: str) -> dict[str, Any] | None:
    status = await js.device_status(user_id, device_id)
    return status if status and status["signed_by_owner"] else None


async def _verified_user(js: JsPeer, user_id: str) -> bool:
    return bool((await js.user_status(user_id))["cross_signing_verified"])


def _waiting(recorder: Recorder, room_id: str) -> list[Any]:
    return [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]


async def _element_user_with_room(
    new_user: UserFactory, peer_factory: Callable[..., Any], js_peer_factory: JsPeers
) -> tuple[Any, JsPeer, str, str, NioPeer]:
    """Bob in Element (recovery and cross-signing set up) in a room with Carol."""
    bob, carol = new_user("bob", "Bob"), new_user("carol", "Carol")
    js: JsPeer = await js_peer_factory(bob)
    setup = await js.bootstrap_recovery()
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await js.create_room(invite=[carol.user_id], name="Signed only")
    await carol_peer.join(room_id)
    await js.wait_for_member(room_id, carol.user_id)
    return bob, js, setup["recovery_key"], room_id, carol_peer


async def test_element_withholds_keys_until_tuichat_signs_itself(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    bob, js, recovery_key, room_id, _carol = await _element_user_with_room(
        new_user, peer_factory, js_peer_factory
    )
    await js.set_isolation("onlySigned")
    await log_in(synapse, profile, bob)  # a fresh tuichat device of Bob's
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: room_id in service.states, 30)
    device_id = service.session.device_id
    # Element must know the new device before it can withhold keys from it.
    await poll(lambda: _knows(js, bob.user_id, device_id))

    await js.send(room_id, "not for unsigned devices")
    withheld = await wait_until(
        lambda: next(
            (i for i in _waiting(recorder, room_id) if (i.utd_reason or "").startswith("withheld")),
            None,
        ),
        30,
    )
    assert withheld.utd_reason == "withheld:m.unverified"
    assert "only shares keys with verified devices" in withheld.utd_text

    await service.recover(recovery_key=recovery_key)
    crypto = service.crypto
    assert crypto is not None and set(crypto.cross_signing.private) >= {SELF_SIGNING}
    status = await poll(lambda: _signed_status(js, bob.user_id, device_id))
    assert status["signed_by_owner"] and status["cross_signing_verified"]

    await js.send(room_id, "now you are signed")
    item = await wait_until(lambda: recorder.text_from(room_id, "now you are signed"), 30)
    assert item.encrypted
    devices = await service.devices(bob.user_id, refresh=True)
    assert devices[0].this_device and devices[0].cross_signed is True
    assert service.identity_state(bob.user_id) == "verified"


async def test_element_verifies_tuichat_by_emoji_and_shares_the_keys(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    bob, js, _key, room_id, _carol = await _element_user_with_room(
        new_user, peer_factory, js_peer_factory
    )
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: room_id in service.states, 30)
    await service.devices(bob.user_id, refresh=True)

    txn = await js.request_verification(bob.user_id, service.session.device_id)
    await wait_until(lambda: _views(recorder, txn), 30)
    await service.accept_verification(txn)
    await js.start_sas(txn)
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None), 30
    )
    theirs = await js.wait_sas(txn)
    assert [name for _, name in view.emoji] == [name for _, name in theirs["emoji"]]
    await js.confirm_sas(txn)
    await service.confirm_verification(txn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE, 30)
    await js.verification_state(txn, wait_for="done")

    crypto = service.crypto
    assert crypto is not None
    await wait_until(
        lambda: {MASTER, SELF_SIGNING, USER_SIGNING} <= set(crypto.cross_signing.private), 30
    )
    status = await js.device_status(bob.user_id, service.session.device_id)
    assert status is not None and status["verified"]
    await wait_until(lambda: crypto.backup.unlocked, 30)


@pytest.mark.parametrize(
    ("element_state", "started_by", "tuichat_knows_element"),
    [
        ("cross_signing_only", "element", False),
        ("cross_signing_only", "element", True),
        ("cross_signing_only", "tuichat", False),
        ("cross_signing_only", "tuichat", True),
        ("with_recovery", "element", False),
        ("with_recovery", "tuichat", True),
        ("nothing_set_up", "element", False),
    ],
)
async def test_own_device_emoji_verification_with_element_in_every_account_state(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
    element_state: str,
    started_by: str,
    tuichat_knows_element: bool,
) -> None:
    """Bob's Element session verifies his new tuichat session whatever Element
    has set up: cross-signing only (no secret storage, no backup), cross-signing
    with recovery, or nothing yet; started by Element (which has queried the
    new device) or by tuichat (before Element has looked the device up); with
    tuichat knowing Element's device already, or not (Bob has no rooms, so
    nothing made tuichat look up his devices)."""
    bob = new_user("bob", "Bob")
    js: JsPeer = await js_peer_factory(bob)
    if element_state == "cross_signing_only":
        await js.bootstrap_cross_signing()
    elif element_state == "with_recovery":
        await js.bootstrap_recovery()
    await log_in(synapse, profile, bob)  # a fresh tuichat device of Bob's
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    device_id = service.session.device_id
    if tuichat_knows_element:
        devices = await service.devices(bob.user_id, refresh=True)
        assert js.device_id in {d.device_id for d in devices}

    if started_by == "element":
        await poll(lambda: _knows(js, bob.user_id, device_id))
        txn = await js.request_verification(bob.user_id, device_id)
        await wait_until(lambda: _views(recorder, txn), 30)
        await service.accept_verification(txn)
        await js.start_sas(txn)
    else:
        txn = await service.request_verification(bob.user_id)
        accepted = await js.accept_verification()
        assert accepted["transaction_id"] == txn
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None), 30
    )
    theirs = await js.wait_sas(txn)
    assert [name for _, name in view.emoji] == [name for _, name in theirs["emoji"]]
    await js.confirm_sas(txn)
    await service.confirm_verification(txn)
    last = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase in _FINAL), None), 30
    )
    state = await js.verification_state(txn)
    assert last.phase is Phase.DONE, (last.cancel_code, last.cancel_reason, state)
    await js.verification_state(txn, wait_for="done")
    assert await js.is_verified(bob.user_id, device_id)
    crypto = service.crypto
    assert crypto is not None
    if element_state != "nothing_set_up":
        # Element hands its cross-signing keys to the device it verified.
        await wait_until(
            lambda: {MASTER, SELF_SIGNING, USER_SIGNING} <= set(crypto.cross_signing.private), 30
        )
        status = await poll(lambda: _signed_status(js, bob.user_id, device_id))
        assert status["cross_signing_verified"]


_FINAL = (Phase.DONE, Phase.CANCELLED)


async def _two_people_with_cross_signing(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> tuple[MatrixService, Recorder, JsPeer, Any, Any, str]:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    await service.setup_recovery(password=alice.password)
    js: JsPeer = await js_peer_factory(bob)
    await js.bootstrap_recovery()
    room_id = await service.create_dm([bob.user_id])
    assert room_id is not None
    await js.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(bob.user_id) == "join", 30)
    service.send_text(room_id, "hi bob")
    await js.wait_for_message(room_id, "hi bob")
    await service.devices(bob.user_id, refresh=True)
    assert service.identity_state(bob.user_id) == "unverified"
    return service, recorder, js, alice, bob, room_id


async def _finish_sas(service: MatrixService, recorder: Recorder, js: JsPeer, txn: str) -> None:
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None), 30
    )
    theirs = await js.wait_sas(txn)
    assert [name for _, name in view.emoji] == [name for _, name in theirs["emoji"]]
    await js.confirm_sas(txn)
    await service.confirm_verification(txn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE, 30)
    await js.verification_state(txn, wait_for="done")


async def test_in_room_verification_started_by_tuichat(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    service, recorder, js, alice, bob, _room_id = await _two_people_with_cross_signing(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    txn = await service.request_user_verification(bob.user_id)
    assert txn is not None
    accepted = await js.accept_verification()
    assert accepted["transaction_id"] == txn
    await _finish_sas(service, recorder, js, txn)
    await wait_until(lambda: service.identity_state(bob.user_id) == "verified", 30)
    await poll(lambda: _verified_user(js, alice.user_id))
    # Bob's devices are now trusted without verifying each one.
    devices = await service.devices(bob.user_id, refresh=True)
    assert all(d.trust.value == "verified" for d in devices if d.cross_signed)


async def test_in_room_verification_ends_done_on_both_sides_when_our_mac_is_slow_to_send(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    """Element's MAC arrives while tuichat's own `mac` is still on its way to
    the server (a slow network, a loaded machine): the `done` it triggers
    must go out after the `mac`, or Element ignores it and waits for ever."""
    service, recorder, js, alice, bob, _room_id = await _two_people_with_cross_signing(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    crypto = service.crypto
    assert crypto is not None and crypto.send_room_event is not None
    send = crypto.send_room_event

    async def slow_mac(room_id: str, event_type: str, content: dict[str, Any]) -> str | None:
        if event_type == "m.key.verification.mac":
            # Still on its way when tuichat receives Element's MAC.
            verification = crypto.verifications.get(str(content["m.relates_to"]["event_id"]))
            assert verification is not None
            await wait_until(lambda: verification.view().their_mac_received, 30)
        return await send(room_id, event_type, content)

    crypto.send_room_event = slow_mac
    txn = await service.request_user_verification(bob.user_id)
    assert txn is not None
    await js.accept_verification()
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None), 30
    )
    theirs = await js.wait_sas(txn)
    assert [name for _, name in view.emoji] == [name for _, name in theirs["emoji"]]
    confirming = asyncio.create_task(service.confirm_verification(txn))
    await js.confirm_sas(txn)
    await confirming
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE, 30)
    await js.verification_state(txn, wait_for="done")
    await poll(lambda: _verified_user(js, alice.user_id))


async def test_a_device_that_does_not_trust_its_own_master_key_does_not_vouch_for_it(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    """A new tuichat device of Alice's, before it holds or has verified her
    cross-signing keys, knows her master key only from the server: verifying
    Bob, it must not MAC that key as hers (as Element's stack does not), or
    Bob's Element would trust whatever key the server handed out."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    alice_js: JsPeer = await js_peer_factory(alice)
    await alice_js.bootstrap_cross_signing()  # Alice's identity, made elsewhere
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    js: JsPeer = await js_peer_factory(bob)
    await js.bootstrap_recovery()
    room_id = await service.create_dm([bob.user_id])
    assert room_id is not None
    await js.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(bob.user_id) == "join", 30)
    service.send_text(room_id, "hi bob")
    await js.wait_for_message(room_id, "hi bob")
    await service.devices(alice.user_id, refresh=True)
    assert service.identity_state(alice.user_id) == "unverified"  # not trusted here

    txn = await service.request_user_verification(bob.user_id)
    assert txn is not None
    await js.accept_verification()
    await _finish_sas(service, recorder, js, txn)
    # Bob's Element trusts this device, but not Alice's master key on its word.
    assert await js.is_verified(alice.user_id, service.session.device_id)
    assert not await _verified_user(js, alice.user_id)


async def test_in_room_verification_started_by_element(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    service, recorder, js, alice, bob, room_id = await _two_people_with_cross_signing(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    txn = await js.request_verification_dm(alice.user_id, room_id)
    incoming = await wait_until(lambda: _views(recorder, txn), 30)
    assert not incoming[0].we_requested
    await service.accept_verification(txn)
    await js.start_sas(txn)
    await _finish_sas(service, recorder, js, txn)
    await wait_until(lambda: service.identity_state(bob.user_id) == "verified", 30)
    await poll(lambda: _verified_user(js, alice.user_id))


async def test_an_identity_reset_shows_a_warning(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    service, recorder, js, _alice, bob, room_id = await _two_people_with_cross_signing(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    await js.reset_cross_signing()
    await wait_until(lambda: service.identity_state(bob.user_id) == "changed", 30)
    notice = await wait_until(
        lambda: next(
            (
                item
                for e in recorder.events
                if isinstance(e, TimelineAppended) and e.room_id == room_id
                for item in e.items
                if item.key.startswith("notice:identitychanged")
            ),
            None,
        ),
        30,
    )
    assert "identity changed" in notice.body and notice.highlight
    service.acknowledge_identity(bob.user_id)
    assert service.identity_state(bob.user_id) == "unverified"
