"""Verification by QR code: the payload, the flow of the side that shows the
code, the dialog that draws it, and the whole exchange with Element's stack
(the js peer scans what tuichat drew)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import vodozemac

from tests.js_peer import requires_js_peer
from tests.qr_screen import decode_drawn_qr
from tuichat.matrix.crypto.qr_verification import (
    QR_SCAN,
    QR_SHOW,
    RECIPROCATE,
    SAS_METHOD,
    QrKeys,
    QrMode,
    QrPayload,
    outcome,
    payload_for,
)
from tuichat.matrix.crypto.sas import SasVerification
from tuichat.model.verification import Phase, VerificationView


def _key() -> str:
    return vodozemac.Account().ed25519_key.to_base64()


def _raw(key: str) -> bytes:
    return base64.b64decode(key + "=" * (-len(key) % 4))


# -- the payload ---------------------------------------------------------------------------


def test_the_payload_is_laid_out_as_the_spec_says_and_reads_back() -> None:
    first, second = _key(), _key()
    payload = QrPayload(QrMode.OWN_DEVICE_UNTRUSTED, "txn-é", first, second, b"s" * 16)
    data = payload.encode()
    txn = "txn-é".encode()
    assert data == (
        b"MATRIX\x02\x02"
        + len(txn).to_bytes(2, "big")
        + txn
        + _raw(first)
        + _raw(second)
        + b"s" * 16
    )
    assert QrPayload.decode(data) == payload
    assert payload.secret_matches(base64.b64encode(b"s" * 16).decode())  # padded
    assert payload.secret_matches(payload.secret_text)  # unpadded, as Element sends it
    assert not payload.secret_matches(base64.b64encode(b"t" * 16).decode())
    assert not payload.secret_matches(None)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"MATRIX",
        b"NOTRIX\x02\x00\x00\x01a" + b"k" * 72,
        b"MATRIX\x01\x00\x00\x01a" + b"k" * 72,  # version 1
        b"MATRIX\x02\x07\x00\x01a" + b"k" * 72,  # no such mode
        b"MATRIX\x02\x00\x00\x09a" + b"k" * 72,  # the transaction id runs into the keys
        b"MATRIX\x02\x00\x00\x01a" + b"k" * 64 + b"short",  # a secret under 8 bytes
    ],
)
def test_what_is_not_a_verification_code_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        QrPayload.decode(data)


def test_the_mode_follows_who_is_verified_and_whether_we_trust_our_master_key() -> None:
    own, master, their_master, device = _key(), _key(), _key(), _key()

    def keys(other: str, trusted: str | None, other_master: str | None) -> QrKeys:
        return QrKeys("@me:x", own, other, trusted, other_master, device)

    person = payload_for("t", keys("@them:x", master, their_master))
    assert person is not None and person.mode is QrMode.OTHER_USER
    assert (person.first_key, person.second_key) == (master, their_master)
    # Without trusting our own master key there is nothing to vouch for them with.
    assert payload_for("t", keys("@them:x", None, their_master)) is None
    assert payload_for("t", keys("@them:x", master, None)) is None

    trusted = payload_for("t", keys("@me:x", master, master))
    assert trusted is not None and trusted.mode is QrMode.OWN_DEVICE_TRUSTED
    assert (trusted.first_key, trusted.second_key) == (master, device)
    untrusted = payload_for("t", keys("@me:x", None, master))
    assert untrusted is not None and untrusted.mode is QrMode.OWN_DEVICE_UNTRUSTED
    assert (untrusted.first_key, untrusted.second_key) == (own, master)
    assert payload_for("t", keys("@me:x", None, None)) is None
    assert len(person.secret) >= 8 and person.secret != trusted.secret

    # A confirmed scan proves the keys the code held, if they are still the ones.
    assert outcome(person, keys("@them:x", master, their_master)).master_key == their_master
    assert outcome(trusted, keys("@me:x", master, master)).device_key == device
    assert outcome(person, keys("@them:x", master, _key())) is None  # their identity changed


# -- the flow of the side that shows the code ----------------------------------------------


class Pair:
    """tuichat's side of a verification; the test plays the other device."""

    def __init__(
        self,
        *,
        trusted_master: bool = True,
        other_methods: list[str],
        we_requested: bool = True,
    ) -> None:
        self.own, self.master, self.their_master = _key(), _key(), _key()
        self.their_device = _key()
        self.sent: list[tuple[str, dict[str, Any]]] = []

        async def send(event_type: str, content: dict[str, Any]) -> bool:
            self.sent.append((event_type, content))
            return True

        masters = {"@me:x": self.master, "@them:x": self.their_master}
        self.ours = SasVerification(
            transaction_id="txn1",
            own_user="@me:x",
            own_device="MYDEV",
            own_ed25519=self.own,
            other_user="@them:x",
            other_device=None if we_requested else "THEM",
            we_requested=we_requested,
            send=send,
            device_key=lambda u, d: self.their_device if (u, d) == ("@them:x", "THEM") else None,
            master_key=masters.get,
            trusted_own_master=lambda: self.master if trusted_master else None,
        )
        self.other_methods = other_methods

    async def ready(self) -> None:
        await self.ours.request()
        assert self.sent[-1][1]["methods"] == [SAS_METHOD, QR_SHOW, RECIPROCATE]
        await self.ours.handle(
            "m.key.verification.ready",
            {"transaction_id": "txn1", "from_device": "THEM", "methods": self.other_methods},
            "THEM",
        )


