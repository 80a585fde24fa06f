"""A wrong pickle key, a missing or a damaged crypto store is explained,
never answered by silently making a new identity for the device."""

from __future__ import annotations

import asyncio
import base64
import os
import pty
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.recorder import Recorder
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile, ProfileError, Session
from tuichat.matrix.service import MatrixService
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.status_line import Feedback

SESSION = Session("http://127.0.0.1:9", "@me:x", "DEVICE", "token-123456")


async def _first_open(root: Path) -> tuple[Profile, str]:
    profile = Profile(root)
    profile.ensure()
    profile.create_pickle_key()
    profile.save_session(SESSION)
    service = MatrixService(profile, Recorder())
    await service.open()
    assert service.client is not None
    identity = service.client.olm.account.identity_keys["ed25519"]
    await service.stop()
    return profile, identity


async def _open(profile: Profile) -> str:
    service = MatrixService(profile, Recorder())
    try:
        await service.open()
        assert service.client is not None
        return str(service.client.olm.account.identity_keys["ed25519"])
    finally:
        await service.stop()


async def test_a_wrong_pickle_key_is_explained_and_the_identity_kept(tmp_path: Path) -> None:
    profile, identity = await _first_open(tmp_path / "p")
    right_key = profile.pickle_key_file.read_text()
    profile.pickle_key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    with pytest.raises(ProfileError, match=r"pickle key .* does not match") as raised:
        await _open(profile)
    assert "will not make a new identity" in str(raised.value)
    profile.pickle_key_file.write_text(right_key)
    assert await _open(profile) == identity


async def test_a_missing_store_is_explained_not_recreated(tmp_path: Path) -> None:
    profile, _ = await _first_open(tmp_path / "p")
    store = profile.store_dir / f"{SESSION.user_id}_{SESSION.device_id}.db"
    store.unlink()
    with pytest.raises(ProfileError, match="missing"):
        await _open(profile)
    assert not store.exists()


async def test_a_damaged_store_is_explained(tmp_path: Path) -> None:
    profile, _ = await _first_open(tmp_path / "p")
    store = profile.store_dir / f"{SESSION.user_id}_{SESSION.device_id}.db"
    store.write_bytes(b"this is not a database" * 100)
    for leftover in store.parent.glob(store.name + "-*"):
        leftover.unlink()
    with pytest.raises(ProfileError, match="damaged"):
        await _open(profile)


async def test_the_app_shows_the_explanation_instead_of_a_traceback(tmp_path: Path) -> None:
    profile, _ = await _first_open(tmp_path / "p")
    profile.pickle_key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    app = TuichatApp(profile)
    async with app.run_test(size=(120, 30)) as pilot:
        feedback = app.query_one(Feedback)
        for _ in range(100):
            await pilot.pause(0.05)
            if "will not make a new identity" in str(feedback.render()):
                break
        assert "does not match" in str(feedback.render())
        assert app.is_running


def _damaged_keys(right_key: str) -> dict[str, bytes]:
    """A pickle key cut short (as by a full disk), garbled text and binary."""
    return {
        "truncated": right_key.encode()[:21],
        "garbage text": b"this is not a key!\n",
        "binary": b"\xff\xfe\x00\x81 binary junk",
    }


@pytest.mark.parametrize("damage", ["truncated", "garbage text", "binary"])
async def test_a_damaged_pickle_key_is_a_profile_error_in_the_app(
    tmp_path: Path, damage: str
) -> None:
    profile, _ = await _first_open(tmp_path / "p")
    profile.pickle_key_file.write_bytes(_damaged_keys(profile.pickle_key())[damage])
    app = TuichatApp(profile)
    async with app.run_test(size=(120, 30)) as pilot:
        feedback = app.query_one(Feedback)
        for _ in range(100):
            await pilot.pause(0.05)
            if "pickle key" in str(feedback.render()):
                break
        shown = str(feedback.render())
        assert "pickle key" in shown and "tuichat logout" in shown, shown
        assert app.is_running


@pytest.mark.parametrize("damage", ["truncated", "garbage text", "binary"])
async def test_a_damaged_pickle_key_is_a_profile_error_in_the_cli(
    tmp_path: Path, damage: str
) -> None:
    profile, _ = await _first_open(tmp_path / "p")
    profile.pickle_key_file.write_bytes(_damaged_keys(profile.pickle_key())[damage])
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), "devices"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"tuichat: the pickle key {profile.pickle_key_file}")
    assert "tuichat logout" in result.stderr


