"""Interoperability with Element's crypto stack: a matrix-js-sdk peer with
its Rust crypto (@matrix-org/matrix-sdk-crypto-wasm), against the real Synapse."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, JsPeerError, requires_js_peer
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.model.items import ItemKind

pytestmark = requires_js_peer

JsPeers = Callable[..., Any]


async def _joined(service: MatrixService, recorder: Recorder, room_id: str) -> None:
    await wait_until(lambda: room_id in recorder.rooms(), 30)
    await service.join(room_id)
    await wait_until(
        lambda: (
            room_id in service.states
            and service.states[room_id].membership.value == "join"
            and service.states[room_id].encrypted
        ),
        30,
    )


async def test_messages_both_ways_in_a_room_the_js_peer_created(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)

    room_id = await js.create_room(invite=[alice.user_id], name="Made in js")
    await _joined(service, recorder, room_id)
    await js.wait_for_member(room_id, alice.user_id)

    await js.send(room_id, "hello from the rust crypto")
    item = await wait_until(lambda: recorder.text_from(room_id, "hello from the rust crypto"), 30)
    assert item.encrypted and item.sender == bob.user_id and item.utd_reason is None

    service.send_text(room_id, "hello from tuichat")
    message = await js.wait_for_message(room_id, "hello from tuichat")
    assert message["sender"] == alice.user_id and message["encrypted"]


async def test_messages_both_ways_in_a_room_tuichat_created_and_a_later_js_device(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    js: JsPeer = await js_peer_factory(bob)

    room_id = await service.create_room(name="Made in tuichat", invite=(bob.user_id,))
    assert room_id is not None
    await js.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(bob.user_id) == "join", 30)
    service.send_text(room_id, "first, for one js device")
    await js.wait_for_message(room_id, "first, for one js device")
    await js.send(room_id, "the js side answers")
    await wait_until(lambda: recorder.text_from(room_id, "the js side answers"), 30)

    later: JsPeer = await js_peer_factory(bob, "js-peer-2")
    await wait_until(
        lambda: (
            any(
                d.id == later.device_id
                for d in service.crypto.olm.device_store.active_user_devices(bob.user_id)  # type: ignore[union-attr]
            )
            or bool(service.crypto.olm.users_for_key_query)
        ),  # type: ignore[union-attr]
        30,
    )
    service.send_text(room_id, "second, after a new js device appeared")
    message = await later.wait_for_message(room_id, "second, after a new js device appeared")
    assert message["encrypted"] and message["sender"] == alice.user_id
    await later.send(room_id, "the new js device writes too")
    await wait_until(lambda: recorder.text_from(room_id, "the new js device writes too"), 30)


async def test_keys_exported_by_js_fill_placeholders_in_tuichat(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id])
    synapse._request("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=alice.access_token)
    await js.wait_for_member(room_id, alice.user_id)
    await js.send(room_id, "written before tuichat's device existed")

    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    waiting = await wait_until(
        lambda: [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE], 30
    )
    assert waiting[0].utd_reason == "before_device"

    export = await js.export_keys("js export passphrase", rounds=500_000)
    result = await service.import_keys(export, "js export passphrase")
    assert result.imported >= 1
    item = await wait_until(
        lambda: recorder.text_from(room_id, "written before tuichat's device existed"), 30
    )
    assert item.key_source == "imported" and item.sender == bob.user_id


async def test_keys_exported_by_tuichat_import_into_js(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    tmp_path: Path,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    js: JsPeer = await js_peer_factory(bob)
    room_id = await service.create_room(invite=(bob.user_id,))
    assert room_id is not None
    await js.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(bob.user_id) == "join", 30)
    service.send_text(room_id, "for bob's first device only")
    await js.wait_for_message(room_id, "for bob's first device only")
    await js.close()

    # Bob's next device never got the key; tuichat's export brings it.
    later: JsPeer = await js_peer_factory(bob, "js-peer-later")
    export = tmp_path / "from-tuichat.txt"
    await service.export_keys(export, "tuichat passphrase")
    count = await later.import_keys(export.read_text(), "tuichat passphrase")
    assert count >= 1
    message = await later.wait_for_message(room_id, "for bob's first device only", timeout=45)
    assert message["sender"] == alice.user_id


def _forget_olm_sessions(profile: Profile, curve25519: str) -> int:
    """Delete this device's Olm sessions with one device from nio's store
    (tuichat stopped): the state of a store that lost them, or an older copy."""
    removed = 0
    for path in Path(profile.store_dir).glob("*.db"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "olmsessions" in tables:
                removed += db.execute(
                    "DELETE FROM olmsessions WHERE sender_key = ?", (curve25519,)
                ).rowcount
                db.commit()
    return removed


async def wait_until_async(check: Callable[[], Any], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.3)


def _olm_session_rows(profile: Profile, curve25519: str) -> list[tuple[Any, ...]]:
    """This device's stored Olm sessions with one device (tuichat stopped)."""
    rows: list[tuple[Any, ...]] = []
    for path in Path(profile.store_dir).glob("*.db"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows += db.execute(
                "SELECT session_id, session, creation_time, last_usage_date FROM olmsessions "
                "WHERE sender_key = ?",
                (curve25519,),
            ).fetchall()
    return rows


def _restore_olm_session_rows(profile: Profile, rows: list[tuple[Any, ...]]) -> None:
    """Put older copies of Olm sessions back, as a restore from an older
    backup of the profile would."""
    for path in Path(profile.store_dir).glob("*.db"):
        with contextlib.closing(sqlite3.connect(path)) as db:
            for session_id, session, created, used in rows:
                db.execute(
                    "UPDATE olmsessions SET session = ?, creation_time = ?, last_usage_date = ? "
                    "WHERE session_id = ?",
                    (session, created, used, session_id),
                )
            db.commit()


async def _until_js_reads(
    service: MatrixService, js: JsPeer, room_id: str, prefix: str, seconds: float = 30
) -> dict[str, Any]:
    """Send under a new room key, again and again, until Element decrypts
    one (a sync or two may pass before it can); fails after `seconds`."""
    assert service.crypto is not None
    deadline = asyncio.get_running_loop().time() + seconds
    attempt = 0
    while True:
        attempt += 1
        service.crypto.rotate(room_id, "test: a new room key")
        body = f"{prefix} {attempt}"
        service.send_text(room_id, body)
        try:
            return await js.wait_for_message(room_id, body, timeout=5)
        except JsPeerError:
            if asyncio.get_running_loop().time() > deadline:
                raise


STALE_BY = 12


async def test_element_repairs_an_olm_session_tuichat_rolled_back_and_gets_keys_again(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    """tuichat restarts with an older copy of its Olm session with Element
    (a profile restored from a backup): Element cannot decrypt what tuichat
    sends over it (those message keys were used up). When Element next shares
    a room key with tuichat over the session, tuichat takes the new ratchet
    key and its later room keys reach Element again. (Element's Rust crypto
    only marks the session to be unwedged here: it makes a new one only for a
    session older than its minimum age, so the repair is the ratchet's.)"""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Rolled back")
    await _joined(service, recorder, room_id)
    await js.wait_for_member(room_id, alice.user_id)
    await js.send(room_id, "hello alice")
    await wait_until(lambda: recorder.text_from(room_id, "hello alice"), 30)
    service.send_text(room_id, "first key")
    await js.wait_for_message(room_id, "first key")
    await service.stop()
    older = _olm_session_rows(profile, js.curve25519)
    assert older

    service = await start_service(profile, Recorder())
    await service.first_sync_done.wait()
    assert service.crypto is not None
    # Each new room key moves the Olm session on by one message: so many
    # that the old copy cannot just catch up within `_until_js_reads`.
    for step in range(STALE_BY):
        service.crypto.rotate(room_id, "test: a new room key")
        service.send_text(room_id, f"moving on {step}")
        await js.wait_for_message(room_id, f"moving on {step}")
    await service.stop()
    _restore_olm_session_rows(profile, older)

    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    assert service.crypto is not None
    before = len(await js.call("undecryptable", roomId=room_id))
    service.crypto.rotate(room_id, "test: a new room key")
    service.send_text(room_id, "over the stale session")

    async def element_could_not_read() -> bool:
        return len(await js.call("undecryptable", roomId=room_id)) > before

    await wait_until_async(element_could_not_read, 30)
    # Element's next room key for tuichat goes over the same session, with
    # a new ratchet key that moves tuichat's sending chain past the old one.
    await js.discard_room_key(room_id)
    await js.send(room_id, "are you there")
    await wait_until(lambda: recorder.text_from(room_id, "are you there"), 30)
    message = await _until_js_reads(service, js, room_id, "after the repair")
    assert message["encrypted"] and message["sender"] == alice.user_id


async def test_a_wedged_olm_session_is_replaced_and_room_keys_flow_again(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    """tuichat loses its Olm session with Bob's Element device, which keeps
    sending room keys over it: tuichat cannot decrypt them, so it starts a new
    Olm session and sends a dummy message over it (nio's unwedging); Element
    then sends the next room key over the new session and the messages
    decrypt again."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Wedged")
    await _joined(service, recorder, room_id)
    await js.wait_for_member(room_id, alice.user_id)
    await js.send(room_id, "before the loss")
    await wait_until(lambda: recorder.text_from(room_id, "before the loss"), 30)
    # tuichat answers over the same Olm session, so Element's next Olm
    # messages are ordinary ones (not pre-key messages tuichat could start
    # a new session from).
    service.send_text(room_id, "hello bob")
    await js.wait_for_message(room_id, "hello bob")
    await service.stop()

    assert _forget_olm_sessions(profile, js.curve25519) >= 1
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    await js.discard_room_key(room_id)
    await js.send(room_id, "key lost on the way")
    lost = await wait_until(
        lambda: (
            recorder.text_from(room_id, "key lost on the way")
            or [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]
        ),
        30,
    )
    assert isinstance(lost, list), "the room key came over a session tuichat had lost"

    # Element picks up the new session from tuichat's dummy message in its
    # next sync; until then a new room key still goes over the old session.
    deadline = asyncio.get_running_loop().time() + 45
    attempt = 0
    while True:
        attempt += 1
        await js.discard_room_key(room_id)
        body = f"after the repair {attempt}"
        await js.send(room_id, body)
        try:
            item = await wait_until(lambda body=body: recorder.text_from(room_id, body), 5)
        except TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            continue
        assert item.encrypted and item.utd_reason is None
        break
    service.send_text(room_id, "and back")
    await js.wait_for_message(room_id, "and back")