async def test_a_device_that_can_scan_gets_a_code_and_confirming_its_scan_verifies() -> None:
    pair = Pair(other_methods=[SAS_METHOD, QR_SHOW, QR_SCAN, RECIPROCATE])
    await pair.ready()
    ours = pair.ours
    assert ours.phase is Phase.READY and [t for t, _ in pair.sent] == [
        "m.key.verification.request"
    ]  # no emoji started: the code is shown
    shown = QrPayload.decode(ours.view().qr)
    assert shown.mode is QrMode.OTHER_USER
    assert (shown.first_key, shown.second_key) == (pair.master, pair.their_master)

    start = {"transaction_id": "txn1", "from_device": "THEM", "method": RECIPROCATE}
    await ours.handle("m.key.verification.start", {**start, "secret": shown.secret_text}, "THEM")
    assert ours.phase is Phase.QR_SCANNED and not ours.view().qr
    await ours.confirm()
    assert ours.phase is Phase.CONFIRMED
    assert pair.sent[-1][0] == "m.key.verification.done"
    await ours.handle("m.key.verification.done", {"transaction_id": "txn1"}, "THEM")
    assert ours.phase is Phase.DONE
    # Their identity is what the code proved; their device key was not in it.
    assert ours.verified_master == pair.their_master and not ours.device_key_checked


async def test_a_wrong_secret_or_an_unasked_scan_cancels() -> None:
    pair = Pair(other_methods=[SAS_METHOD, QR_SCAN, RECIPROCATE])
    await pair.ready()
    wrong = base64.b64encode(b"x" * 16).decode()
    start = {"transaction_id": "txn1", "from_device": "THEM", "method": RECIPROCATE}
    await pair.ours.handle("m.key.verification.start", {**start, "secret": wrong}, "THEM")
    assert pair.ours.phase is Phase.CANCELLED and pair.ours.cancel_code == "m.key_mismatch"

    # They asked, we accepted, no code was shown (they cannot scan): a
    # reciprocation is not ours to accept.
    other = Pair(other_methods=[SAS_METHOD, QR_SHOW, RECIPROCATE], we_requested=False)
    other.ours.their_methods = other.other_methods
    await other.ours.accept_request()
    assert other.ours.phase is Phase.READY and not other.ours.view().qr
    await other.ours.handle("m.key.verification.start", {**start, "secret": wrong}, "THEM")
    assert other.ours.phase is Phase.CANCELLED and other.ours.cancel_code == "m.unknown_method"


async def test_accepting_a_request_from_a_device_that_scans_shows_the_code() -> None:
    pair = Pair(other_methods=[SAS_METHOD, QR_SCAN, RECIPROCATE], we_requested=False)
    pair.ours.their_methods = pair.other_methods
    await pair.ours.accept_request()
    event_type, content = pair.sent[-1]
    assert event_type == "m.key.verification.ready"
    assert content["methods"] == [SAS_METHOD, QR_SHOW, RECIPROCATE]  # never the scan method
    assert QrPayload.decode(pair.ours.view().qr).mode is QrMode.OTHER_USER


