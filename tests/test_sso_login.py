"""Choosing the login method, and single sign-on end to end: `tuichat login`
against a Synapse whose users sign in through a local OpenID Connect
provider, with the browser played by an HTTP client (tests/sso_browser.py).
"""

from __future__ import annotations

import asyncio
import os
import pty
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import UserFactory
from tests.recorder import Recorder
from tests.sso_browser import sign_in
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.login import LoginError
from tuichat.matrix.account.login_methods import (
    LoginMethods,
    choose_method,
    fetch_login_methods,
    parse_flows,
)
from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.account.sso import token_from_paste
from tuichat.matrix.service import MatrixService

_SSO_URL = re.compile(r"http://127\.0\.0\.1:\d+/_matrix/client/v3/login/sso/redirect\S*")


class LoginProcess:
    """`tuichat login` in a child process, its output read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output = ""

    async def wait_for_sso_url(self, timeout: float = 60) -> str:
        async def read() -> str:
            assert self.process.stdout is not None
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"no SSO address printed: {await self.finish()}")
                self.output += line.decode()
                found = _SSO_URL.search(line.decode())
                if found:
                    return found.group(0)

        return await asyncio.wait_for(read(), timeout)

    async def type(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        await self.process.stdin.drain()

    async def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        stdout, stderr = await asyncio.wait_for(self.process.communicate(), timeout)
        self.output += stdout.decode()
        assert self.process.returncode is not None
        return self.process.returncode, self.output, stderr.decode()


async def start_login(
    profile: Profile, *args: str, env: dict[str, str] | None = None, stdin: int | None = None
) -> LoginProcess:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")  # never a real browser
    }
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tuichat",
        "--profile",
        str(profile.root),
        "login",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is None else stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    return LoginProcess(process)


def _subject() -> str:
    return f"sso-{uuid.uuid4().hex[:8]}"


async def _sso_login(
    sso_synapse: LocalSynapse, profile: Profile, subject: str, *extra: str
) -> tuple[int, str, str]:
    """The whole single sign-on login through the loopback callback."""
    login = await start_login(profile, "--homeserver", sso_synapse.url, "--no-browser", *extra)
    url = await login.wait_for_sso_url()
    await sign_in(url, subject, secure_origins=[sso_synapse.url])
    return await login.finish()


async def _assert_session_works(synapse: LocalSynapse, session: Session) -> None:
    status, devices = synapse._request(
        "GET", "/_matrix/client/v3/devices", token=session.access_token
    )
    assert status == 200, devices
    assert session.device_id in [device["device_id"] for device in devices["devices"]]


def _device_keys(synapse: LocalSynapse, session: Session) -> dict[str, str]:
    """The identity keys the server holds for the session's device."""
    status, reply = synapse._request(
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {session.user_id: [session.device_id]}},
        token=session.access_token,
    )
    assert status == 200, reply
    return dict(reply["device_keys"][session.user_id][session.device_id]["keys"])


async def _first_sync(profile: Profile) -> None:
    service = MatrixService(profile, Recorder(), sync_timeout_ms=1000)
    await service.start()
    try:
        await asyncio.wait_for(service.first_sync_done.wait(), 60)
    finally:
        await service.stop()


# -- single sign-on end to end ------------------------------------------------


