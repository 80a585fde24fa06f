"""Encryption that recovers, at the service layer, against the real Synapse:
placeholder reasons, sender binding, replay protection, outbound sessions
that persist and rotate, keys for new devices, fallback and one-time keys."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.types import Decryption
from tuichat.matrix.service import MatrixService
from tuichat.model.items import ItemKind, WithheldCode
from tuichat.model.rooms import Membership

Peers = Callable[..., Any]


async def _service_in_room(
    synapse: LocalSynapse,
    profile: Profile,
    user: Any,
    peer: NioPeer,
    room_id: str,
    start_service: ServiceFactory,
    **kwargs: Any,
) -> tuple[MatrixService, Recorder]:
    recorder = Recorder()
    service = await start_service(profile, recorder, **kwargs)
    await wait_until(lambda: room_id in recorder.rooms())
    await service.join(room_id)
    await wait_until(
        lambda: (
            room_id in service.states
            and service.states[room_id].membership.value == "join"
            and service.states[room_id].encrypted
        )
    )
    await peer.wait_for_member(room_id, user.user_id)
    return service, recorder


def _waiting(recorder: Recorder, room_id: str) -> list[Any]:
    return [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]


async def test_key_from_a_later_index_says_so_and_a_better_key_still_helps(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    service, recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    device_id = service.session.device_id

    first_key = await peer.send_withholding_key(room_id, "message zero")
    later_key = peer.current_key(room_id)  # starts at message index 1
    await wait_until(lambda: _waiting(recorder, room_id))
    await peer.deliver_key(later_key, alice.user_id, device_id)
    await wait_until(
        lambda: [i.utd_reason for i in _waiting(recorder, room_id)] == ["unknown_index"]
    )
    await peer.deliver_key(first_key, alice.user_id, device_id)
    await wait_until(lambda: recorder.text_from(room_id, "message zero"))


async def test_messages_from_before_this_device_say_so(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    status, _ = synapse._request(
        "POST", f"/_matrix/client/v3/join/{room_id}", {}, token=alice.access_token
    )
    assert status == 200
    await peer.wait_for_member(room_id, alice.user_id)
    await peer.send_text(room_id, "before tuichat existed")  # alice's only device has no keys

    await log_in(synapse, profile, alice)
    recorder = Recorder()
    await start_service(profile, recorder)
    waiting = await wait_until(lambda: _waiting(recorder, room_id))
    assert waiting[0].utd_reason == "before_device"
    assert waiting[0].utd_text == "sent before this device existed"


async def test_withheld_key_gives_its_own_placeholder_reason(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    service, recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    held = await peer.send_withholding_key(room_id, "secret")
    await wait_until(lambda: _waiting(recorder, room_id))
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": room_id,
        "session_id": held.session_id,
        "sender_key": peer.client.olm.account.identity_keys["curve25519"],
        "code": "m.unverified",
        "reason": "Device not verified",
    }
    status, _ = synapse._request(
        "PUT",
        f"/_matrix/client/v3/sendToDevice/m.room_key.withheld/{uuid.uuid4().hex}",
        {"messages": {alice.user_id: {service.session.device_id: content}}},
        token=bob.access_token,
    )
    assert status == 200
    item = await wait_until(
        lambda: next(
            (i for i in _waiting(recorder, room_id) if i.utd_reason == "withheld:m.unverified"),
            None,
        )
    )
    assert "only shares keys with verified devices" in item.utd_text


# An OSC 52 clipboard write and an OSC 8 link: what a hostile code tried.
HOSTILE_CODE = "\x1b]52;c;aGFja2Vk\x07\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07"


def _send_withheld(
    synapse: LocalSynapse, token: str, user_id: str, device_id: str, content: dict[str, Any]
) -> None:
    """A raw m.room_key.withheld to-device message, as anyone may send one."""
    status, body = synapse._request(
        "PUT",
        f"/_matrix/client/v3/sendToDevice/m.room_key.withheld/{uuid.uuid4().hex}",
        {"messages": {user_id: {device_id: content}}},
        token=token,
    )
    assert status == 200, body


def _reasons(recorder: Recorder, room_id: str, session_id: str) -> list[str | None]:
    """Every placeholder reason emitted for the session's events, in order."""
    return [
        item.utd_reason
        for event in recorder.events
        if getattr(event, "room_id", None) == room_id
        for item in getattr(event, "items", ())
        if item.session_id == session_id
    ]


