"""Recovery key, secret storage and key backup: the formats, and restoring
with (and for) Element's stack against the real Synapse."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import subprocess
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory, expect_failed
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.session import Profile
from tuichat.matrix.crypto.secret_storage import (
    DEFAULT_KEY_TYPE,
    KEY_TYPE_PREFIX,
    MAX_PASSPHRASE_ITERATIONS,
    SecretStorageError,
    base58_decode,
    base58_encode,
    decode_recovery_key,
    decrypt_secret,
    encode_recovery_key,
    encrypt_secret,
    key_check,
    key_from_passphrase,
    new_key_description,
)
from tuichat.matrix.service import Failed, MatrixService
from tuichat.model.events import Notice
from tuichat.model.items import ItemKind

JsPeers = Callable[..., Any]


# -- formats --------------------------------------------------------------------------


def test_recovery_key_round_trip_and_typos() -> None:
    key = secrets.token_bytes(32)
    text = encode_recovery_key(key)
    assert all(len(group) <= 4 for group in text.split())
    assert decode_recovery_key(text) == key
    assert decode_recovery_key(text.replace(" ", "")) == key
    # The format's check is one parity byte, and one base58 digit changed can
    # change several bytes: about one typo in 256 passes it (and gives a
    # wrong key, refused later by the key's MAC). Counted over fixed keys, so
    # the figure cannot vary between runs.
    digits = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # base58
    rng = random.Random(20261123)
    caught = slipped = 0
    for _ in range(400):
        key = rng.randbytes(32)
        text = encode_recovery_key(key)
        at = rng.choice([i for i, c in enumerate(text) if c != " "])
        digit = rng.choice([d for d in digits if d != text[at]])
        try:
            decoded = decode_recovery_key(text[:at] + digit + text[at + 1 :])
        except SecretStorageError:
            caught += 1
        else:
            slipped += 1
            assert decoded != key
    assert caught >= 390 and caught + slipped == 400
    text = encode_recovery_key(bytes(range(32)))
    with pytest.raises(SecretStorageError, match="typo"):
        decode_recovery_key(text[:20] + ("2" if text[20] != "2" else "3") + text[21:])
    with pytest.raises(SecretStorageError, match="cannot appear"):
        decode_recovery_key("0OIl")
    assert base58_decode(base58_encode(b"\0\0abc")) == b"\0\0abc"


def test_secrets_are_bound_to_their_name_and_key() -> None:
    key = secrets.token_bytes(32)
    encrypted = encrypt_secret(key, "m.megolm_backup.v1", "the secret")
    assert decrypt_secret(key, "m.megolm_backup.v1", encrypted) == "the secret"
    with pytest.raises(SecretStorageError):
        decrypt_secret(key, "m.cross_signing.master", encrypted)
    with pytest.raises(SecretStorageError):
        decrypt_secret(secrets.token_bytes(32), "m.megolm_backup.v1", encrypted)
    check = key_check(key)
    assert check == key_check(key, __import__("base64").b64decode(check["iv"]))


ELEMENT_PASSPHRASE = {"algorithm": "m.pbkdf2", "salt": "s" * 32, "iterations": 500_000, "bits": 256}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"iterations": 0}, "iteration count out of range"),
        ({"iterations": -1}, "iteration count out of range"),
        ({"iterations": MAX_PASSPHRASE_ITERATIONS + 1}, "iteration count out of range"),
        ({"iterations": 10**40}, "iteration count out of range"),
        ({"bits": 512}, "key size other than 256 bits"),
        ({"bits": 0}, "key size other than 256 bits"),
        ({"salt": "s" * 5000}, "salt longer than"),
        ({"iterations": True}, "malformed"),
        ({"iterations": 500_000.0}, "malformed"),
    ],
)
def test_passphrase_settings_out_of_range_are_refused_by_name(
    change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SecretStorageError, match=problem):
        key_from_passphrase("a passphrase", {**ELEMENT_PASSPHRASE, **change})


def test_elements_passphrase_settings_are_accepted() -> None:
    assert len(key_from_passphrase("a passphrase", ELEMENT_PASSPHRASE)) == 32
    assert 10 * ELEMENT_PASSPHRASE["iterations"] <= MAX_PASSPHRASE_ITERATIONS  # type: ignore[operator]


# -- helpers --------------------------------------------------------------------------


def _backup_count(synapse: LocalSynapse, user: RegisteredUser) -> int:
    status, body = synapse._request(
        "GET", "/_matrix/client/v3/room_keys/version", token=user.access_token
    )
    return int(body.get("count", 0)) if status == 200 else -1


async def _js_with_backup(
    synapse: LocalSynapse,
    new_user: UserFactory,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    *,
    passphrase: str | None = None,
) -> tuple[RegisteredUser, JsPeer, str, str, NioPeer]:
    """Bob's Element session sets up recovery and chats with Carol; the
    room key ends up in Bob's key backup."""
    bob, carol = new_user("bob", "Bob"), new_user("carol", "Carol")
    js: JsPeer = await js_peer_factory(bob)
    setup = await js.bootstrap_recovery(passphrase)
    carol_peer: NioPeer = await peer_factory(carol)
    room_id = await js.create_room(invite=[carol.user_id], name="Backed up")
    await carol_peer.join(room_id)
    await js.wait_for_member(room_id, carol.user_id)
    await js.send(room_id, "history worth restoring")
    await carol_peer.wait_for_text(room_id, "history worth restoring")
    await wait_until(lambda: _backup_count(synapse, bob) >= 1, 60)
    return bob, js, setup["recovery_key"], room_id, carol_peer