async def test_a_device_that_only_shows_a_code_is_verified_by_emoji() -> None:
    """Element Web shows codes but cannot scan; tuichat cannot scan either:
    it starts emoji at once."""
    pair = Pair(other_methods=[SAS_METHOD, QR_SHOW, RECIPROCATE])
    await pair.ready()
    assert pair.ours.phase is Phase.STARTED and not pair.ours.view().qr
    event_type, content = pair.sent[-1]
    assert event_type == "m.key.verification.start" and content["method"] == SAS_METHOD


async def test_without_a_trusted_identity_there_is_no_code_and_emoji_start() -> None:
    pair = Pair(trusted_master=False, other_methods=[SAS_METHOD, QR_SCAN, RECIPROCATE])
    await pair.ready()
    assert pair.ours.phase is Phase.STARTED and not pair.ours.view().qr


async def test_emoji_are_one_key_away_from_the_code() -> None:
    pair = Pair(other_methods=[SAS_METHOD, QR_SCAN, RECIPROCATE])
    await pair.ready()
    assert pair.ours.view().qr
    await pair.ours.start_emoji()
    assert pair.ours.phase is Phase.STARTED and not pair.ours.view().qr
    assert pair.sent[-1][1]["method"] == SAS_METHOD


# -- the dialog ------------------------------------------------------------------------------


async def test_the_dialog_draws_a_code_a_scanner_reads_and_e_switches_to_emoji(
    tmp_path: Any,
) -> None:
    from tests.test_look_and_feel import offline_profile
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.verification import VerificationDialog

    payload = QrPayload(QrMode.OTHER_USER, "$" + "e" * 43, _key(), _key(), b"0123456789abcdef")
    view = VerificationView(
        "txn", "@bob:example.org", "BOBDEVICE", True, Phase.READY, qr=payload.encode()
    )
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    choices: list[str] = []
    async with app.run_test(
        size=(100, 40),
        message_hook=lambda m: (
            choices.append(m.choice) if isinstance(m, VerificationDialog.Choice) else None
        ),
    ) as pilot:
        dialog = VerificationDialog(view, "Bob")
        await app.push_screen(dialog)
        await pilot.pause()
        code = dialog.query_one("#qr")
        assert code.display and code.size.height <= 24  # fits a 24-line terminal's worth
        assert decode_drawn_qr(code) == payload.encode()
        # A stray Enter does not cancel a code about to be scanned.
        assert getattr(dialog.focused, "id", None) == "emoji"
        await pilot.press("e")
        await pilot.pause()
        assert choices == ["emoji"]
        # Without a code (they cannot scan), emoji can still be started here.
        plain = VerificationView("txn", "@bob:example.org", "BOBDEVICE", False, Phase.READY)
        dialog.update_view(plain)
        await pilot.pause()
        emoji = dialog.query_one("#emoji")
        assert not code.display and emoji.display and str(emoji.label) == "Compare emoji"
        scanned = VerificationView("txn", "@bob:example.org", "BOBDEVICE", True, Phase.QR_SCANNED)
        dialog.update_view(scanned)
        await pilot.pause()
        assert not code.display
        assert getattr(dialog.focused, "id", None) not in ("scanned", "not_scanned")
        assert "Did they scan it?" in str(dialog.query_one("#state").render())
        await pilot.click("#scanned")
        await pilot.pause()
        assert choices == ["emoji", "scanned"]


# -- with Element's stack: the js peer scans the code tuichat drew --------------------------

# A phone's Element (Element X, Element Android): it scans codes too.
PHONE_METHODS = [SAS_METHOD, QR_SHOW, QR_SCAN, RECIPROCATE]


async def _scan_the_drawn_code(pilot: Any, dialog: Any, js: Any, txn: str) -> QrPayload:
    """Element scans the code off tuichat's screen; the person here says yes."""
    from tests.test_ui_chat import wait_ui

    await wait_ui(pilot, lambda: dialog.view.phase is Phase.READY and dialog.view.qr, 30)
    code = dialog.query_one("#qr")
    await wait_ui(pilot, lambda: code.display and code.size.height)
    await pilot.pause()
    drawn = decode_drawn_qr(code)
    await js.scan_qr_code(txn, drawn)
    await wait_ui(pilot, lambda: dialog.view.phase is Phase.QR_SCANNED, 30)
    assert "Did they scan it?" in str(dialog.query_one("#state").render())
    # The answer buttons replace the code: click once they are laid out.
    button = dialog.query_one("#scanned")
    await wait_ui(pilot, lambda: button.display and button.region.height and not code.display)
    await pilot.pause()
    assert await pilot.click("#scanned")
    finished = (Phase.DONE, Phase.CANCELLED)
    try:
        await wait_ui(pilot, lambda: dialog.view.phase in finished, 30)
    except TimeoutError:
        raise AssertionError(f"not finished: {dialog.view}") from None
    assert dialog.view.phase is Phase.DONE, dialog.view
    assert "Verified" in str(dialog.query_one("#state").render())
    await js.verification_state(txn, wait_for="done")
    return QrPayload.decode(drawn)