async def test_withheld_codes_are_checked_and_bound_to_the_sender_also_after_a_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    service, recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    device_id = service.session.device_id
    bob_key = peer.client.olm.account.identity_keys["curve25519"]
    held = await peer.send_withholding_key(room_id, "secret")

    def notice(session_id: str, code: str, sender_key: str = bob_key) -> dict[str, Any]:
        return {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": room_id,
            "session_id": session_id,
            "sender_key": sender_key,
            "code": code,
            "reason": HOSTILE_CODE,
        }

    # Bob's own notice with a code no spec defines: shown as an unknown code.
    _send_withheld(
        synapse, bob.access_token, alice.user_id, device_id, notice(held.session_id, HOSTILE_CODE)
    )

    def placeholder(recorder: Recorder, session_id: str, reason: str) -> Any:
        return next(
            (
                i
                for i in _waiting(recorder, room_id)
                if i.session_id == session_id and i.utd_reason == reason
            ),
            None,
        )

    item = await wait_until(lambda: placeholder(recorder, held.session_id, "withheld:unknown"))
    assert "\x1b" not in item.utd_text and "\x07" not in item.utd_text
    assert item.utd_text.startswith("withheld: the sender withheld the key")

    # Carol's notice for Bob's session, and Bob's naming another device's
    # key, explain nothing. A later notice from Bob for a second session
    # shows they were read (to-device messages arrive in order).
    _send_withheld(
        synapse,
        carol.access_token,
        alice.user_id,
        device_id,
        notice(held.session_id, "m.blacklisted"),
    )
    _send_withheld(
        synapse,
        bob.access_token,
        alice.user_id,
        device_id,
        notice(held.session_id, "m.unauthorised", sender_key="A" * 43),
    )
    second = await peer.send_withholding_key(room_id, "second secret")
    _send_withheld(
        synapse,
        bob.access_token,
        alice.user_id,
        device_id,
        notice(second.session_id, "m.unverified"),
    )
    await wait_until(lambda: placeholder(recorder, second.session_id, "withheld:m.unverified"))
    reasons = _reasons(recorder, room_id, held.session_id)
    assert reasons[-1] == "withheld:unknown"
    assert not {"withheld:m.blacklisted", "withheld:m.unauthorised"} & set(reasons), reasons
    await service.stop()

    # After a restart (events from the cache, notices from the store): the same.
    again = Recorder()
    await start_service(profile, again)
    item = await wait_until(lambda: placeholder(again, held.session_id, "withheld:unknown"))
    assert "\x1b" not in item.utd_text
    await wait_until(lambda: placeholder(again, second.session_id, "withheld:m.unverified"))
    assert not {"withheld:m.blacklisted", "withheld:m.unauthorised"} & set(
        _reasons(again, room_id, held.session_id)
    )


def test_withheld_codes_stored_the_old_way_are_not_believed(tmp_path: Path) -> None:
    """The first withheld table kept any code, bound to no sender."""
    with sqlite3.connect(tmp_path / CryptoExtrasStore.FILE_NAME) as old:
        old.execute("CREATE TABLE withheld (session_id TEXT PRIMARY KEY, code TEXT NOT NULL)")
        old.execute("INSERT INTO withheld VALUES ('S', ?)", (HOSTILE_CODE,))
    extras = CryptoExtrasStore(tmp_path)
    try:
        assert extras.withheld_code("!r:x", "K", "S", "@bob:x") is None
        tables = {row[0] for row in extras._db.execute("SELECT name FROM sqlite_master")}
        assert "withheld" not in tables
        extras.set_withheld("!r:x", "K", "S", "@bob:x", WithheldCode.parse(HOSTILE_CODE))
        assert extras.withheld_code("!r:x", "K", "S", "@bob:x") is WithheldCode.UNKNOWN
        assert extras.withheld_code("!r:x", "K", "S", "@carol:x") is None
    finally:
        extras.close()


async def test_a_placeholder_never_draws_an_unknown_withheld_code() -> None:
    """Even a reason built before codes were checked is drawn as words of ours."""
    from tests.test_timeline_rendering import NOON, shown

    encrypted = {
        "type": "m.room.encrypted",
        "event_id": "$held",
        "sender": "@bob:x",
        "origin_server_ts": NOON,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "S", "ciphertext": "x"},
    }
    item = to_item(
        encrypted,
        RoomState("!r", Membership.JOIN),
        Viewer("@me:x"),
        Decryption(None, f"withheld:{HOSTILE_CODE}", "S"),
    )
    assert item is not None
    lines = await shown([item])
    placeholder = next(line for line in lines if "Unable to decrypt" in line)
    assert "withheld: the sender withheld the key" in placeholder
    assert not any("\x1b" in line or "\x07" in line or "evil" in line for line in lines)