def _put_secret_storage(
    synapse: LocalSynapse, user: RegisteredUser, passphrase: dict[str, Any]
) -> None:
    """Secret storage whose default key (not any passphrase's) has these
    passphrase settings, written to the account as any client could."""
    key_id = secrets.token_hex(8)
    description = new_key_description(secrets.token_bytes(32), passphrase)
    for event_type, content in (
        (KEY_TYPE_PREFIX + key_id, description),
        (DEFAULT_KEY_TYPE, {"key": key_id}),
    ):
        status, body = synapse._request(
            "PUT",
            f"/_matrix/client/v3/user/{quote(user.user_id)}/account_data/{event_type}",
            content,
            token=user.access_token,
        )
        assert status == 200, body


def _waiting(recorder: Recorder, room_id: str) -> list[Any]:
    return [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]


# -- restoring what Element backed up ------------------------------------------------------


@requires_js_peer
async def test_new_device_restores_history_with_the_recovery_key(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    bob, _js, recovery_key, room_id, _ = await _js_with_backup(
        synapse, new_user, peer_factory, js_peer_factory
    )
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: _waiting(recorder, room_id), 30)

    wrong = encode_recovery_key(secrets.token_bytes(32))
    expect_failed(await service.recover(recovery_key=wrong), "wrong recovery key")
    assert not service.crypto.backup.unlocked  # type: ignore[union-attr]
    assert _waiting(recorder, room_id)

    result = await service.recover(recovery_key=recovery_key)
    assert result.imported >= 1
    item = await wait_until(lambda: recorder.text_from(room_id, "history worth restoring"))
    assert item.key_source == "backup"
    assert service.crypto.backup.unlocked  # type: ignore[union-attr]