@requires_js_peer
async def test_element_on_a_phone_scans_tuichat_s_code_and_both_people_are_verified(
    synapse: Any, new_user: Any, profile: Any, js_peer_factory: Any
) -> None:
    from tests.conftest import log_in
    from tests.test_cross_signing import _verified_user, poll
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.verification import VerificationDialog

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js = await js_peer_factory(bob)
    await js.bootstrap_recovery()
    await js.set_verification_methods(PHONE_METHODS)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 50)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 60)
        service = app.service
        assert service is not None
        await service.setup_recovery(password=alice.password)  # Alice's identity, trusted here
        room_id = await service.create_dm([bob.user_id])
        assert room_id is not None
        await js.join(room_id)
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id, 30)
        await type_text(pilot, "hi bob")
        await js.wait_for_message(room_id, "hi bob")
        await service.devices(bob.user_id, refresh=True)
        assert service.identity_state(bob.user_id) == "unverified"

        txn = await js.request_verification_dm(alice.user_id, room_id)
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 30
        )
        # The dialog may be on the stack a moment before its widgets exist.
        await wait_ui(
            pilot,
            lambda: any("wants to verify" in str(w.render()) for w in dialog.query("#state")),
        )
        await pilot.click("#accept")
        await wait_ui(pilot, lambda: dialog.view.phase is not Phase.REQUESTED, 30)
        offered = await js.verification_methods(txn)
        # tuichat shows codes and answers scans; it never claims to scan.
        assert offered["other_party_supports"] == {
            "sas": True,
            "show": True,
            "scan": False,
            "reciprocate": True,
        }
        shown = await _scan_the_drawn_code(pilot, dialog, js, txn)
        assert shown.mode is QrMode.OTHER_USER and shown.transaction_id == txn

        await wait_ui(pilot, lambda: service.identity_state(bob.user_id) == "verified", 30)
        await poll(lambda: _verified_user(js, alice.user_id))


@requires_js_peer
async def test_element_on_a_phone_scans_a_new_tuichat_device_which_gets_the_secrets(
    synapse: Any, new_user: Any, profile: Any, js_peer_factory: Any
) -> None:
    """Bob's Element holds his cross-signing keys; his new tuichat device does
    not trust his master key yet (mode 0x02). Element scans tuichat's code,
    cross-signs the device, and hands it the keys."""
    from tests.conftest import log_in
    from tests.test_cross_signing import _signed_status, poll
    from tests.test_ui_chat import wait_ui
    from tuichat.matrix.crypto.cross_signing import MASTER, SELF_SIGNING, USER_SIGNING
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.recovery import RecoveryDialog
    from tuichat.ui.screens.verification import VerificationDialog

    bob = new_user("bob", "Bob")
    js = await js_peer_factory(bob)
    await js.bootstrap_recovery()
    await js.set_verification_methods(PHONE_METHODS)
    await log_in(synapse, profile, bob)  # a fresh tuichat device of Bob's
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(130, 50)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 60)
        service = app.service
        assert service is not None
        device_id = service.session.device_id
        # A new device is offered recovery first; Bob would rather use his phone.
        await wait_ui(pilot, lambda: isinstance(app.screen, RecoveryDialog), 30)
        await pilot.press("escape")
        await wait_ui(pilot, lambda: not isinstance(app.screen, RecoveryDialog))
        txn = await service.request_verification(bob.user_id)
        accepted = await js.accept_verification()
        assert accepted["transaction_id"] == txn
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 30
        )
        shown = await _scan_the_drawn_code(pilot, dialog, js, txn)
        assert shown.mode is QrMode.OWN_DEVICE_UNTRUSTED

        assert await js.is_verified(bob.user_id, device_id)
        crypto = service.crypto
        assert crypto is not None
        await wait_ui(
            pilot,
            lambda: {MASTER, SELF_SIGNING, USER_SIGNING} <= set(crypto.cross_signing.private),
            30,
        )
        status = await poll(lambda: _signed_status(js, bob.user_id, device_id))
        assert status["cross_signing_verified"]


