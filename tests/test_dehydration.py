"""Dehydrated devices (MSC3814): the formats, and room keys sent while no
device of the account exists, read after a new login with the recovery key,
between tuichat and Element's stack (the matrix-js-sdk peer) in both
directions, against Synapse with MSC3814 on."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import vodozemac

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.login import logout
from tuichat.matrix.account.session import Profile
from tuichat.matrix.crypto.cross_signing import verify_signature
from tuichat.matrix.crypto.dehydration import (
    ALGORITHM_V1,
    ALGORITHM_V2,
    DehydrationError,
    DeviceSecrets,
    RehydratedDevice,
    account_from_device_data,
    decode_v2,
    encode_v2,
    key_to_secret,
    legacy_pickle_key,
    libolm_pickle,
    new_device,
    new_key,
)
from tuichat.matrix.service import Failed, MatrixService
from tuichat.model.dehydration import DehydrationState
from tuichat.model.events import Notice
from tuichat.model.items import ItemKind

JsPeers = Callable[..., Any]
USER = "@alice:localhost"


# -- formats --------------------------------------------------------------------------


def test_v2_round_trip_and_a_wrong_key_or_damage_refused() -> None:
    device, key = DeviceSecrets.generate(5), new_key()
    data = encode_v2(device, key)
    assert data["algorithm"] == ALGORITHM_V2 and "=" not in data["nonce"]
    assert decode_v2(data, key) == device
    with pytest.raises(DehydrationError, match="does not open"):
        decode_v2(data, new_key())
    raw = bytearray(base64.b64decode(data["device_pickle"] + "=="))
    raw[3] ^= 1
    damaged = {**data, "device_pickle": base64.b64encode(bytes(raw)).decode()}
    with pytest.raises(DehydrationError, match="does not open"):
        decode_v2(damaged, key)
    with pytest.raises(DehydrationError):
        account_from_device_data({"algorithm": "org.example.other"}, key, "D")
    assert "one-time" in repr(device) and device.curve25519.hex() not in repr(device)


def test_the_older_v1_format_is_read_with_its_per_device_key() -> None:
    device, key = DeviceSecrets.generate(3), new_key()
    account = account_from_device_data(encode_v2(device, key), key, "ignored")
    device_id = account.curve25519_key.to_base64()
    pickle = libolm_pickle(device, legacy_pickle_key(key, device_id), published=True)
    data = {"algorithm": ALGORITHM_V1, "device_pickle": pickle}
    rehydrated = account_from_device_data(data, key, device_id)
    assert rehydrated.ed25519_key.to_base64() == account.ed25519_key.to_base64()
    # The per-device key: the same pickle under another device id does not open.
    with pytest.raises(DehydrationError, match="does not open"):
        account_from_device_data(data, key, "another device")


def test_a_new_device_is_signed_and_its_room_keys_read_only_when_meant_for_it() -> None:
    key = new_key()
    made = new_device(USER, key, None)
    keys = made.body["device_keys"]
    ed25519 = keys["keys"][f"ed25519:{made.device_id}"]
    assert keys["dehydrated"] is True and keys["keys"][f"curve25519:{made.device_id}"] == (
        made.device_id
    )
    assert verify_signature(keys, USER, f"ed25519:{made.device_id}", ed25519)
    assert len(made.body["one_time_keys"]) == 50 and len(made.body["fallback_keys"]) == 1
    for signed in [*made.body["one_time_keys"].values(), *made.body["fallback_keys"].values()]:
        assert verify_signature(signed, USER, f"ed25519:{made.device_id}", ed25519)

    sender = vodozemac.Account()
    one_time_key = next(iter(made.body["one_time_keys"].values()))["key"]
    session = sender.create_outbound_session(
        vodozemac.Curve25519PublicKey.from_base64(made.device_id),
        vodozemac.Curve25519PublicKey.from_base64(one_time_key),
    )

    def olm_event(payload: dict[str, Any], sender_id: str = "@bob:localhost") -> dict[str, Any]:
        kind, body = session.encrypt(json.dumps(payload).encode()).to_parts()
        return {
            "type": "m.room.encrypted",
            "sender": sender_id,
            "content": {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": sender.curve25519_key.to_base64(),
                "ciphertext": {
                    made.device_id: {"type": kind, "body": base64.b64encode(body).decode()}
                },
            },
        }

    def room_key(**changes: Any) -> dict[str, Any]:
        return {
            "type": "m.room_key",
            "sender": "@bob:localhost",
            "recipient": USER,
            "recipient_keys": {"ed25519": ed25519},
            "keys": {"ed25519": sender.ed25519_key.to_base64()},
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": "!room",
                "session_id": "S",
                "session_key": "K",
            },
            **changes,
        }

    events = [
        olm_event(room_key()),
        olm_event(room_key(recipient="@mallory:localhost")),  # not for us
        olm_event(room_key(recipient_keys={"ed25519": "another device"})),
        olm_event(room_key(), sender_id="@mallory:localhost"),  # the sender lies
        {"type": "m.room.encrypted", "sender": "@bob:localhost", "content": {}},
    ]
    account = account_from_device_data(made.body["device_data"], key, made.device_id)
    rehydrated = RehydratedDevice(USER, made.device_id, account)
    found = rehydrated.room_keys(events)
    assert [(k.room_id, k.session_id, k.sender) for k in found] == [
        ("!room", "S", "@bob:localhost")
    ]
    assert found[0].sender_key == sender.curve25519_key.to_base64()


def test_the_devices_line_says_what_there_is() -> None:
    assert "D1" in DehydrationState(True, True, "D1", True).line()
    assert "/dehydration is off" in DehydrationState(False, True, "D1", True).line()
    assert "/recover" in DehydrationState(True, True, None, False).line()
    assert "cannot keep one" in DehydrationState(True, False, None, False).line()


# -- against Synapse, with Element's stack ------------------------------------------------


def _dehydrated(synapse: LocalSynapse, user: RegisteredUser) -> dict[str, Any] | None:
    status, body = synapse._request(
        "GET",
        "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
        token=user.access_token,
    )
    if status == 404 and body.get("errcode") == "M_NOT_FOUND":
        return None
    assert status == 200, body
    return body


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


async def _tuichat_with_recovery(
    synapse: LocalSynapse, user: RegisteredUser, profile: Profile, start_service: ServiceFactory
) -> tuple[MatrixService, Recorder, str]:
    """A tuichat device that sets recovery up (and so a dehydrated device)."""
    await log_in(synapse, profile, user)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    recovery_key = await service.setup_recovery(password=user.password)
    assert isinstance(recovery_key, str), recovery_key
    return service, recorder, recovery_key


async def _sign_out(service: MatrixService, profile: Profile) -> None:
    await service.stop()
    await logout(profile)


async def _read_after_new_login(
    synapse: LocalSynapse,
    user: RegisteredUser,
    profile: Profile,
    start_service: ServiceFactory,
    room_id: str,
    bodies: list[str],
    recovery_key: str,
    events_page: int | None = None,
    interrupt_at_page: int | None = None,
) -> tuple[MatrixService, Recorder]:
    """A new tuichat login: the messages wait for their keys until the
    recovery key is entered, then read with the dehydrated device's keys
    (its to-device messages fetched `events_page` at a time; the connection
    lost once at page `interrupt_at_page`, the device is read again by the
    upkeep)."""
    await log_in(synapse, profile, user)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(
        lambda: (
            len([i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE])
            == len(bodies)
        ),
        30,
    )
    part = service.parts.dehydration
    part.events_page = events_page
    if interrupt_at_page is not None:
        http = part.crypto.http
        real_request, pages = http.request, []

        async def request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            if path.endswith("/events"):
                pages.append(path)
                if len(pages) == interrupt_at_page:
                    raise aiohttp.ClientConnectionError("connection lost (the test)")
            return await real_request(method, path, *args, **kwargs)

        http.request = request  # type: ignore[method-assign]
        before = _dehydrated(synapse, user)
    result = await service.recover(recovery_key=recovery_key)
    assert not isinstance(result, Failed), result
    if interrupt_at_page is not None:
        assert any(
            isinstance(e, Notice) and "could not be read yet" in e.text for e in recorder.events
        )
        assert _dehydrated(synapse, user) == before  # left to be read again
        assert not recorder.text_from(room_id, bodies[0])
        part._next_check_ms = 0
        await part.upkeep()
    for body in bodies:
        item = await wait_until(lambda body=body: recorder.text_from(room_id, body), 30)
        assert item.key_source == "dehydrated"
    told = f"dehydrated device received {len(bodies)} room key(s)"
    assert any(isinstance(e, Notice) and told in e.text for e in recorder.events)
    return service, recorder


@requires_js_peer
async def test_keys_sent_while_signed_out_are_read_after_a_new_tuichat_login(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    first = Profile(tmp_path / "first")
    service, recorder, recovery_key = await _tuichat_with_recovery(
        synapse, alice, first, start_service
    )
    made = _dehydrated(synapse, alice)
    assert made is not None and made["device_data"]["algorithm"] == ALGORITHM_V2
    state = await service.dehydration_state()
    assert isinstance(state, DehydrationState)
    assert state.device_id == made["device_id"] and state.key_held and state.enabled

    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="While away")
    await _joined(service, recorder, room_id)
    await js.wait_for_member(room_id, alice.user_id)
    await _sign_out(service, first)
    # Two room keys, one page each: the second Olm message is again a
    # pre-key message of the same session (the device never answered).
    await js.send(room_id, "sent while no tuichat device existed")
    await js.discard_room_key(room_id)
    await js.send(room_id, "and a second, with a new room key")

    second, second_recorder = await _read_after_new_login(
        synapse,
        alice,
        Profile(tmp_path / "second"),
        start_service,
        room_id,
        ["sent while no tuichat device existed", "and a second, with a new room key"],
        recovery_key,
        events_page=1,
        interrupt_at_page=2,
    )
    # Deleted once read, and a new one kept in its place; nobody is told of
    # it as of someone signing in.
    replaced = _dehydrated(synapse, alice)
    assert replaced is not None and replaced["device_id"] != made["device_id"]
    await wait_until(
        lambda: [
            d
            for d in second.parts.trust.crypto.device_infos(alice.user_id)  # type: ignore[union-attr]
            if d.device_id == replaced["device_id"]
        ],
        30,
    )
    await asyncio.sleep(3)  # upkeep rounds, which tell of new devices
    assert not [i for i in second_recorder.items(room_id) if replaced["device_id"] in i.key]

    # Off: the device is deleted and the setting stays in the profile.
    said = await second.set_dehydration(False)
    assert isinstance(said, str) and "off" in said
    assert _dehydrated(synapse, alice) is None
    state = await second.dehydration_state()
    assert isinstance(state, DehydrationState) and not state.enabled and state.device_id is None
    said = await second.set_dehydration(True)
    assert isinstance(said, str) and "receives room keys" in said
    assert _dehydrated(synapse, alice) is not None


async def test_replaced_after_a_week_but_never_with_a_key_secret_storage_lost(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = new_user("alice", "Alice")
    service, recorder, _recovery_key = await _tuichat_with_recovery(
        synapse, alice, profile, start_service
    )
    part = service.parts.dehydration
    made = _dehydrated(synapse, alice)
    assert made is not None
    # The dehydration key lies in the profile only sealed, and is never logged.
    key = part._held_key()
    assert key is not None
    shapes = [key, key_to_secret(key).encode(), key_to_secret(key).rstrip("=").encode()]
    service.crypto.extras.flush(wait=True)  # type: ignore[union-attr]
    for path in profile.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [shape for shape in shapes if shape in data], path

    async def upkeep_at(days: float) -> None:
        part._clock = lambda: time.time() + days * 86400
        part._next_check_ms = 0
        await part.upkeep()

    await upkeep_at(1)
    assert _dehydrated(synapse, alice) == made  # not due yet
    await upkeep_at(8)
    week_later = _dehydrated(synapse, alice)
    assert week_later is not None and week_later["device_id"] != made["device_id"]

    # Another device puts a new dehydration key in secret storage: the copy
    # held here no longer matches, so it is not used again.
    status, body = synapse._request(
        "PUT",
        f"/_matrix/client/v3/user/{quote(alice.user_id)}/account_data/org.matrix.msc3814",
        {"encrypted": {"other": {"iv": "AA", "ciphertext": "AA", "mac": "AA"}}},
        token=alice.access_token,
    )
    assert status == 200, body
    await upkeep_at(16)
    assert _dehydrated(synapse, alice) == week_later
    assert any(
        isinstance(e, Notice) and "changed on another device" in e.text for e in recorder.events
    )
    state = await service.dehydration_state()
    assert isinstance(state, DehydrationState) and not state.key_held
    assert "dehydrated device" in caplog.text
    assert not [shape for shape in shapes if shape.decode("latin-1") in caplog.text]


@requires_js_peer
async def test_element_rehydrates_a_device_tuichat_made(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    profile = Profile(tmp_path / "tuichat")
    service, recorder, recovery_key = await _tuichat_with_recovery(
        synapse, alice, profile, start_service
    )
    made = _dehydrated(synapse, alice)
    assert made is not None
    sender: JsPeer = await js_peer_factory(bob)
    room_id = await sender.create_room(invite=[alice.user_id], name="Element reads it")
    await _joined(service, recorder, room_id)
    await sender.wait_for_member(room_id, alice.user_id)
    await _sign_out(service, profile)
    await sender.send(room_id, "for the device tuichat dehydrated")

    element: JsPeer = await js_peer_factory(alice, "element-alice")
    outcome = await element.start_dehydration(recovery_key=recovery_key)
    assert outcome["error"] is None and outcome["rehydrated"], outcome
    assert outcome["room_keys"] >= 1
    message = await element.wait_for_message(room_id, "for the device tuichat dehydrated")
    assert message["encrypted"] and message["sender"] == bob.user_id
    # Element keeps a new one, made with the key tuichat put in secret storage.
    now = await element.dehydrated_device()
    assert now is not None and now["device_id"] != made["device_id"]


@requires_js_peer
async def test_tuichat_rehydrates_a_device_element_made(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    element: JsPeer = await js_peer_factory(alice, "element-alice")
    recovery_key = (await element.bootstrap_recovery())["recovery_key"]
    outcome = await element.start_dehydration(rehydrate=False)
    assert outcome["error"] is None, outcome
    made = await element.dehydrated_device()
    assert made is not None and made["algorithm"] == ALGORITHM_V2

    sender: JsPeer = await js_peer_factory(bob)
    room_id = await sender.create_room(invite=[alice.user_id], name="tuichat reads it")
    await element.join(room_id)
    await sender.wait_for_member(room_id, alice.user_id)
    await element.logout()
    await sender.send(room_id, "for the device Element dehydrated")

    service, _recorder = await _read_after_new_login(
        synapse,
        alice,
        Profile(tmp_path / "tuichat"),
        start_service,
        room_id,
        ["for the device Element dehydrated"],
        recovery_key,
    )
    replaced = _dehydrated(synapse, alice)
    assert replaced is not None and replaced["device_id"] != made["device_id"]
    state = await service.dehydration_state()
    assert isinstance(state, DehydrationState) and state.device_id == replaced["device_id"]


# -- the command and the Devices screen -------------------------------------------------


async def test_the_dehydration_command_and_the_devices_line(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    """Without recovery: the setting is kept and said back, and the Devices
    screen of your own account says what is missing."""
    from textual.widgets import Static

    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.devices import DevicesScreen
    from tuichat.ui.widgets.status_line import Feedback

    alice = new_user("alice")
    await log_in(synapse, profile, alice)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        feedback = app.query_one(Feedback)

        async def devices_line() -> str:
            await type_text(pilot, "/devices")
            screen = await wait_ui(
                pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen
            )
            line = await wait_ui(
                pilot,
                lambda: (
                    "Dehydrated device"
                    in (text := str(screen.query_one("#dehydrated", Static).render()))
                    and text
                ),
            )
            await pilot.press("escape")
            return str(line)

        await type_text(pilot, "/dehydration off")
        await wait_ui(pilot, lambda: "Dehydration is off" in str(feedback.render()))
        assert "/dehydration on to keep one" in await devices_line()
        await type_text(pilot, "/dehydration on")
        await wait_ui(pilot, lambda: "Enter your recovery key" in str(feedback.render()))
        assert "enter recovery (/recover)" in await devices_line()
        await type_text(pilot, "/dehydration maybe")
        await wait_ui(pilot, lambda: "/dehydration on|off" in str(feedback.render()))