async def test_replayed_ciphertext_is_rejected_also_after_a_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    service, recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    original_id = await peer.send_text(room_id, "pay alice 10 coins")
    original = await wait_until(lambda: recorder.item(room_id, original_id))
    assert original.body == "pay alice 10 coins"
    # Bob's client replays the very same ciphertext as a new event.
    status, body = synapse._request(
        "GET",
        f"/_matrix/client/v3/rooms/{room_id}/event/{original_id}",
        token=bob.access_token,
    )
    assert status == 200 and body["type"] == "m.room.encrypted"
    status, sent = synapse._request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/{uuid.uuid4().hex}",
        body["content"],
        token=bob.access_token,
    )
    replay_id = sent["event_id"]
    replayed = await wait_until(lambda: recorder.item(room_id, replay_id))
    assert replayed.kind is ItemKind.UNDECRYPTABLE and replayed.utd_reason == "replay"
    await service.stop()

    again = Recorder()
    service = MatrixService(profile, again)
    await service.open()
    try:
        assert again.item(room_id, original_id).body == "pay alice 10 coins"  # type: ignore[union-attr]
        assert again.item(room_id, replay_id).utd_reason == "replay"  # type: ignore[union-attr]
    finally:
        await service.stop()


async def test_someone_elses_session_is_not_shown_as_the_senders(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob, mallory = new_user("alice"), new_user("bob"), new_user("mallory")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id, mallory.user_id])
    synapse._request("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=mallory.access_token)
    _service, recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    await peer.wait_for_member(room_id, mallory.user_id)
    genuine_id = await peer.send_text(room_id, "from bob")
    assert (await wait_until(lambda: recorder.item(room_id, genuine_id))).trust == "unverified"
    # Bob's session encrypts a message that Mallory then posts as her own:
    # a valid Megolm message, at a fresh index, under the wrong sender.
    forged_content = peer.client.olm.group_encrypt(
        room_id, {"type": "m.room.message", "content": {"msgtype": "m.text", "body": "forged"}}
    )
    _, sent = synapse._request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.encrypted/{uuid.uuid4().hex}",
        forged_content,
        token=mallory.access_token,
    )
    forged = await wait_until(lambda: recorder.item(room_id, sent["event_id"]))
    assert forged.kind is ItemKind.UNDECRYPTABLE and forged.utd_reason == "sender_mismatch"
    assert "sender mismatch" in forged.utd_text
    assert recorder.text_from(room_id, "forged") is None