@requires_js_peer
async def test_element_web_which_only_shows_codes_is_verified_by_emoji(
    synapse: Any, new_user: Any, profile: Any, js_peer_factory: Any, start_service: Any
) -> None:
    """Element Web shows codes but cannot scan, and neither can tuichat: on
    Element's `ready` tuichat starts emoji at once, and no code is shown."""
    from tests.conftest import log_in
    from tests.peers import wait_until
    from tests.recorder import Recorder
    from tests.test_cross_signing import _finish_sas
    from tests.test_devices import _views

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    await service.setup_recovery(password=alice.password)  # a code could be made
    js = await js_peer_factory(bob)
    await js.bootstrap_recovery()
    await js.set_verification_methods([SAS_METHOD, QR_SHOW, RECIPROCATE])  # Element Web's
    room_id = await service.create_dm([bob.user_id])
    assert room_id is not None
    await js.join(room_id)
    service.send_text(room_id, "hi bob")
    await js.wait_for_message(room_id, "hi bob")

    txn = await service.request_user_verification(bob.user_id)
    assert txn is not None
    await js.accept_verification()
    offered = await js.verification_methods(txn)
    assert offered["other_party_supports"]["show"] and not offered["other_party_supports"]["scan"]
    await _finish_sas(service, recorder, js, txn)
    assert not any(view.qr for view in _views(recorder, txn))
    await wait_until(lambda: service.identity_state(bob.user_id) == "verified", 30)


@requires_js_peer
async def test_a_new_element_device_scans_the_code_of_tuichat_which_holds_the_identity(
    synapse: Any,
    new_user: Any,
    profile: Any,
    js_peer_factory: Any,
    start_service: Any,
    tmp_path: Any,
) -> None:
    """Mode 0x01: tuichat trusts Bob's master key; his new phone does not yet.
    The phone scans tuichat's code, which holds the master key and the phone's
    own device key; afterwards each trusts the other device."""
    from tests.conftest import log_in
    from tests.peers import wait_until
    from tests.recorder import Recorder
    from tests.test_cross_signing import _knows, poll
    from tests.test_devices import _views
    from tests.test_look_and_feel import offline_profile
    from tests.test_ui_chat import wait_ui
    from tuichat.model.devices import Trust
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.verification import VerificationDialog

    bob = new_user("bob", "Bob")
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    await service.setup_recovery(password=bob.password)  # Bob's identity, made here
    js = await js_peer_factory(bob)  # his new phone
    await js.set_verification_methods(PHONE_METHODS)
    await poll(lambda: _knows(js, bob.user_id, service.session.device_id))
    devices = await service.devices(bob.user_id, refresh=True)
    assert js.device_id in {d.device_id for d in devices}

    txn = await service.request_verification(bob.user_id, js.device_id)
    await js.accept_verification()
    view = await wait_until(lambda: next((v for v in _views(recorder, txn) if v.qr), None), 30)
    # The code as tuichat's dialog draws it, read off the cells.
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(110, 42)) as pilot:
        dialog = VerificationDialog(view, "Bob")
        await app.push_screen(dialog)
        code = dialog.query_one("#qr")
        await wait_ui(pilot, lambda: code.display and code.size.height)
        drawn = decode_drawn_qr(code)
    payload = QrPayload.decode(drawn)
    assert payload.mode is QrMode.OWN_DEVICE_TRUSTED
    assert payload.second_key == js.ed25519

    await js.scan_qr_code(txn, drawn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.QR_SCANNED, 30)
    await service.confirm_verification(txn)
    await wait_until(lambda: _views(recorder, txn)[-1].phase is Phase.DONE, 30)
    await js.verification_state(txn, wait_for="done")
    assert await js.is_verified(bob.user_id, service.session.device_id)
    devices = await service.devices(bob.user_id)
    assert next(d for d in devices if d.device_id == js.device_id).trust is Trust.VERIFIED
