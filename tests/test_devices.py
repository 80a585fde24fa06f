"""Devices, fingerprints, trust and emoji verification, against the real
Synapse, with nio peers and the matrix-js-sdk peer (Element's stack)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.model.devices import Trust, format_fingerprint
from tuichat.model.events import TimelineAppended, VerificationChanged
from tuichat.model.verification import Phase

Peers = Callable[..., Any]


def _views(recorder: Recorder, txn: str | None = None) -> list[Any]:
    return [
        e.view
        for e in recorder.events
        if isinstance(e, VerificationChanged) and (txn is None or e.view.transaction_id == txn)
    ]


async def _room_with(
    service: MatrixService, recorder: Recorder, peer: Any, alice: Any, *, js: bool = False
) -> str:
    room_id = await service.create_room(invite=(peer.user_id,))
    assert room_id is not None
    await peer.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(peer.user_id) == "join", 30)
    return room_id


def test_fingerprints_are_grouped_in_fours() -> None:
    assert format_fingerprint("abcdefghij") == "abcd efgh ij"


async def test_device_lists_and_fingerprints_match_what_peers_report(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    js_peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    service = await start_service(profile, Recorder())
    await service.first_sync_done.wait()
    nio_peer: NioPeer = await peer_factory(bob)

    devices = await service.devices(bob.user_id)
    peer_device = next(d for d in devices if d.device_id == nio_peer.client.device_id)
    assert peer_device.ed25519 == nio_peer.client.olm.account.identity_keys["ed25519"]
    assert peer_device.curve25519 == nio_peer.client.olm.account.identity_keys["curve25519"]
    assert peer_device.trust is Trust.UNVERIFIED
    assert peer_device.display_name == "nio-peer"

    own = await service.devices(alice.user_id)
    assert own[0].this_device and own[0].device_id == service.session.device_id
    assert own[0].ed25519 == service.crypto.olm.account.identity_keys["ed25519"]  # type: ignore[union-attr]
    # Synapse records where devices were seen in batches, every few seconds.
    for _ in range(100):
        own = await service.devices(alice.user_id)
        if own[0].last_seen_ip:
            break
        await asyncio.sleep(0.2)
    assert own[0].last_seen_ip == "127.0.0.1" and own[0].last_seen_ts

    if not __import__("tests.js_peer").js_peer.js_peer_available():
        return
    js: JsPeer = await js_peer_factory(carol)
    # The Rust crypto uploads its device keys just after login.
    for _ in range(100):
        devices = await service.devices(carol.user_id, refresh=True)
        if any(d.device_id == js.device_id for d in devices):
            break
        await asyncio.sleep(0.2)
    js_device = next(d for d in devices if d.device_id == js.device_id)
    assert (js_device.ed25519, js_device.curve25519) == (js.ed25519, js.curve25519)
    # And the other way round: the js peer sees our device with our keys.
    reported = await js.device_keys(alice.user_id)
    ours = next(d for d in reported if d["device_id"] == service.session.device_id)
    assert ours["ed25519"] == own[0].ed25519 and ours["curve25519"] == own[0].curve25519


def test_cli_prints_this_devices_fingerprint(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    import asyncio

    asyncio.run(log_in(synapse, profile, new_user("alice")))
    session = profile.load_session()
    assert session is not None
    result = subprocess.run(
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), "devices"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert session.device_id in result.stdout and "This device" in result.stdout
    from tuichat.matrix.transport.client import build_client

    client = build_client(profile, session)
    client.restore_login(session.user_id, session.device_id, session.access_token)
    key = client.olm.account.identity_keys["ed25519"]
    client.extras.close()
    assert format_fingerprint(key) in result.stdout


async def test_a_new_device_of_a_member_is_announced_in_the_room(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    peer: NioPeer = await peer_factory(bob)
    room_id = await _room_with(service, recorder, peer, alice)
    service.send_text(room_id, "hi")
    await peer.wait_for_text(room_id, "hi")

    second: NioPeer = await peer_factory(bob)
    notice = await wait_until(
        lambda: next(
            (
                item
                for e in recorder.events
                if isinstance(e, TimelineAppended) and e.room_id == room_id
                for item in e.items
                if item.key == f"notice:newdevice:{bob.user_id}:{second.client.device_id}"
            ),
            None,
        ),
        30,
    )
    assert "Bob signed in on a new device" in notice.body
    summary = await wait_until(lambda: recorder.rooms()[room_id].unverified_devices == 2, 30)
    assert summary


async def test_blacklisted_devices_get_no_key_and_verified_only_skips_unverified(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice"), new_user("bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    bob_peer: NioPeer = await peer_factory(bob)
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await _room_with(service, recorder, bob_peer, alice)
    assert await service.invite(room_id, carol.user_id)
    await carol_peer.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(carol.user_id) == "join")
    service.send_text(room_id, "everyone")
    await bob_peer.wait_for_text(room_id, "everyone")
    await carol_peer.wait_for_text(room_id, "everyone")
    before = service.crypto.groups.current(room_id).id  # type: ignore[union-attr]

    assert service.set_device_trust(bob.user_id, bob_peer.client.device_id, "blacklist")
    assert service.crypto.groups.current(room_id) is None, "blacklisting must rotate"  # type: ignore[union-attr]
    service.send_text(room_id, "not for bob's device")
    await carol_peer.wait_for_text(room_id, "not for bob's device")
    assert service.crypto.groups.current(room_id).id != before  # type: ignore[union-attr]
    await wait_until(lambda: len(bob_peer.undecryptable) == 1)
    assert not [m for m in bob_peer.messages if m[2] == "not for bob's device"]

    # Only verified devices: Carol's unverified device is skipped too, until verified.
    service.set_verified_only(room_id, True)
    await wait_until(lambda: recorder.rooms()[room_id].verified_only)
    service.send_text(room_id, "verified only")
    await wait_until(lambda: len(carol_peer.undecryptable) == 1)
    assert service.verify_device(carol.user_id, carol_peer.client.device_id)
    service.send_text(room_id, "now carol is verified")
    await carol_peer.wait_for_text(room_id, "now carol is verified")
    # Bob's blacklisted device never gets a key: all three stay locked.
    await wait_until(lambda: len(bob_peer.undecryptable) == 3)
    assert not [m for m in bob_peer.messages if m[2] != "everyone"]


async def test_emoji_verification_with_a_nio_peer_over_the_older_flow(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    peer: NioPeer = await peer_factory(bob)
    await service.devices(bob.user_id)
    peer.client.olm.users_for_key_query.add(alice.user_id)
    await peer.client.keys_query()

    txn = await service.start_legacy_verification(bob.user_id, peer.client.device_id)
    assert txn == await peer.answer_verification()
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None)
    )
    assert view.decimals == await peer.decimals(txn), "both sides must show the same numbers"
    await peer.confirm_verification(txn)
    await service.confirm_verification(txn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE)
    await wait_until(lambda: peer.verified(txn))
    infos = await service.devices(bob.user_id)
    assert next(d for d in infos if d.device_id == peer.client.device_id).trust is Trust.VERIFIED


async def _js_setup(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Peers,
    start_service: ServiceFactory,
) -> tuple[MatrixService, Recorder, JsPeer, Any]:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    js: JsPeer = await js_peer_factory(bob)
    # The Rust crypto ignores requests from devices of users it does not
    # track, and it tracks the members of encrypted rooms it shares.
    room_id = await _room_with(service, recorder, js, alice)
    service.send_text(room_id, "let's verify")
    await js.wait_for_message(room_id, "let's verify")
    await service.devices(bob.user_id)
    return service, recorder, js, alice


@requires_js_peer
async def test_emoji_verification_with_the_js_peer_started_by_tuichat(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    service, recorder, js, alice = await _js_setup(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    txn = await service.request_verification(js.user_id, js.device_id)
    accepted = await js.accept_verification()
    assert accepted["transaction_id"] == txn
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None), 30
    )
    theirs = await js.wait_sas(txn)
    assert [name for _, name in view.emoji] == [name for _, name in theirs["emoji"]]
    assert [emoji for emoji, _ in view.emoji] == [emoji for emoji, _ in theirs["emoji"]]
    assert list(view.decimals) == list(theirs["decimals"])
    await js.confirm_sas(txn)
    await service.confirm_verification(txn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE, 30)
    await js.verification_state(txn, wait_for="done")
    assert await js.is_verified(alice.user_id, service.session.device_id)
    infos = await service.devices(js.user_id)
    assert next(d for d in infos if d.device_id == js.device_id).trust is Trust.VERIFIED


@requires_js_peer
async def test_emoji_verification_with_the_js_peer_started_by_js(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    service, recorder, js, alice = await _js_setup(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    txn = await js.request_verification(alice.user_id, service.session.device_id)
    incoming = await wait_until(lambda: _views(recorder, txn), 30)
    assert incoming[0].phase is Phase.REQUESTED and not incoming[0].we_requested
    await service.accept_verification(txn)
    await js.start_sas(txn)
    view = await wait_until(
        lambda: next((v for v in _views(recorder, txn) if v.phase is Phase.SHOW_SAS), None), 30
    )
    theirs = await js.wait_sas(txn)
    assert [name for _, name in view.emoji] == [name for _, name in theirs["emoji"]]
    await service.confirm_verification(txn)
    await js.confirm_sas(txn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE, 30)
    await js.verification_state(txn, wait_for="done")
    assert await js.is_verified(alice.user_id, service.session.device_id)


@requires_js_peer
async def test_emoji_mismatch_cancels_on_both_sides(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    service, recorder, js, alice = await _js_setup(
        synapse, new_user, profile, js_peer_factory, start_service
    )
    txn = await service.request_verification(js.user_id, js.device_id)
    await js.accept_verification()
    await wait_until(lambda: any(v.phase is Phase.SHOW_SAS for v in _views(recorder, txn)), 30)
    await js.wait_sas(txn)
    await service.reject_verification(txn)
    last = _views(recorder, txn)[-1]
    assert last.phase is Phase.CANCELLED and last.cancel_code == "m.mismatched_sas"
    state = await js.verification_state(txn, wait_for="cancelled")
    assert state["cancelled"] or state["phase"] == 4
    assert not await js.is_verified(alice.user_id, service.session.device_id)
    infos = await service.devices(js.user_id)
    assert next(d for d in infos if d.device_id == js.device_id).trust is Trust.UNVERIFIED


async def test_changed_identity_keys_are_flagged_and_not_encrypted_to(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
    start_service: ServiceFactory,
) -> None:
    """Unit-level: a key query reporting new keys for a known device (as a
    compromised server would) is fed to the Olm machine as nio parses it."""
    from nio import KeysQueryResponse

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    peer: NioPeer = await peer_factory(bob)
    room_id = await _room_with(service, recorder, peer, alice)
    device_id = peer.client.device_id
    original = await service.devices(bob.user_id)
    old_key = next(d for d in original if d.device_id == device_id).curve25519

    olm = service.crypto.olm  # type: ignore[union-attr]
    impostor = __import__("vodozemac").Account()
    payload = {
        "user_id": bob.user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device_id}": impostor.curve25519_key.to_base64(),
            f"ed25519:{device_id}": next(d for d in original if d.device_id == device_id).ed25519,
        },
    }
    payload["signatures"] = {}  # unsigned: nio itself would drop it; the check comes first
    response = KeysQueryResponse({bob.user_id: {device_id: payload}}, {})
    olm._handle_key_query(response)
    service.parts.trust.report_device_news()
    infos = await service.devices(bob.user_id)
    flagged = next(d for d in infos if d.device_id == device_id)
    assert flagged.trust is Trust.KEYS_CHANGED
    assert flagged.curve25519 == old_key, "the trusted key is kept"
    warning = await wait_until(
        lambda: next(
            (
                i
                for e in recorder.events
                if isinstance(e, TimelineAppended) and e.room_id == room_id
                for i in e.items
                if i.key.startswith("notice:keyschanged")
            ),
            None,
        )
    )
    assert "no longer encrypts to it" in warning.body
    device = olm.device_store[bob.user_id][device_id]
    assert not service.crypto.may_receive_keys(device, room_id)  # type: ignore[union-attr]


@requires_js_peer
async def test_devices_screen_and_verification_dialog(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Peers,
) -> None:
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.devices import DevicesScreen
    from tuichat.ui.screens.verification import VerificationDialog

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        service = app.service
        assert service is not None
        room_id = await service.create_room(invite=(bob.user_id,))
        await js.join(room_id)
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await type_text(pilot, "hello")
        await js.wait_for_message(room_id, "hello")

        await type_text(pilot, f"/devices {bob.user_id}")
        screen = await wait_ui(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        await wait_ui(pilot, lambda: screen.selected is not None)
        assert screen.selected.device_id == js.device_id
        assert screen.selected.fingerprint == format_fingerprint(js.ed25519)
        await pilot.press("b")
        await wait_ui(pilot, lambda: screen.selected.trust is Trust.BLACKLISTED)
        await pilot.press("n")
        await wait_ui(pilot, lambda: screen.selected.trust is Trust.UNVERIFIED)
        await pilot.press("escape")

        txn = await js.request_verification(alice.user_id, service.session.device_id)
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 30
        )
        # The dialog may be on the stack a moment before its widgets exist.
        await wait_ui(
            pilot,
            lambda: any("wants to verify" in str(w.render()) for w in dialog.query("#state")),
        )
        await pilot.click("#accept")
        await js.start_sas(txn)
        theirs = await js.wait_sas(txn)
        await wait_ui(pilot, lambda: dialog.view.phase is Phase.SHOW_SAS, 30)
        shown = str(dialog.query_one("#sas").render())
        assert all(name[:12] in shown for _, name in theirs["emoji"])
        await js.confirm_sas(txn)
        await pilot.click("#match")
        await wait_ui(pilot, lambda: dialog.view.phase is Phase.DONE, 30)
        assert "Verified" in str(dialog.query_one("#state").render())
        await js.verification_state(txn, wait_for="done")
        await pilot.click("#close")
        await wait_ui(pilot, lambda: "all devices verified" in str(app.main.header.render()), 30)


async def test_verifying_a_device_by_hand_asks_before_trusting_it(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """`v` in the Devices screen used to verify at once: one stray key gave
    trust. It asks first; only "yes" verifies."""
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.confirm import ConfirmDialog
    from tuichat.ui.screens.devices import DevicesScreen

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        assert app.service is not None
        room_id = await app.service.create_room(invite=(bob.user_id,))
        assert room_id is not None
        await peer.join(room_id)
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await type_text(pilot, f"/devices {bob.user_id}")
        screen = await wait_ui(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        await wait_ui(pilot, lambda: screen.selected is not None, 30)
        assert screen.selected.trust is Trust.UNVERIFIED
        await pilot.press("v")
        dialog = await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen)
        assert screen.selected.fingerprint in str(dialog.query_one("Static").render()) or any(
            screen.selected.fingerprint in str(w.render()) for w in dialog.query("Static")
        )
        await pilot.press("enter")  # the focus is on "Cancel"
        await wait_ui(pilot, lambda: app.screen is screen)
        await pilot.pause(0.5)
        assert screen.selected.trust is Trust.UNVERIFIED
        await pilot.press("v")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_ui(pilot, lambda: screen.selected.trust is Trust.VERIFIED, 30)


async def test_no_answer_has_the_focus_while_comparing_emoji(tmp_path: Any) -> None:
    """Enter in the emoji dialog must not say "They match" (it had the focus)."""
    from tests.test_look_and_feel import offline_profile
    from tuichat.model.verification import VerificationView
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.verification import VerificationDialog

    app = TuichatApp(offline_profile(tmp_path), connect=False)
    choices: list[str] = []
    async with app.run_test(
        size=(120, 30),
        message_hook=lambda m: (
            choices.append(m.choice) if isinstance(m, VerificationDialog.Choice) else None
        ),
    ) as pilot:
        view = VerificationView(
            "txn",
            "@bob:example.org",
            "BOBDEVICE",
            we_requested=True,
            phase=Phase.SHOW_SAS,
            emoji=[("🐶", "Dog")] * 7,
        )
        dialog = VerificationDialog(view, "Bob")
        await app.push_screen(dialog)
        await pilot.pause()
        assert getattr(dialog.focused, "id", None) not in ("match", "mismatch")
        await pilot.press("enter")
        await pilot.pause()
        assert choices == []
        await pilot.click("#match")
        await pilot.pause()
        assert set(choices) == {"match"}


async def test_devices_screen_of_a_member_whose_keys_are_known_fills_in_without_refresh(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
) -> None:
    """`/devices @them` for someone whose keys tuichat already holds (an
    encrypted room in common, a message sent to them) is answered without a
    request to the server: the screen must show the devices all the same,
    not stay on "Loading…" until `r` is pressed."""
    from textual.widgets import DataTable

    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.devices import DevicesScreen

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id), 30)
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id, 30)
        await type_text(pilot, "hello")
        await peer.wait_for_text(room_id, "hello", 30)
        service = app.service
        assert service is not None
        olm = service.crypto.olm  # type: ignore[union-attr]
        await wait_ui(
            pilot,
            lambda: bob.user_id in olm.tracked_users and bob.user_id not in olm.users_for_key_query,
        )

        await type_text(pilot, f"/devices {bob.user_id}")
        screen = await wait_ui(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        table = screen.query_one(DataTable)
        await wait_ui(pilot, lambda: table.row_count == 1, 10)
        assert table.get_row_at(0)[0].plain == peer.client.device_id
        # Someone else's devices: no "this device" box, so no "Loading…" left.
        assert not screen.query_one("#this-device").display


async def test_devices_screen_closed_before_its_devices_arrive_is_no_error(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Peers,
) -> None:
    """Escape while a refresh is on its way to the server: the answer comes
    to a screen that is gone. It has nothing to fill, and that is no
    failure (no exception for the App to report)."""
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.model.sanitize import safe_line
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.devices import DevicesScreen

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id), 30)
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id, 30)
        await type_text(pilot, f"/devices {bob.user_id}")
        screen = await wait_ui(pilot, lambda: isinstance(app.screen, DevicesScreen) and app.screen)
        await wait_ui(pilot, lambda: screen.selected is not None)
        assert app.service is not None
        devices = await app.service.devices(bob.user_id, refresh=True)

        await pilot.press("escape")
        assert not isinstance(app.screen, DevicesScreen)
        # What the refresh's worker does with its answer, now.
        screen.show_devices(devices)
        screen.show_identity(app.service.identity_state(bob.user_id))
        screen.show_status(safe_line("late"))