async def test_outbound_session_survives_a_restart_and_rotates_when_a_member_leaves(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await peer.create_room(invite=[alice.user_id, carol.user_id])
    await carol_peer.join(room_id)
    service, _recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    await peer.wait_for_member(room_id, carol.user_id)

    service.send_text(room_id, "one")
    await peer.wait_for_text(room_id, "one")
    first_session = service.crypto.groups.current(room_id).id  # type: ignore[union-attr]
    await service.stop()

    service = await start_service(profile, Recorder())
    await service.first_sync_done.wait()
    service.send_text(room_id, "two")
    await peer.wait_for_text(room_id, "two")
    assert service.crypto.groups.current(room_id).id == first_session  # type: ignore[union-attr]
    assert service.crypto.groups.current(room_id).message_count == 2  # type: ignore[union-attr]

    await carol_peer.client.room_leave(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(carol.user_id) == "leave")
    service.send_text(room_id, "three")
    await peer.wait_for_text(room_id, "three")
    assert service.crypto.groups.current(room_id).id != first_session  # type: ignore[union-attr]


async def test_room_rotation_period_is_honoured(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    await peer.client.room_put_state(
        room_id,
        "m.room.encryption",
        {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 2},
    )
    service, _recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    await wait_until(
        lambda: (
            service.states[room_id].content("m.room.encryption").get("rotation_period_msgs") == 2
        )
    )
    sessions = []
    for body in ("a", "b", "c"):
        service.send_text(room_id, body)
        await peer.wait_for_text(room_id, body)
        sessions.append(service.crypto.groups.current(room_id).id)  # type: ignore[union-attr]
    assert sessions[0] == sessions[1] != sessions[2]


async def test_a_members_new_device_gets_the_current_session(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    service, _recorder = await _service_in_room(
        synapse, profile, alice, peer, room_id, start_service
    )
    service.send_text(room_id, "before the new device")
    await peer.wait_for_text(room_id, "before the new device")
    session_id = service.crypto.groups.current(room_id).id  # type: ignore[union-attr]

    second_device: NioPeer = await peer_factory(bob)  # bob logs in again
    await wait_until(
        lambda: (
            any(
                d.id == second_device.client.device_id
                for d in service.crypto.olm.device_store.active_user_devices(bob.user_id)  # type: ignore[union-attr]
            )
            or service.crypto.olm.users_for_key_query
        ),  # type: ignore[union-attr]
        timeout=20,
    )
    service.send_text(room_id, "after the new device")
    assert await second_device.wait_for_text(room_id, "after the new device") == alice.user_id
    # Same session, shared from its current index: no rotation was needed.
    assert service.crypto.groups.current(room_id).id == session_id  # type: ignore[union-attr]


async def test_fallback_key_is_published_and_one_time_keys_are_replenished(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    session = profile.load_session()
    assert session is not None

    def server_view() -> dict[str, Any]:
        # A fresh filter each time: Synapse caches identical sync requests.
        limit = uuid.uuid4().int % 1000 + 1
        query = urlencode(
            {"timeout": 0, "filter": json.dumps({"room": {"timeline": {"limit": limit}}})}
        )
        _, body = synapse._request(
            "GET", f"/_matrix/client/v3/sync?{query}", token=session.access_token
        )
        return body

    view = server_view()
    assert view["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert view["device_one_time_keys_count"]["signed_curve25519"] == 50

    # Someone claims every one-time key, then the fallback key.
    for _ in range(51):
        synapse._request(
            "POST",
            "/_matrix/client/v3/keys/claim",
            {"one_time_keys": {alice.user_id: {session.device_id: "signed_curve25519"}}},
            token=bob.access_token,
        )
    view = server_view()
    assert view["device_unused_fallback_key_types"] == []
    assert view["device_one_time_keys_count"].get("signed_curve25519", 0) == 0

    await start_service(profile, Recorder())
    await wait_until(
        lambda: (
            server_view()["device_one_time_keys_count"].get("signed_curve25519", 0) >= 25
            and server_view()["device_unused_fallback_key_types"] == ["signed_curve25519"]
        )
    )


async def test_keys_generated_for_an_upload_survive_a_kill_before_the_answer(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    from tuichat.matrix.transport.client import build_client

    await log_in(synapse, profile, new_user("alice"))
    session = profile.load_session()
    assert session is not None

    def open_client() -> Any:
        client = build_client(profile, session)
        client.restore_login(session.user_id, session.device_id, session.access_token)
        return client

    client = open_client()
    identity = dict(client.olm.account.identity_keys)
    client.olm.uploaded_key_count = 0  # the server says: no one-time keys left
    content = client.olm.share_keys()  # ...and the request "goes out"; we die
    sent = set(content["one_time_keys"])
    client.extras.close()

    revived = open_client()  # the next start
    assert revived.olm.account.identity_keys == identity
    revived.olm.uploaded_key_count = 0
    again = revived.olm.share_keys()
    assert set(again["one_time_keys"]) == sent, "different keys would orphan the uploaded ones"
    revived.extras.close()


async def test_history_visibility_change_rotates_the_session(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    service, _ = await _service_in_room(synapse, profile, alice, peer, room_id, start_service)
    service.send_text(room_id, "before")
    await peer.wait_for_text(room_id, "before")
    before = service.crypto.groups.current(room_id).id  # type: ignore[union-attr]
    await peer.client.room_put_state(
        room_id, "m.room.history_visibility", {"history_visibility": "joined"}
    )
    await wait_until(
        lambda: (
            service.states[room_id].content("m.room.history_visibility").get("history_visibility")
            == "joined"
        )
    )
    assert service.crypto.groups.current(room_id) is None
    service.send_text(room_id, "after")
    await peer.wait_for_text(room_id, "after")
    assert service.crypto.groups.current(room_id).id != before  # type: ignore[union-attr]