async def test_sso_login_through_the_loopback_callback_stores_a_session_that_syncs(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    subject = _subject()
    code, output, stderr = await _sso_login(sso_synapse, profile, subject, "--idp", "oidc-mock")
    assert code == 0, stderr
    user_id = f"@{subject}:{sso_synapse.server_name}"
    assert f"Logged in as {user_id}" in output
    session = profile.load_session()
    assert session is not None and session.user_id == user_id
    assert session.homeserver == sso_synapse.url
    assert session.access_token not in output + stderr
    assert oct(profile.session_file.stat().st_mode & 0o777) == "0o600"
    assert profile.crypto_store_files()
    await _assert_session_works(sso_synapse, session)
    await _first_sync(profile)


def _fake_browser(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """$BROWSER for `webbrowser`: a script that only records the address it
    is given (tests/fake_browser.py), and the file it records into."""
    opened = tmp_path / "opened.txt"
    browser = f"{sys.executable} {Path(__file__).parent / 'fake_browser.py'} %s"
    return {"BROWSER": browser, "TUICHAT_TEST_BROWSER_LOG": str(opened)}, opened


async def test_no_browser_prints_the_sso_address_with_a_loopback_redirect(
    sso_synapse: LocalSynapse, profile: Profile, tmp_path: Path
) -> None:
    env, opened = _fake_browser(tmp_path)
    login = await start_login(
        profile, "--homeserver", sso_synapse.url, "--no-browser", "--idp", "oidc-mock", env=env
    )
    url = await login.wait_for_sso_url()
    assert not opened.exists(), "--no-browser opened a browser"
    assert "open this address in a browser" in login.output
    assert url.startswith(f"{sso_synapse.url}/_matrix/client/v3/login/sso/redirect/oidc-mock?")
    assert re.search(r"redirectUrl=http%3A%2F%2F127\.0\.0\.1%3A\d+%2F", url), url
    login.process.stdin.close()  # type: ignore[union-attr]
    await sign_in(url, _subject(), secure_origins=[sso_synapse.url])
    code, _output, stderr = await login.finish()
    assert code == 0, stderr


async def test_pasting_the_final_address_completes_the_login_without_the_callback(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    """Over SSH the browser cannot reach the loopback address: the person
    pastes the address it ended on."""
    subject = _subject()
    login = await start_login(
        profile, "--homeserver", sso_synapse.url, "--no-browser", "--idp", "oidc-mock"
    )
    url = await login.wait_for_sso_url()
    final = await sign_in(url, subject, secure_origins=[sso_synapse.url], follow_final=False)
    assert "loginToken=" in final
    await login.type("not an address\n")
    await login.type(final + "\n")
    code, output, stderr = await login.finish()
    assert code == 0, stderr
    assert "holds no login token" in output
    session = profile.load_session()
    assert session is not None and session.user_id == f"@{subject}:{sso_synapse.server_name}"
    await _assert_session_works(sso_synapse, session)


async def test_the_login_token_and_access_token_stay_out_of_output_and_log(
    sso_synapse: LocalSynapse, profile: Profile, tmp_path: Path
) -> None:
    log_file = tmp_path / "tuichat.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tuichat",
        "--profile",
        str(profile.root),
        "--log-file",
        str(log_file),
        "login",
        "--homeserver",
        sso_synapse.url,
        "--no-browser",
        "--idp",
        "oidc-mock",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    login = LoginProcess(process)
    url = await login.wait_for_sso_url()
    final = await sign_in(url, _subject(), secure_origins=[sso_synapse.url], follow_final=False)
    token = token_from_paste(final)
    assert token
    await login.type(final + "\n")
    code, output, stderr = await login.finish()
    assert code == 0, stderr
    session = profile.load_session()
    assert session is not None
    logged = log_file.read_text()
    assert "login token received (pasted)" in logged
    for secret in (token, session.access_token):
        assert secret not in output + stderr
        assert secret not in logged


async def test_the_browser_is_opened_on_the_sso_address(
    sso_synapse: LocalSynapse, profile: Profile, tmp_path: Path
) -> None:
    env, opened = _fake_browser(tmp_path)
    login = await start_login(
        profile, "--homeserver", sso_synapse.url, "--idp", "oidc-mock", env=env
    )
    url = await login.wait_for_sso_url()
    assert opened.read_text().split() == [url]
    assert "Opened your browser" in login.output
    await sign_in(url, _subject(), secure_origins=[sso_synapse.url])
    code, _output, stderr = await login.finish()
    assert code == 0, stderr


async def test_a_browser_that_stays_in_the_foreground_does_not_hold_up_the_login(
    sso_synapse: LocalSynapse, profile: Profile, tmp_path: Path
) -> None:
    """`webbrowser` waits for a $BROWSER command to exit; the callback must
    be served meanwhile."""
    env, opened = _fake_browser(tmp_path)
    env["TUICHAT_TEST_BROWSER_STAYS"] = "25"
    login = await start_login(
        profile, "--homeserver", sso_synapse.url, "--idp", "oidc-mock", env=env
    )
    url = await login.wait_for_sso_url(timeout=15)
    assert opened.read_text().split() == [url]
    await sign_in(url, _subject(), secure_origins=[sso_synapse.url])
    code, _output, stderr = await login.finish(timeout=15)
    assert code == 0, stderr
    assert "Traceback" not in stderr


async def test_idp_chooses_the_identity_provider(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    subject = _subject()
    code, _output, stderr = await _sso_login(sso_synapse, profile, subject, "--idp", "oidc-other")
    assert code == 0, stderr
    session = profile.load_session()
    assert session is not None
    assert session.user_id == f"@other-{subject}:{sso_synapse.server_name}"


async def test_on_a_terminal_the_providers_are_offered_as_a_numbered_list(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    """Standard input is a terminal (a pseudo-terminal here): the person
    picks a provider by number."""
    master, slave = pty.openpty()
    try:
        login = await start_login(profile, "--homeserver", sso_synapse.url, stdin=slave)
        os.close(slave)
        os.write(master, b"9\n2\n")  # first out of range: asked again
        url = await login.wait_for_sso_url()
        assert "1. Mock Provider (oidc-mock)" in login.output
        assert "2. Other Provider (oidc-other)" in login.output
        assert "Type a number from 1 to 2." in login.output
        assert "/login/sso/redirect/oidc-other?" in url
        subject = _subject()
        await sign_in(url, subject, secure_origins=[sso_synapse.url])
        code, _output, stderr = await login.finish()
    finally:
        os.close(master)
    assert code == 0, stderr
    session = profile.load_session()
    assert session is not None
    assert session.user_id == f"@other-{subject}:{sso_synapse.server_name}"


async def test_an_unknown_idp_names_the_ones_offered(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    login = await start_login(profile, "--homeserver", sso_synapse.url, "--idp", "nope")
    code, _output, stderr = await login.finish()
    assert code == 1
    assert "no identity provider 'nope'" in stderr
    assert "oidc-mock (Mock Provider)" in stderr and "oidc-other (Other Provider)" in stderr
    assert profile.load_session() is None


async def test_without_idp_the_servers_own_provider_page_is_used(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    """Several providers and no terminal to ask on: the address has no
    provider and Synapse shows its choice page (the browser takes the first)."""
    login = await start_login(profile, "--homeserver", sso_synapse.url, "--no-browser")
    url = await login.wait_for_sso_url()
    assert "/login/sso/redirect?" in url
    subject = _subject()
    await sign_in(url, subject, secure_origins=[sso_synapse.url])
    code, _output, stderr = await login.finish()
    assert code == 0, stderr


async def test_a_second_sso_login_into_the_same_profile_keeps_the_device_id(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    subject = _subject()
    code, _output, stderr = await _sso_login(sso_synapse, profile, subject, "--idp", "oidc-mock")
    assert code == 0, stderr
    first = profile.load_session()
    assert first is not None
    pickle_key = profile.pickle_key()
    keys = _device_keys(sso_synapse, first)

    # While the session works, a second login is refused before any browser.
    login = await start_login(profile, "--homeserver", sso_synapse.url, "--no-browser")
    code, output, stderr = await login.finish()
    assert code == 1 and "already logged in" in stderr
    assert "sso/redirect" not in output

    # The server no longer accepts the stored token (as after its expiry):
    # signing in again lands on the same device, with the same crypto store.
    profile.save_session(
        Session(first.homeserver, first.user_id, first.device_id, "syt_no_longer_valid")
    )
    code, _output, stderr = await _sso_login(sso_synapse, profile, subject, "--idp", "oidc-mock")
    assert code == 0, stderr
    second = profile.load_session()
    assert second is not None
    assert (second.user_id, second.device_id) == (first.user_id, first.device_id)
    assert second.access_token != first.access_token
    assert profile.pickle_key() == pickle_key
    await _assert_session_works(sso_synapse, second)
    # The crypto store was kept: the device's identity keys did not change.
    assert _device_keys(sso_synapse, second) == keys
    await _first_sync(profile)


async def test_signing_in_as_another_account_into_a_profile_is_refused(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    code, _output, stderr = await _sso_login(sso_synapse, profile, _subject(), "--idp", "oidc-mock")
    assert code == 0, stderr
    first = profile.load_session()
    assert first is not None
    stale = Session(first.homeserver, first.user_id, first.device_id, "syt_no_longer_valid")
    profile.save_session(stale)
    other = _subject()
    code, _output, stderr = await _sso_login(sso_synapse, profile, other, "--idp", "oidc-mock")
    assert code == 1
    assert f"you signed in as @{other}:" in stderr and first.user_id in stderr
    kept = profile.load_session()
    assert kept is not None and kept.user_id == first.user_id


async def test_signing_in_as_another_account_than_user_is_refused(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    meant = f"@meant-{uuid.uuid4().hex[:6]}:{sso_synapse.server_name}"
    subject = _subject()
    code, _output, stderr = await _sso_login(
        sso_synapse, profile, subject, "--idp", "oidc-mock", "--user", meant
    )
    assert code == 1
    assert f"you signed in as @{subject}:{sso_synapse.server_name}, not {meant}" in stderr
    assert profile.load_session() is None


async def test_a_password_login_into_the_same_profile_keeps_the_device_id(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    user = new_user("again")
    login = await start_login(
        profile, "--homeserver", synapse.url, "--user", user.user_id, "--password-stdin"
    )
    await login.type(user.password + "\n")
    code, _output, stderr = await login.finish()
    assert code == 0, stderr
    first = profile.load_session()
    assert first is not None
    # While the session works, a second login is refused before the password
    # is asked for (none is typed here: standard input is closed).
    login = await start_login(
        profile, "--homeserver", synapse.url, "--user", user.user_id, "--password-stdin"
    )
    login.process.stdin.close()  # type: ignore[union-attr]
    code, _output, stderr = await login.finish()
    assert code == 1 and "already logged in" in stderr, stderr

    profile.save_session(
        Session(first.homeserver, first.user_id, first.device_id, "syt_no_longer_valid")
    )
    login = await start_login(
        profile, "--homeserver", synapse.url, "--user", user.user_id, "--password-stdin"
    )
    await login.type(user.password + "\n")
    code, _output, stderr = await login.finish()
    assert code == 0, stderr
    second = profile.load_session()
    assert second is not None and second.device_id == first.device_id


# -- choosing the method ------------------------------------------------------


async def test_a_password_only_server_gets_a_password_login(synapse: LocalSynapse) -> None:
    methods = await fetch_login_methods(synapse.url)
    assert methods.password and not methods.sso and not methods.oauth
    assert choose_method(methods, None) == "password"


async def test_an_sso_server_gets_single_sign_on_with_its_providers_by_name(
    sso_synapse: LocalSynapse,
) -> None:
    methods = await fetch_login_methods(sso_synapse.url)
    assert methods.sso and methods.password and not methods.oauth
    assert choose_method(methods, None) == "sso"
    assert [(p.id, p.name) for p in methods.identity_providers] == [
        ("oidc-mock", "Mock Provider"),
        ("oidc-other", "Other Provider"),
    ]
    assert choose_method(methods, "password") == "password"


async def test_method_password_overrides_single_sign_on(
    sso_synapse: LocalSynapse, profile: Profile
) -> None:
    user = sso_synapse.register(f"pw-{uuid.uuid4().hex[:8]}")
    login = await start_login(
        profile,
        "--homeserver",
        sso_synapse.url,
        "--method",
        "password",
        "--user",
        user.user_id,
        "--password-stdin",
    )
    await login.type(user.password + "\n")
    code, output, stderr = await login.finish()
    assert code == 0, stderr
    assert "sso/redirect" not in output
    session = profile.load_session()
    assert session is not None and session.user_id == user.user_id


async def test_asking_for_a_method_the_server_lacks_says_what_it_offers(
    synapse: LocalSynapse, profile: Profile
) -> None:
    login = await start_login(profile, "--homeserver", synapse.url, "--method", "sso")
    code, _output, stderr = await login.finish()
    assert code == 1
    assert stderr.strip() == (
        "tuichat: this server does not offer single sign-on; it offers password (--method password)"
    )


@pytest.fixture
async def fake_server() -> AsyncIterator[tuple[str, dict[str, object]]]:
    """A homeserver front that answers /versions, /login and auth_metadata
    with whatever the test puts in the returned dict."""
    answers: dict[str, object] = {"flows": {"flows": []}, "auth_metadata": None}

    async def versions(request: web.Request) -> web.Response:
        return web.json_response({"versions": ["v1.15"]})

    async def flows(request: web.Request) -> web.Response:
        return web.json_response(answers["flows"])

    async def auth_metadata(request: web.Request) -> web.Response:
        if answers["auth_metadata"] is None:
            return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)
        return web.json_response(answers["auth_metadata"])

    app = web.Application()
    app.router.add_get("/_matrix/client/versions", versions)
    app.router.add_get("/_matrix/client/v3/login", flows)
    app.router.add_get("/_matrix/client/v1/auth_metadata", auth_metadata)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", answers
    await runner.cleanup()


async def test_a_server_offering_nothing_usable_gets_a_clear_sentence(
    fake_server: tuple[str, dict[str, object]], profile: Profile
) -> None:
    url, answers = fake_server
    answers["flows"] = {
        "flows": [{"type": "m.login.application_service"}, {"type": "org.example.login.magic"}]
    }
    login = await start_login(profile, "--homeserver", url)
    code, _output, stderr = await login.finish()
    assert code == 1
    assert stderr.strip() == (
        "tuichat: this server offers no login method tuichat supports; it offers other "
        "methods tuichat does not know: org.example.login.magic"
    )


async def test_an_oauth_server_with_broken_metadata_is_named_plainly(
    fake_server: tuple[str, dict[str, object]], profile: Profile
) -> None:
    """The OAuth 2.0 API is chosen first; metadata without its endpoints
    is an error that says what is missing, and nothing is stored."""
    url, answers = fake_server
    answers["flows"] = {"flows": [{"type": "m.login.password"}]}
    answers["auth_metadata"] = {"issuer": "https://auth.example.org/"}
    login = await start_login(profile, "--homeserver", url, "--user", "@a:example.org")
    code, _output, stderr = await login.finish()
    assert code == 1
    assert "OAuth 2.0 metadata lacks a valid authorization_endpoint, token_endpoint" in stderr
    assert profile.load_session() is None

    methods = await fetch_login_methods(url)
    assert choose_method(methods, None) == "oauth"
    assert choose_method(methods, "password") == "password"


async def test_a_server_refusing_to_list_its_methods_is_quoted_cleaned(
    profile: Profile, synapse: LocalSynapse
) -> None:
    from tests.fault_proxy import FaultProxy

    proxy = FaultProxy(synapse.url)
    url = await proxy.start()
    proxy.fail("/login", 1, status=500, error="down\x1b[2J for maintenance", method="GET")
    try:
        login = await start_login(profile, "--homeserver", url)
        code, _output, stderr = await login.finish()
    finally:
        await proxy.close()
    assert code == 1
    assert f"{url} did not say how to log in (HTTP 500 on /login: down" in stderr
    assert "\x1b" not in stderr


async def test_server_strings_in_login_messages_are_sanitised(
    fake_server: tuple[str, dict[str, object]],
) -> None:
    url, answers = fake_server
    answers["flows"] = {
        "flows": [
            {"type": "m.login.\x1b[31mevil"},
            {
                "type": "m.login.sso",
                "identity_providers": [{"id": "x", "name": "Evil\x1b]0;owned\x07\u202e"}],
            },
        ]
    }
    answers["auth_metadata"] = {"issuer": "https://a\x1b[2J.example/"}
    methods = await fetch_login_methods(url)
    text = methods.describe() + str(methods.oauth_issuer)
    for name in methods.identity_providers:
        text += name.name
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    with pytest.raises(LoginError) as error:
        choose_method(methods, "password")
    assert "\x1b" not in str(error.value)


def test_parse_flows_skips_malformed_entries() -> None:
    types, providers = parse_flows(
        {
            "flows": [
                "junk",
                {"type": 5},
                {"type": "m.login.sso", "identity_providers": [{"name": "no id"}, {"id": "a"}]},
                {"type": "m.login.token"},
            ]
        }
    )
    assert types == ("m.login.sso", "m.login.token")
    assert [(p.id, p.name) for p in providers] == [("a", "a")]
    assert LoginMethods(types, providers).sso
    # A server that lists the SSO flow alone still offers single sign-on.
    assert LoginMethods(("m.login.sso",)).sso


@pytest.mark.parametrize(
    ("pasted", "token"),
    [
        ("http://127.0.0.1:4567/sso-callback/abc?loginToken=syl_abc_123", "syl_abc_123"),
        ("  syl_abc_123  ", "syl_abc_123"),
        ("loginToken=syl_x", "syl_x"),
        ("http://127.0.0.1:4567/sso-callback/abc", None),
        ("two words", None),
        ("", None),
    ],
)
def test_token_from_paste(pasted: str, token: str | None) -> None:
    assert token_from_paste(pasted) == token


def test_a_logged_sso_address_has_its_login_token_redacted() -> None:
    from tuichat.log_redaction import redact

    line = redact("GET http://127.0.0.1:5/sso-callback/x?loginToken=syl_secret_1&a=b")
    assert "syl_secret_1" not in line and "a=b" in line


async def test_the_loopback_callback_page_says_the_tab_can_be_closed() -> None:
    from tuichat.matrix.account.sso import LoopbackCallback

    callback = LoopbackCallback()
    await callback.start()
    try:
        assert callback.url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http:
            async with http.get(callback.url) as response:
                assert response.status == 400  # no token: the wait goes on
            assert not callback.token.done()
            async with http.get(callback.url + "?loginToken=syl_t") as response:
                assert "You can close this tab" in await response.text()
        assert callback.token.result() == "syl_t"
    finally:
        await callback.close()