class _TuiInPty:
    """`tuichat --profile P` as a real process on a pseudo-terminal (its
    output drained so it never blocks on a full terminal)."""

    def __init__(self, profile: Profile) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tuichat", "--profile", str(profile.root)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color", "TUICHAT_CONFIG": "/nonexistent"},
        )
        os.close(slave)
        self.output = bytearray()
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait_drawn(self, timeout: float = 60) -> None:
        """Until the TUI has drawn its composer (the lock is taken before)."""
        deadline = time.monotonic() + timeout
        while b"Enter sends" not in self.output:
            tail = bytes(self.output[-300:]).decode(errors="replace")
            assert self.process.poll() is None, tail
            assert time.monotonic() < deadline, tail
            time.sleep(0.1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._drain.join(5)
        os.close(self.master)


def _tuichat(profile: Profile, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TUICHAT_CONFIG": "/nonexistent"},
    )


IN_USE = "is in use by another tuichat"


async def test_a_second_process_on_a_profile_is_refused_before_any_prompt(
    tmp_path: Path,
) -> None:
    """Two processes on one profile save the same Megolm and Olm state over
    each other (a peer then rejects a message as a replayed index). While
    the TUI runs, the TUI and every command that opens the profile are
    refused at once, with the reason, and change nothing."""
    profile, _ = await _first_open(tmp_path / "p")
    export = tmp_path / "keys.txt"
    tui = _TuiInPty(profile)
    try:
        await asyncio.to_thread(tui.wait_drawn)
        assert oct(stat.S_IMODE((profile.root / "lock").stat().st_mode)) == "0o600"
        key = profile.pickle_key_file.read_bytes()
        second_runs = [
            ((), ""),
            (("devices",), ""),
            (("keys", "export", str(export)), "a passphrase\n"),
            (("keys", "import", str(export)), "a passphrase\n"),
            (("recover",), "EsTc 1234\n"),
            (("logout",), ""),
            (("login", "--user", "@me:x", "--password-stdin"), "secret\n"),
        ]
        for args, stdin in second_runs:
            result = await asyncio.to_thread(_tuichat, profile, *args, stdin=stdin)
            assert result.returncode == 1, (args, result.stderr)
            assert result.stderr == (
                f"tuichat: the profile {profile.root} is in use by another tuichat "
                f"(process {tui.process.pid}). Two at once would damage its encryption "
                "keys: quit the other one first, or use another profile (--profile DIR).\n"
            ), args
            assert result.stdout == "", args  # no prompt was shown
        assert not export.exists()
        assert profile.load_session() == SESSION
        assert profile.pickle_key_file.read_bytes() == key
    finally:
        await asyncio.to_thread(tui.close)


async def test_the_profile_lock_goes_with_its_process_quit_or_killed(tmp_path: Path) -> None:
    profile, _ = await _first_open(tmp_path / "p")
    # Quit with Ctrl+Q: the next process gets the profile.
    tui = _TuiInPty(profile)
    try:
        await asyncio.to_thread(tui.wait_drawn)
        assert IN_USE in (await asyncio.to_thread(_tuichat, profile, "devices")).stderr
        os.write(tui.master, b"\x11")
        assert await asyncio.to_thread(tui.process.wait, 30) == 0
    finally:
        await asyncio.to_thread(tui.close)
    with profile.lock():
        pass

    # Killed outright (no clean-up runs): the kernel drops the lock.
    tui = _TuiInPty(profile)
    try:
        await asyncio.to_thread(tui.wait_drawn)
        assert IN_USE in (await asyncio.to_thread(_tuichat, profile, "devices")).stderr
        os.kill(tui.process.pid, signal.SIGKILL)
        await asyncio.to_thread(tui.process.wait, 10)
    finally:
        await asyncio.to_thread(tui.close)
    result = await asyncio.to_thread(_tuichat, profile, "devices")
    assert IN_USE not in result.stderr and "Traceback" not in result.stderr
    with profile.lock():
        pass


async def test_cached_messages_say_why_when_the_store_does_not_open(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """The first frame shows cached encrypted messages as "decrypting…";
    when the crypto store then cannot be opened nothing will decrypt them,
    and "decrypting…" must not stay as if something would."""
    from tests.test_ui_chat import join_in_ui, wait_ui
    from tuichat.model.connection import ConnectionState

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 30)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        await peer.send_text(room_id, "a secret")
        await wait_ui(pilot, lambda: "a secret" in [i.body for i in app.state.timelines[room_id]])
        await pilot.pause(1.0)  # the last sync's events reach the cache

    profile.pickle_key_file.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_ui(pilot, lambda: "cannot be opened" in str(app.main.feedback.render()), 30)
        await pilot.pause()
        assert app.state.connection is ConnectionState.STOPPED
        placeholders = [i for i in app.state.timelines[room_id] if i.utd_reason is not None]
        assert placeholders
        assert all(i.utd_reason == "no_store" for i in placeholders)
        lines = app.main.timeline.line_texts()
        assert not any("decrypting" in line for line in lines)
        assert any("keys could not be opened" in line for line in lines)
