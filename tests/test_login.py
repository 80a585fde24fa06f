"""Logging in and out against the real Synapse, and the profile's file modes."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import UserFactory, log_in
from tests.recorder import Recorder
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.login import LoginError, login, logout, parse_user
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_login_stores_a_private_session_and_keys(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    user = new_user("alice")
    await log_in(synapse, profile, user)

    session = profile.load_session()
    assert session is not None
    assert session.user_id == user.user_id
    assert session.homeserver == synapse.url
    assert _mode(profile.root) == 0o700
    for path in profile.root.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == expected, path
    key = profile.pickle_key()
    assert key != "DEFAULT_KEY" and len(key) == 44
    assert profile.crypto_store_files(), "nio's crypto store was not created"
    assert session.access_token not in repr(session)


async def test_login_accepts_a_bare_localpart(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    user = new_user("bare")
    await login(profile, homeserver=synapse.url, user=user.localpart, password=user.password)
    session = profile.load_session()
    assert session is not None and session.user_id == user.user_id


async def test_wrong_password_is_a_clear_error_and_stores_nothing(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    user = new_user("bob")
    with pytest.raises(LoginError, match="wrong user name or password"):
        await login(profile, homeserver=synapse.url, user=user.user_id, password="nope")
    assert profile.load_session() is None
    assert not profile.pickle_key_file.exists()


async def test_unreachable_server_is_a_clear_error(profile: Profile) -> None:
    with pytest.raises(LoginError, match="cannot reach"):
        await login(profile, homeserver="http://127.0.0.1:9", user="@a:b.c", password="x")


@pytest.mark.parametrize("url", ["ftp://example.org", "http://", "not a url://x"])
async def test_bad_url_is_a_clear_error(profile: Profile, url: str) -> None:
    with pytest.raises(LoginError, match="not a valid homeserver URL"):
        await login(profile, homeserver=url, user="@a:b.c", password="x")


@pytest.mark.parametrize(
    ("text", "localpart", "server"),
    [
        ("@alice:example.org", "alice", "example.org"),
        ("alice", "alice", None),
        ("@bob:localhost:8448", "bob", "localhost:8448"),
    ],
)
def test_parse_user(text: str, localpart: str, server: str | None) -> None:
    name = parse_user(text)
    assert (name.localpart, name.server_name) == (localpart, server)


@pytest.mark.parametrize("text", ["@alice", "@:example.org", "al ice", ""])
def test_parse_user_rejects_malformed_ids(text: str) -> None:
    with pytest.raises(LoginError):
        parse_user(text)


async def test_logout_removes_the_device_and_the_local_session(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    user = new_user("carol")
    await log_in(synapse, profile, user)
    session = profile.load_session()
    assert session is not None
    await logout(profile)
    assert profile.load_session() is None
    assert not profile.pickle_key_file.exists()
    assert profile.crypto_store_files() == []
    status, _ = synapse._request(
        "GET", "/_matrix/client/v3/account/whoami", token=session.access_token
    )
    assert status == 401


def test_cli_login_errors_are_one_line_with_exit_code_1(
    synapse: LocalSynapse, new_user: UserFactory, tmp_path: Path
) -> None:
    user = new_user("cli")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuichat",
            "--profile",
            str(tmp_path / "p"),
            "login",
            "--homeserver",
            synapse.url,
            "--user",
            user.user_id,
            "--password-stdin",
        ],
        input="wrong-password\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong user name or password" in result.stderr

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuichat",
            "--profile",
            str(tmp_path / "p"),
            "login",
            "--homeserver",
            synapse.url,
            "--user",
            user.user_id,
            "--password-stdin",
        ],
        input=user.password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert user.user_id in result.stdout


async def test_bare_server_name_is_resolved_through_well_known(synapse: LocalSynapse) -> None:
    from aiohttp import web

    from tuichat.matrix.account.login import discover_homeserver

    async def well_known(request: web.Request) -> web.Response:
        return web.json_response({"m.homeserver": {"base_url": synapse.url + "/"}})

    app = web.Application()
    app.router.add_get("/.well-known/matrix/client", well_known)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        assert await discover_homeserver(f"127.0.0.1:{port}", scheme="http") == synapse.url
        # No .well-known at all: the server name itself is the base URL.
        assert await discover_homeserver("127.0.0.1:9", scheme="http") == "http://127.0.0.1:9"
    finally:
        await runner.cleanup()


async def test_cli_logout_leaves_nothing_of_the_profile(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    """`tuichat logout` promises to remove the local data: after a session
    that synced and opened every store, the profile holds no file at all."""
    await log_in(synapse, profile, new_user("dora"))
    service = MatrixService(profile, Recorder(), sync_timeout_ms=1000)
    await service.start()
    await service.first_sync_done.wait()
    await service.stop()
    written = {p.relative_to(profile.root).as_posix() for p in profile.root.rglob("*")}
    assert {"session.json", "pickle.key", "cache.sqlite3", "outbox.sqlite3"} <= written
    assert any(name.startswith("crypto/") for name in written), written

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tuichat", "--profile", str(profile.root), "logout"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Logged out" in result.stdout
    assert sorted(p.name for p in profile.root.rglob("*")) == []


async def test_cli_login_prints_a_servers_error_text_cleaned(
    synapse: LocalSynapse, new_user: UserFactory, tmp_path: Path
) -> None:
    """A hostile server's error text reaches the terminal without its escape
    sequences (here a clipboard write, a title change and a bidi override)."""
    import asyncio

    from tests.fault_proxy import FaultProxy

    user = new_user("cli")
    proxy = FaultProxy(synapse.url)
    url = await proxy.start()
    hostile = "\x1b]52;c;ZXZpbA==\x07\x1b]0;pwned\x07\x9b2J\u202eevil"
    # The login request itself (`tuichat login` first GETs /login for the methods).
    proxy.fail("/login", 1, status=400, error=hostile, method="POST")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tuichat",
            "--profile",
            str(tmp_path / "p"),
            "login",
            "--homeserver",
            url,
            "--user",
            user.user_id,
            "--password-stdin",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(user.password.encode() + b"\n"), 60)
    finally:
        await proxy.close()
    assert process.returncode == 1
    text = (out + err).decode("utf-8")
    assert "login failed: ␛]52;c;" in text, text
    assert not any(c in text for c in "\x1b\x07\x9b\u202e"), repr(text)