@requires_js_peer
async def test_restore_with_the_passphrase_and_the_backup_key_is_remembered(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    bob, js, _key, room_id, carol_peer = await _js_with_backup(
        synapse, new_user, peer_factory, js_peer_factory, passphrase="correct horse battery"
    )
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    expect_failed(await service.recover(passphrase="incorrect horse"), "wrong passphrase")
    await service.recover(passphrase="correct horse battery")
    await wait_until(lambda: recorder.text_from(room_id, "history worth restoring"))
    await service.stop()

    # The next start needs no key: an event whose key only the backup holds
    # is looked up there on its own.
    # Carol's peer learns Bob's devices as they are now first: the recovery
    # also made a dehydrated device (issue 26), and nio starts a new room key
    # (shared after all) when it learns of a new device.
    carol_peer.client.olm.users_for_key_query.add(bob.user_id)
    await carol_peer.client.keys_query()
    held = await carol_peer.send_withholding_key(room_id, "only in the backup")
    await carol_peer.deliver_key(held, bob.user_id, js.device_id)  # Element gets it, we don't
    await wait_until(lambda: _backup_count(synapse, bob) >= 2, 60)
    again = Recorder()
    service = await start_service(profile, again)
    item = await wait_until(lambda: again.text_from(room_id, "only in the backup"), 60)
    assert item.key_source == "backup"


@requires_js_peer
async def test_keys_tuichat_backs_up_restore_in_a_fresh_element_session(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    bob, js, recovery_key, room_id, carol_peer = await _js_with_backup(
        synapse, new_user, peer_factory, js_peer_factory
    )
    await js.close()
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.recover(recovery_key=recovery_key)
    await wait_until(lambda: service.states.get(room_id) and service.states[room_id].encrypted)
    before = _backup_count(synapse, bob)
    service.send_text(room_id, "sent from tuichat, backed up by tuichat")
    await carol_peer.wait_for_text(room_id, "sent from tuichat, backed up by tuichat")
    await wait_until(lambda: _backup_count(synapse, bob) > before, 60)

    fresh: JsPeer = await js_peer_factory(bob, "fresh-element")
    restored = await fresh.restore_from_backup(recovery_key)
    assert restored["imported"] >= 2
    message = await fresh.wait_for_message(room_id, "sent from tuichat, backed up by tuichat", 45)
    assert message["sender"] == bob.user_id


async def test_setup_prints_a_recovery_key_element_can_use(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
) -> None:
    alice, carol = new_user("alice"), new_user("carol")
    await log_in(synapse, profile, alice)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), "recover", "--setup"],
        input=alice.password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Write it down" in result.stdout
    recovery_key = result.stdout.split("recovery key is:")[1].strip().splitlines()[0].strip()
    assert len(recovery_key.replace(" ", "")) >= 48

    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), "recover", "--setup"],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "already set up" in again.stderr

    # tuichat backs up a session; Element restores it with the printed key.
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        carol_peer: NioPeer = await peer_factory(carol)
        await service.first_sync_done.wait()
        room_id = await service.create_room(invite=(carol.user_id,))
        assert room_id is not None
        await carol_peer.join(room_id)
        await wait_until(lambda: service.states[room_id].membership_of(carol.user_id) == "join")
        service.send_text(room_id, "for the backup")
        await carol_peer.wait_for_text(room_id, "for the backup")
        await wait_until(lambda: _backup_count(synapse, alice) >= 1, 60)
    finally:
        await service.stop()
    if not __import__("tests.js_peer").js_peer.js_peer_available():
        return
    element: JsPeer = await js_peer_factory(alice, "element")
    restored = await element.restore_from_backup(recovery_key)
    assert restored["imported"] >= 1
    await element.wait_for_message(room_id, "for the backup", 45)


@requires_js_peer
async def test_keys_recovered_by_the_cli_fill_in_the_placeholders_at_the_next_start(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    bob, _js, recovery_key, room_id, _ = await _js_with_backup(
        synapse, new_user, peer_factory, js_peer_factory
    )
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: _waiting(recorder, room_id), 30)
    # `tuichat recover` runs while no tuichat holds the profile (the profile
    # lock refuses it beside a running client).
    await service.stop()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tuichat",
        "--profile",
        str(profile.root),
        "recover",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate((recovery_key + "\n").encode())
    assert process.returncode == 0, err.decode()
    assert "Restored" in out.decode() and recovery_key not in out.decode() + err.decode()
    again = Recorder()
    await start_service(profile, again)
    item = await wait_until(lambda: again.text_from(room_id, "history worth restoring"), 30)
    assert item.key_source == "backup"


@requires_js_peer
async def test_missing_and_deleted_backups_are_reported(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    # An account without recovery says so.
    lonely = new_user("lonely")
    other = Profile(profile.root.parent / "lonely")
    await log_in(synapse, other, lonely)
    plain = await start_service(other, Recorder())
    expect_failed(
        await plain.recover(recovery_key=encode_recovery_key(secrets.token_bytes(32))),
        "no secret storage",
    )

    bob, _js, recovery_key, room_id, carol_peer = await _js_with_backup(
        synapse, new_user, peer_factory, js_peer_factory
    )
    await log_in(synapse, profile, bob)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.recover(recovery_key=recovery_key)
    _status, version = synapse._request(
        "GET", "/_matrix/client/v3/room_keys/version", token=bob.access_token
    )
    synapse._request(
        "DELETE",
        f"/_matrix/client/v3/room_keys/version/{version['version']}",
        token=bob.access_token,
    )
    # Uploading to the deleted version is refused and reported.
    service.send_text(room_id, "after the backup was deleted")
    await carol_peer.wait_for_text(room_id, "after the backup was deleted")
    service.crypto.backup_upkeep.checked = 0.0  # type: ignore[union-attr]  (check now, not in 5 min)
    notice = await wait_until(
        lambda: next(
            (e for e in recorder.events if isinstance(e, Notice) and "Key backup" in e.text), None
        ),
        40,
    )
    assert "deleted" in notice.text or "no key backup" in notice.text or "changed" in notice.text
    # And a recovery with no backup left says so.
    expect_failed(await service.recover(recovery_key=recovery_key), "no key backup")


@requires_js_peer
async def test_a_new_device_is_offered_recovery_and_restores_from_the_dialog(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    js_peer_factory: JsPeers,
) -> None:
    from tests.test_ui_chat import wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.recovery import RecoveryDialog
    from tuichat.ui.widgets.timeline_view import TimelineView

    bob, _js, recovery_key, room_id, _ = await _js_with_backup(
        synapse, new_user, peer_factory, js_peer_factory
    )
    await log_in(synapse, profile, bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, RecoveryDialog) and app.screen, 30
        )
        assert dialog.has_secret_storage
        await pilot.press(*recovery_key)
        await pilot.press("enter")
        await wait_ui(pilot, lambda: "Restored" in str(dialog.query_one("#outcome").render()), 30)
        await pilot.press("escape")
        app.chat.switch_room(room_id)
        view = app.query_one(TimelineView)
        await wait_ui(
            pilot, lambda: any("history worth restoring" in line for line in view.line_texts())
        )
        line = next(t for t in view.line_texts() if "history worth restoring" in t)
        assert "key restored from backup" in line


