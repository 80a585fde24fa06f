"""Room key export and import: the file format, the service, the CLI, the TUI."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nio.crypto import key_export as nio_key_export
from nio.crypto.sessions import InboundGroupSession

from tests.conftest import UserFactory, log_in, service_and_peer_in_room
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory, expect_failed
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.key_export import (
    EXPORT_ROUNDS,
    ExportedSession,
    KeyFileError,
    decrypt_export,
    encrypt_export,
    sessions_to_file,
)
from tuichat.matrix.service import MatrixService
from tuichat.model.items import ItemKind
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.passphrase import PassphraseDialog
from tuichat.ui.widgets.timeline_view import TimelineView

FAST = 1000  # PBKDF2 rounds for unit tests; the default is Element's 500,000


def test_round_trip_and_wrong_passphrase() -> None:
    armoured = encrypt_export(b'[{"x": 1}]', "correct horse", FAST)
    assert armoured.startswith("-----BEGIN MEGOLM SESSION DATA-----\n")
    assert decrypt_export(armoured, "correct horse") == b'[{"x": 1}]'
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        decrypt_export(armoured, "battery staple")


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text.replace("BEGIN", "BEGUN"),
        lambda text: text[:60] + "!!!!" + text[64:],
        lambda text: text.replace(text.splitlines()[1], text.splitlines()[1][::-1]),
    ],
)
def test_damaged_files_are_refused(damage: Callable[[str], str]) -> None:
    armoured = encrypt_export(b"[]", "pw", FAST)
    with pytest.raises(KeyFileError):
        decrypt_export(damage(armoured), "pw")


def test_files_are_compatible_with_nios_implementation(tmp_path: Path) -> None:
    ours = tmp_path / "ours.txt"
    ours.write_text(encrypt_export(b'["ours"]', "pw", FAST))
    assert nio_key_export.decrypt_and_read(str(ours), "pw") == b'["ours"]'
    theirs = tmp_path / "theirs.txt"
    nio_key_export.encrypt_and_save(b'["nio"]', str(theirs), "pw", FAST)
    assert decrypt_export(theirs.read_text(), "pw") == b'["nio"]'


async def _two_devices_one_key(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> tuple[MatrixService, Recorder, MatrixService, Profile, Profile, str, Any]:
    """Alice has two tuichat devices; Bob's key reached only the second one."""
    alice, bob = new_user("alice"), new_user("bob")
    first, second = Profile(tmp_path / "first"), Profile(tmp_path / "second")
    await log_in(synapse, first, alice)
    await log_in(synapse, second, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    recorder = Recorder()
    service = await start_service(first, recorder)
    await wait_until(lambda: room_id in recorder.rooms())
    await service.join(room_id)
    other = await start_service(second, Recorder())
    await peer.wait_for_member(room_id, alice.user_id)
    await wait_until(lambda: room_id in other.states and other.states[room_id].encrypted)
    held = await peer.send_withholding_key(room_id, "only the second device can read me")
    await peer.deliver_key(held, alice.user_id, other.session.device_id)
    await wait_until(
        lambda: [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]
    )
    await wait_until(lambda: held_sender_key(other, room_id, held.session_id))
    return service, recorder, other, first, second, room_id, held


async def test_imported_keys_fill_placeholders_and_are_marked(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    service, recorder, other, *_rest, room_id, held = await _two_devices_one_key(
        synapse, new_user, tmp_path, peer_factory, start_service
    )
    await wait_until(
        lambda: other.crypto.olm.inbound_group_store.get(  # type: ignore[union-attr]
            room_id, held_sender_key(other, room_id, held.session_id), held.session_id
        )
    )
    export = tmp_path / "keys.txt"
    count = await other.export_keys(export, "a long passphrase")
    assert count >= 1 and oct(export.stat().st_mode & 0o777) == "0o600"
    text = export.read_text()

    expect_failed(await service.import_keys(text, "not the passphrase"))
    assert [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]

    result = await service.import_keys(text, "a long passphrase")
    assert result.imported >= 1 and result.invalid == 0
    item = await wait_until(
        lambda: recorder.text_from(room_id, "only the second device can read me")
    )
    assert item.key_source == "imported"
    again = await service.import_keys(text, "a long passphrase")
    assert again.imported == 0 and again.total == result.total


async def test_a_direct_key_from_another_device_keeps_the_import_mark(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    """Provenance is kept per session (room, creator key, id): Carol sending
    Bob's session key as her own m.room_key adds a session of hers with the
    same id and leaves the mark of Bob's imported one alone."""
    service, recorder, bob, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=True
    )
    held = await bob.send_withholding_key(room_id, "first from bob")
    await wait_until(
        lambda: [i for i in recorder.items(room_id) if i.kind is ItemKind.UNDECRYPTABLE]
    )
    bob_olm = bob.client.olm
    assert bob_olm is not None
    bob_keys = bob_olm.account.identity_keys
    exported = InboundGroupSession(
        held.session_key, bob_keys["ed25519"], bob_keys["curve25519"], room_id
    ).export_session(0)
    session = ExportedSession(
        room_id, bob_keys["curve25519"], held.session_id, exported, bob_keys["ed25519"]
    )
    await service.import_keys(sessions_to_file([session], "pw", FAST), "pw")
    item = await wait_until(lambda: recorder.text_from(room_id, "first from bob"))
    assert item.key_source == "imported"

    carol: NioPeer = await peer_factory(new_user("carol"))
    assert carol.client.olm is not None
    carol_key = carol.client.olm.account.identity_keys["curve25519"]
    await carol.deliver_key(held, service.user_id, service.session.device_id)
    store = service.crypto.olm.inbound_group_store  # type: ignore[union-attr]
    await wait_until(lambda: store.get(room_id, carol_key, held.session_id))

    # Bob's next message in the same session: still from an imported key.
    await bob.send_text(room_id, "second from bob")
    item = await wait_until(lambda: recorder.text_from(room_id, "second from bob"))
    assert item.key_source == "imported"


def test_key_marks_stored_by_session_id_alone_move_to_every_session_they_may_mean(
    tmp_path: Path,
) -> None:
    with sqlite3.connect(tmp_path / CryptoExtrasStore.FILE_NAME) as old:
        old.execute(
            "CREATE TABLE key_sources (session_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, "
            "source TEXT NOT NULL)"
        )
        old.execute("INSERT INTO key_sources VALUES ('S', '!r:x', 'imported')")
    extras = CryptoExtrasStore(tmp_path)
    try:
        assert extras.has_old_key_sources()
        extras.migrate_key_sources([("!r:x", "A", "S"), ("!r:x", "B", "S"), ("!q:x", "C", "S")])
        assert extras.key_source("!r:x", "A", "S") == "imported"
        assert extras.key_source("!r:x", "B", "S") == "imported"
        assert extras.key_source("!q:x", "C", "S") is None
        assert not extras.has_old_key_sources()
        extras.clear_key_source("!r:x", "B", "S")
        assert extras.key_source("!r:x", "A", "S") == "imported"
    finally:
        extras.close()


def held_sender_key(service: MatrixService, room_id: str, session_id: str) -> str:
    for session in service.crypto.olm.inbound_group_store:  # type: ignore[union-attr]
        if session.id == session_id:
            return session.sender_key
    return ""


async def test_key_requests_are_refused_until_the_device_is_verified(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    first, second = Profile(tmp_path / "first"), Profile(tmp_path / "second")
    await log_in(synapse, first, alice)
    await log_in(synapse, second, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id])
    recorder = Recorder()
    service = await start_service(
        first, recorder, key_request_grace=0.1, key_request_backoff=(1.0, 2.0, 4.0)
    )
    await wait_until(lambda: room_id in recorder.rooms())
    await service.join(room_id)
    other_recorder = Recorder()
    other = await start_service(second, other_recorder)
    await peer.wait_for_member(room_id, alice.user_id)
    await wait_until(lambda: room_id in other.states and other.states[room_id].encrypted)
    held = await peer.send_withholding_key(room_id, "ask your other device")
    await peer.deliver_key(held, alice.user_id, other.session.device_id)

    # The first device asks; the second device holds the key but refuses an
    # unverified device.
    await wait_until(lambda: held.session_id in service.crypto.requests.pending)  # type: ignore[union-attr]
    await wait_until(
        lambda: other.crypto.olm.key_request_from_untrusted,  # type: ignore[union-attr]
        timeout=30,
    )
    assert recorder.text_from(room_id, "ask your other device") is None

    # Both sides verify each other: the waiting request is answered.
    await wait_until(lambda: service.verify_device(alice.user_id, other.session.device_id))
    assert other.verify_device(alice.user_id, service.session.device_id)
    item = await wait_until(lambda: recorder.text_from(room_id, "ask your other device"), 30)
    assert item.key_source == "forwarded"
    await wait_until(lambda: held.session_id not in service.crypto.requests.pending)  # type: ignore[union-attr]

    # Another user's request is never answered, verified or not.
    olm = other.crypto.olm  # type: ignore[union-attr]
    before = len(olm.outgoing_to_device_messages)
    await peer.client.to_device(
        __import__("nio").event_builders.ToDeviceMessage(
            "m.room_key_request",
            alice.user_id,
            other.session.device_id,
            {
                "action": "request",
                "body": {
                    "algorithm": "m.megolm.v1.aes-sha2",
                    "room_id": room_id,
                    "sender_key": held_sender_key(other, room_id, held.session_id),
                    "session_id": held.session_id,
                },
                "request_id": "bobs-request",
                "requesting_device_id": peer.client.device_id,
            },
        )
    )
    # A message Bob sends afterwards arrives after his request was handled.
    await peer.send_text(room_id, "after my request")
    await wait_until(lambda: other_recorder.text_from(room_id, "after my request"))
    queued = olm.outgoing_to_device_messages[before:]
    assert not [m for m in queued if m.recipient == bob.user_id]
    assert "bobs-request" not in olm.key_request_from_untrusted


def _run_cli(profile: Profile, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), "keys", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_export_and_import(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    service, _recorder, other, first, second, room_id, _ = await _two_devices_one_key(
        synapse, new_user, tmp_path, peer_factory, start_service
    )
    await other.stop()
    await service.stop()
    export = tmp_path / "cli-keys.txt"
    result = _run_cli(second, "export", str(export), stdin="cli passphrase\n")
    assert result.returncode == 0, result.stderr
    assert "Exported" in result.stdout and export.exists()
    assert "cli passphrase" not in result.stdout + result.stderr

    result = _run_cli(first, "import", str(export), stdin="wrong\n")
    assert result.returncode == 1 and "wrong passphrase" in result.stderr
    assert "Traceback" not in result.stderr

    result = _run_cli(first, "import", str(export), stdin="cli passphrase\n")
    assert result.returncode == 0, result.stderr
    assert "Imported" in result.stdout and "new room keys" in result.stdout

    restarted = Recorder()
    service = MatrixService(first, restarted)
    await service.open()
    try:
        item = restarted.text_from(room_id, "only the second device can read me")
        assert item is not None and item.key_source == "imported"
    finally:
        await service.stop()


async def test_import_keys_from_the_composer(
    synapse: LocalSynapse,
    new_user: UserFactory,
    tmp_path: Path,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    service, _recorder, other, first, _second, room_id, _ = await _two_devices_one_key(
        synapse, new_user, tmp_path, peer_factory, start_service
    )
    export = tmp_path / "tui-keys.txt"
    await other.export_keys(export, "tui passphrase")
    await service.stop()

    app = TuichatApp(first, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        app.chat.switch_room(room_id)
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: any("Unable to decrypt" in line for line in view.line_texts()))
        await type_text(pilot, f"/import-keys {export}")
        await wait_ui(pilot, lambda: isinstance(app.screen, PassphraseDialog))
        await pilot.press(*"tui passphrase")
        await pilot.press("enter")
        await wait_ui(
            pilot,
            lambda: any("only the second device can read me" in line for line in view.line_texts()),
        )
        line = next(t for t in view.line_texts() if "only the second device" in t)
        assert "key imported from a file" in line
        assert "Imported" in str(app.main.feedback.render())
        assert "tui passphrase" not in json.dumps(view.line_texts())


# -- a wrong file or a weak passphrase is told before it costs anything ------------------


async def _make_offline_profile(root: Path) -> Profile:
    """A logged-in profile with a crypto store, whose homeserver is never
    reached (export and import need no network)."""
    profile = Profile(root)
    profile.ensure()
    profile.create_pickle_key()
    profile.save_session(Session("http://127.0.0.1:9", "@me:x", "DEVICE", "token-123456"))
    service = MatrixService(profile, lambda event: None)
    await service.open()
    await service.stop()
    return profile


def _offline_profile(root: Path) -> Profile:
    return asyncio.run(_make_offline_profile(root))


def _cli_keys(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    profile: Profile,
    *args: str,
    stdin: str = "",
) -> tuple[int, str, str, int]:
    """`tuichat keys ARGS` through cli.main with real files; returns the exit
    code, stdout, stderr and how much of standard input was read (0: no
    passphrase was asked)."""
    from tuichat import cli

    given = io.StringIO(stdin)
    monkeypatch.setattr(sys, "stdin", given)
    code = cli.main(["--profile", str(profile.root), "keys", *args])
    out, err = capsys.readouterr()
    return code, out, err, given.tell()


def _crafted(rounds: int) -> str:
    """An export file whose header asks for `rounds` rounds of key derivation."""
    armoured = encrypt_export(b"[]", "a passphrase", FAST)
    lines = armoured.splitlines()
    data = bytearray(base64.b64decode("".join(lines[1:-1])))
    data[33:37] = struct.pack(">I", rounds)
    encoded = base64.b64encode(bytes(data)).decode()
    return "\n".join([lines[0], encoded, lines[-1]]) + "\n"


@pytest.mark.parametrize(
    ("content", "told"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 40, "it is binary, not text"),
        (
            b"Dear diary,\ntoday I exported nothing.\n",
            "it does not start with the line -----BEGIN MEGOLM SESSION DATA-----",
        ),
        (
            _crafted(0xFFFFFFFF).encode(),
            "asks for 4,294,967,295 rounds of key derivation, more than the 2,000,000",
        ),
        (_crafted(5_000_000).encode(), "asks for 5,000,000 rounds"),
    ],
    ids=["binary", "garbage text", "huge round count", "five million rounds"],
)
def test_keys_import_tells_a_wrong_file_before_asking_the_passphrase(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    told: str,
) -> None:
    profile = _offline_profile(tmp_path / "p")
    path = tmp_path / "keys.txt"
    path.write_bytes(content)
    started = time.monotonic()
    code, out, err, read = _cli_keys(
        monkeypatch, capsys, profile, "import", str(path), stdin="a passphrase\n"
    )
    assert (code, out, read) == (1, "", 0), err
    assert err.startswith(f"tuichat: {path}: ") and told in err, err
    assert err.count("\n") == 1
    assert time.monotonic() - started < 2  # no key derivation ran


def test_a_huge_round_count_is_refused_without_deriving_keys() -> None:
    started = time.monotonic()
    with pytest.raises(KeyFileError, match=r"4,294,967,295 rounds .* refused"):
        decrypt_export(_crafted(0xFFFFFFFF), "a passphrase")
    with pytest.raises(KeyFileError, match="2,000,001 rounds"):
        decrypt_export(_crafted(2_000_001), "a passphrase")
    assert time.monotonic() - started < 1
    assert decrypt_export(encrypt_export(b"[]", "pw", EXPORT_ROUNDS), "pw") == b"[]"


def test_keys_import_of_a_missing_file_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _offline_profile(tmp_path / "p")
    missing = tmp_path / "nope.txt"
    code, _out, err, read = _cli_keys(monkeypatch, capsys, profile, "import", str(missing))
    assert (code, read, err) == (1, 0, f"tuichat: there is no file {missing}\n")


def test_keys_export_into_a_missing_folder_is_told_before_the_passphrase(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _offline_profile(tmp_path / "p")
    target = tmp_path / "no-such-folder" / "keys.txt"
    code, out, err, read = _cli_keys(
        monkeypatch, capsys, profile, "export", str(target), stdin="a long passphrase\n"
    )
    assert (code, out, read) == (1, "", 0)
    assert err == (f"tuichat: cannot write {target}: the folder {target.parent} does not exist\n")


def test_keys_export_replaces_a_file_only_with_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = _offline_profile(tmp_path / "p")
    target = tmp_path / "precious.txt"
    target.write_text("my thesis\n")
    code, out, err, read = _cli_keys(
        monkeypatch, capsys, profile, "export", str(target), stdin="a long passphrase\n"
    )
    assert (code, out, read) == (1, "", 0)
    assert err == f"tuichat: {target} exists already; --force replaces it\n"
    assert target.read_text() == "my thesis\n"

    code, out, err, _read = _cli_keys(
        monkeypatch, capsys, profile, "export", "--force", str(target), stdin="a long passphrase\n"
    )
    assert code == 0, err
    assert out == f"Exported 0 room keys to {target}\n"
    assert decrypt_export(target.read_text(), "a long passphrase") == b"[]"


@pytest.mark.parametrize("weak", ["x", "password1", "aaaaaaaaaaaa", "qwertyuiop"])
def test_keys_export_refuses_a_passphrase_element_would_refuse(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    weak: str,
) -> None:
    profile = _offline_profile(tmp_path / "p")
    target = tmp_path / "keys.txt"
    code, out, err, _read = _cli_keys(
        monkeypatch, capsys, profile, "export", str(target), stdin=weak + "\n"
    )
    assert (code, out) == (1, "")
    assert err.startswith("tuichat: this passphrase is too easy to guess (strength ")
    assert "at least 3 is needed, as in Element" in err and weak not in err
    assert not target.exists() and list(tmp_path.glob(".keys.txt.*")) == []


async def test_the_composers_key_commands_tell_a_wrong_file_or_a_weak_passphrase(
    tmp_path: Path,
) -> None:
    """/export-keys and /import-keys check as `tuichat keys` does: the file
    before the passphrase dialog opens, the passphrase's strength in it."""
    profile = await _make_offline_profile(tmp_path / "p")
    binary = tmp_path / "photo.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" * 50)
    precious = tmp_path / "precious.txt"
    precious.write_text("my thesis\n")
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.crypto is not None)

        def told() -> str:
            return str(app.main.feedback.render())

        for command, sentence in [
            (f"/import-keys {binary}", f"{binary}: this is not a room key export file"),
            (
                f"/export-keys {tmp_path / 'gone' / 'keys.txt'}",
                f"the folder {tmp_path / 'gone'} does not exist",
            ),
            (f"/export-keys {precious}", "exists already; /export-keys --force FILE replaces it"),
        ]:
            await type_text(pilot, command)
            await wait_ui(pilot, lambda sentence=sentence: sentence in told())
            assert not isinstance(app.screen, PassphraseDialog), command
        assert precious.read_text() == "my thesis\n"

        await type_text(pilot, f"/export-keys --force {precious}")
        await wait_ui(pilot, lambda: isinstance(app.screen, PassphraseDialog))
        dialog = app.screen
        for _ in range(2):
            await pilot.press(*"password1")
            await pilot.press("enter")
        problem = dialog.query_one("#problem")
        await wait_ui(pilot, lambda: "too easy to guess" in str(problem.render()))
        assert app.screen is dialog and precious.read_text() == "my thesis\n"

        for name in ("#passphrase", "#again"):
            dialog.query_one(name).value = "a long passphrase"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_ui(pilot, lambda: f"Exported 0 room keys to {precious}" in told(), 60)
    assert decrypt_export(precious.read_text(), "a long passphrase") == b"[]"