async def test_recovery_is_set_up_from_the_dialog_with_enter_in_the_password_field(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    """The palette's "Recover encrypted history" on an account without
    recovery offers to set it up: typing the password and pressing Enter
    (no mouse, no Tab to the button) creates it and shows the recovery key."""
    from tests.test_ui_chat import wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.recovery import RecoveryDialog

    alice = new_user("alice", "Alice")
    await log_in(synapse, profile, alice)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        app.people.open_recovery()
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, RecoveryDialog) and app.screen, 30
        )
        assert not dialog.has_secret_storage
        await pilot.press(*alice.password)
        await pilot.press("enter")
        await wait_ui(pilot, lambda: dialog.query_one("#recovery-key").display, 60)
        assert app.service is not None
        status = await app.service.recovery_status()
        assert not isinstance(status, Failed) and status.has_secret_storage


# -- passphrase settings from the server -----------------------------------------------


async def test_out_of_range_passphrase_settings_give_a_clear_error(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    alice = new_user("alice")
    await log_in(synapse, profile, alice)
    service = await start_service(profile, Recorder())
    _put_secret_storage(synapse, alice, {**ELEMENT_PASSPHRASE, "iterations": 10**12})
    expect_failed(await service.recover(passphrase="a passphrase"), "iteration count out of range")
    _put_secret_storage(synapse, alice, {**ELEMENT_PASSPHRASE, "bits": 512})
    expect_failed(await service.recover(passphrase="a passphrase"), "key size other than 256 bits")


async def test_the_recovery_dialog_names_out_of_range_passphrase_settings(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    from textual.widgets import Checkbox

    from tests.test_ui_chat import wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.recovery import RecoveryDialog

    alice = new_user("alice")
    await log_in(synapse, profile, alice)
    _put_secret_storage(synapse, alice, {**ELEMENT_PASSPHRASE, "iterations": 0})
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.crypto is not None)
        app.people.open_recovery()
        dialog = await wait_ui(pilot, lambda: isinstance(app.screen, RecoveryDialog) and app.screen)
        await pilot.press(*"a passphrase")  # the key field has the focus
        await pilot.press("tab", "space")  # "This is my passphrase"
        assert dialog.query_one("#is-passphrase", Checkbox).value
        await pilot.click("#restore")
        await wait_ui(
            pilot,
            lambda: "iteration count out of range" in str(dialog.query_one("#outcome").render()),
        )


async def test_deriving_the_passphrase_key_does_not_block_the_event_loop(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    alice = new_user("alice")
    await log_in(synapse, profile, alice)
    service = await start_service(profile, Recorder())
    # In range but slow: about a second of PBKDF2 here.
    _put_secret_storage(synapse, alice, {**ELEMENT_PASSPHRASE, "iterations": 1_000_000})
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = loop.time()
    try:
        expect_failed(await service.recover(passphrase="not the passphrase"), "wrong passphrase")
    finally:
        task.cancel()
    took = loop.time() - started
    longest_pause = max(b - a for a, b in itertools.pairwise(ticks))
    assert took > 0.3, took  # the derivation did take time
    assert longest_pause < 0.25, (longest_pause, took)
