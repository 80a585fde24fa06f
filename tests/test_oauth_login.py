"""The OAuth 2.0 API end to end: `tuichat login` against a Synapse that
delegates authentication (`matrix_authentication_service`) to a local
authorization server built on Authlib (tests/oauth_server.py), with the
browser played by an HTTP client (tests/oauth_browser.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import OAUTH_SYNAPSE_SECRET, ServiceFactory
from tests.oauth_browser import approve_code, approve_device
from tests.oauth_server import AuthServer
from tests.peers import wait_until
from tests.recorder import Recorder
from tests.test_sso_login import LoginProcess, start_login
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account import oauth, oauth_client_registration, oauth_grants, oauth_login
from tuichat.matrix.account.login import LoginError, logout
from tuichat.matrix.account.session import Profile, Session
from tuichat.model.events import ConnectionState
from tuichat.model.rooms import Membership
from tuichat.qr_text import modules_from_lines

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def _wait_for(login: LoginProcess, pattern: str, timeout: float = 60) -> re.Match[str]:
    """Read the login's output until a line matches `pattern`."""

    async def read() -> re.Match[str]:
        assert login.process.stdout is not None
        while True:
            line = await login.process.stdout.readline()
            if not line:
                raise AssertionError(f"{pattern!r} never printed: {await login.finish()}")
            login.output += line.decode()
            found = re.search(pattern, line.decode())
            if found:
                return found

    return await asyncio.wait_for(read(), timeout)


def _localpart() -> str:
    return f"oauth-{uuid.uuid4().hex[:8]}"


def _introspect(server: AuthServer, token: str) -> dict[str, Any]:
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(
        server.issuer + "oauth2/introspect",
        data=urllib.parse.urlencode({"token": token}).encode(),
        headers={"Authorization": f"Bearer {OAUTH_SYNAPSE_SECRET}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def _assert_works(synapse: LocalSynapse, session: Session) -> None:
    """The session's token opens the account: whoami names the device, and
    a first sync answers."""
    status, whoami = synapse._request(
        "GET", "/_matrix/client/v3/account/whoami", token=session.access_token
    )
    assert status == 200, whoami
    assert (whoami["user_id"], whoami.get("device_id")) == (session.user_id, session.device_id)
    status, sync = synapse._request(
        "GET", "/_matrix/client/v3/sync?timeout=0", token=session.access_token
    )
    assert status == 200 and "next_batch" in sync, sync


async def _code_login(
    oauth_synapse: LocalSynapse, profile: Profile, localpart: str, *extra: str
) -> tuple[int, str, str]:
    login = await start_login(
        profile, "--homeserver", oauth_synapse.url, "--no-browser", "--grant", "code", *extra
    )
    found = await _wait_for(login, r"http://127\.0\.0\.1:\d+/authorize\?\S+")
    await approve_code(found.group(0), localpart)
    return await login.finish()


async def test_code_grant_login_end_to_end(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    localpart = _localpart()
    code, output, stderr = await _code_login(oauth_synapse, profile, localpart)
    assert code == 0, (output, stderr)
    session = profile.load_session()
    assert session is not None
    assert session.user_id == f"@{localpart}:localhost"
    assert session.oauth_issuer == oauth_server.issuer
    assert f"(device {session.device_id})" in output
    _assert_works(oauth_synapse, session)

    # The scope the tokens carry names the device tuichat chose (stable names).
    answer = _introspect(oauth_server, session.access_token)
    assert answer["active"] and answer["username"] == localpart
    assert set(answer["scope"].split()) == {
        "urn:matrix:client:api:*",
        f"urn:matrix:client:device:{session.device_id}",
    }
    # Registered as a native client with loopback redirect URIs and the
    # device grant; the registration cached in the profile, 0600.
    registration = oauth_server.registrations[-1]
    assert registration["application_type"] == "native"
    assert registration["client_name"] == "tuichat" and registration["client_uri"]
    assert all(u.startswith("http://127.0.0.1/") for u in registration["redirect_uris"])
    assert oauth.DEVICE_CODE_GRANT in registration["grant_types"]
    cache = profile.root / Profile.OAUTH_CLIENTS_FILE
    assert cache.stat().st_mode & 0o777 == 0o600
    assert (
        json.loads(cache.read_text())[oauth_server.issuer]["client_id"] == session.oauth_client_id
    )
    # Tokens sealed in the session file, refresh token kept.
    text = profile.session_file.read_text()
    assert session.access_token not in text and session.refresh_token
    assert session.refresh_token not in text


async def test_a_second_login_into_the_profile_keeps_the_device_id(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    localpart = _localpart()
    code, output, stderr = await _code_login(oauth_synapse, profile, localpart)
    assert code == 0, (output, stderr)
    first = profile.load_session()
    assert first is not None
    registrations = len(oauth_server.registrations)

    # A live session is not logged into twice.
    code, _output, stderr = await (
        await start_login(profile, "--homeserver", oauth_synapse.url, "--no-browser")
    ).finish()
    assert code == 1 and "is already logged in" in stderr

    # The session ends on the server (revoked elsewhere, e.g. from the
    # account page): the next login lands on the same device.
    oauth_server.end_sessions(localpart)
    code, output, stderr = await _code_login(oauth_synapse, profile, localpart)
    assert code == 0, (output, stderr)
    second = profile.load_session()
    assert second is not None
    assert second.device_id == first.device_id
    assert second.access_token != first.access_token
    assert len(oauth_server.registrations) == registrations, "the registration was not reused"
    _assert_works(oauth_synapse, second)


async def test_device_grant_draws_a_qr_code_of_the_complete_address(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    import segno

    localpart = _localpart()
    # No display and no --grant: over SSH the device grant is the default.
    login = await start_login(profile, "--homeserver", oauth_synapse.url)
    code_line = await _wait_for(login, r"enter the code:\s+(\S+)")
    end = await _wait_for(login, r"^\s+\((http://127\.0\.0\.1:\d+/device\?user_code=\S+)\)")
    complete = end.group(1)
    assert code_line.group(1) in complete
    assert re.search(r"http://127\.0\.0\.1:\d+/device\n", login.output)

    # Read the QR code back from the half blocks drawn in the terminal
    # and compare it, module by module, with the code of the address.
    printed = _ANSI.sub("", login.output).splitlines()
    start = next(i for i, line in enumerate(printed) if "Or scan this QR code" in line)
    end_index = next(i for i, line in enumerate(printed) if complete in line)
    lines = [line[4:] for line in printed[start + 1 : end_index] if line]
    assert lines and all(set(line) <= set(" ▀▄█") for line in lines)
    drawn = modules_from_lines(lines)
    expected = [
        [bool(m) for m in row]
        for row in segno.make(complete, micro=False, error="m").matrix_iter(border=2)
    ]
    assert drawn[: len(expected)] == expected
    assert not any(any(row) for row in drawn[len(expected) :])

    await approve_device(complete, localpart)
    code, output, stderr = await login.finish()
    assert code == 0, (output, stderr)
    session = profile.load_session()
    assert session is not None and session.user_id == f"@{localpart}:localhost"
    _assert_works(oauth_synapse, session)


async def test_device_grant_denied_or_expired_is_said_plainly(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    login = await start_login(profile, "--homeserver", oauth_synapse.url, "--grant", "device")
    end = await _wait_for(login, r"^\s+\((http://127\.0\.0\.1:\d+/device\?user_code=\S+)\)")
    await approve_device(end.group(1), _localpart(), allow=False)
    code, _output, stderr = await login.finish()
    assert code == 1
    assert stderr.strip() == "tuichat: the login was denied in the browser; nothing was stored"
    assert profile.load_session() is None

    oauth_server.device_expires_in = 2
    try:
        login = await start_login(profile, "--homeserver", oauth_synapse.url, "--grant", "device")
        code, _output, stderr = await login.finish()
    finally:
        oauth_server.device_expires_in = 600
    assert code == 1
    assert "the code expired before it was approved; run tuichat login again" in stderr


async def test_code_grant_denied_and_pasted_address(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    # Denied in the browser: said plainly, nothing stored.
    login = await start_login(
        profile, "--homeserver", oauth_synapse.url, "--no-browser", "--grant", "code"
    )
    found = await _wait_for(login, r"http://127\.0\.0\.1:\d+/authorize\?\S+")
    await approve_code(found.group(0), _localpart(), allow=False)
    code, _output, stderr = await login.finish()
    assert code == 1
    assert stderr.strip() == "tuichat: access was denied in the browser; nothing was stored"
    assert profile.load_session() is None

    # Over SSH: the redirect cannot load, the person pastes the address.
    localpart = _localpart()
    login = await start_login(
        profile, "--homeserver", oauth_synapse.url, "--no-browser", "--grant", "code"
    )
    found = await _wait_for(login, r"http://127\.0\.0\.1:\d+/authorize\?\S+")
    final = await approve_code(found.group(0), localpart, follow_final=False)
    await login.type("http://127.0.0.1:1/oauth-callback?code=forged&state=wrong\n")
    await login.type(final + "\n")
    code, output, stderr = await login.finish()
    assert code == 0, (output, stderr)
    assert "That holds no code for this login" in output
    session = profile.load_session()
    assert session is not None and session.user_id == f"@{localpart}:localhost"


async def test_method_choice_and_override(
    oauth_synapse: LocalSynapse, synapse: LocalSynapse, profile: Profile
) -> None:
    methods_oauth = await _fetch(oauth_synapse.url)
    assert methods_oauth.oauth and not methods_oauth.password
    code, _output, stderr = await (
        await start_login(
            profile, "--homeserver", oauth_synapse.url, "--method", "password", "--user", "x"
        )
    ).finish()
    assert code == 1
    assert stderr.strip() == (
        "tuichat: this server does not offer password login; "
        "it offers the OAuth 2.0 API (--method oauth)"
    )
    code, _output, stderr = await (
        await start_login(profile, "--homeserver", synapse.url, "--method", "oauth")
    ).finish()
    assert code == 1
    assert stderr.strip() == (
        "tuichat: this server does not offer the OAuth 2.0 API; "
        "it offers password (--method password)"
    )


async def _fetch(url: str) -> Any:
    from tuichat.matrix.account.login_methods import fetch_login_methods

    return await fetch_login_methods(url)


async def oauth_log_in(
    server: AuthServer,
    synapse: LocalSynapse,
    profile: Profile,
    metadata: oauth.AuthServer | None = None,
) -> Session:
    """The device grant in this process, the person approving at once."""
    auth_server, client, device_id = await oauth_login.prepare(profile, synapse.url, None)
    auth_server = metadata or auth_server
    authorization = await oauth_grants.start_device_authorization(auth_server, client, device_id)
    assert authorization.verification_uri_complete is not None
    localpart = _localpart()
    await approve_device(authorization.verification_uri_complete, localpart)
    tokens = await oauth_grants.poll_device_token(auth_server, client, authorization)
    return await oauth_login.complete(
        profile, synapse.url, auth_server, client, tokens, device_id, None
    )


async def test_tokens_refresh_at_the_token_endpoint_mid_sync_without_a_lost_event(
    oauth_synapse: LocalSynapse,
    oauth_server: AuthServer,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    lifetime = 4
    oauth_server.access_token_lifetime = lifetime
    try:
        session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    finally:
        oauth_server.access_token_lifetime = 300
    assert 0 < session.expires_at_ms - time.time() * 1000 <= lifetime * 1000
    # A peer: another person, signed in with another client.
    peer_localpart = _localpart()
    peer = oauth_server.issue(peer_localpart, "PEERDEVICE")
    status, room = oauth_synapse._request(
        "POST", "/_matrix/client/v3/createRoom", {"invite": [session.user_id]}, token=peer
    )
    assert status == 200, room
    room_id = room["room_id"]

    oauth_server.access_token_lifetime = lifetime
    recorder = Recorder()
    try:
        service = await start_service(profile, recorder)
        await wait_until(lambda: room_id in recorder.rooms(), 30)
        assert await service.join(room_id)
        await wait_until(
            lambda: (r := recorder.rooms().get(room_id)) and r.membership is Membership.JOIN, 30
        )
        tokens = {service.session.access_token}
        sent = []
        deadline = time.monotonic() + 3 * lifetime
        while time.monotonic() < deadline:
            body = f"oauth-refresh-{len(sent)}"
            status, answer = oauth_synapse._request(
                "PUT",
                f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{uuid.uuid4().hex}",
                {"msgtype": "m.text", "body": body},
                token=peer,
            )
            assert status == 200, answer
            sent.append(body)
            assert service.client is not None
            tokens.add(service.client.access_token)
            await asyncio.sleep(1.0)
    finally:
        oauth_server.access_token_lifetime = 300

    def bodies() -> list[str]:
        return [i.body for i in recorder.items(room_id) if i.body.startswith("oauth-refresh-")]

    await wait_until(lambda: len(bodies()) == len(sent), 30)
    assert bodies() == sent
    assert len(tokens) >= 3, "the access token was not refreshed"
    assert service.connection_state is ConnectionState.SYNCED
    stored = profile.load_session()
    assert stored is not None and stored.access_token == service.session.access_token
    # The refreshes went through the token endpoint: the spent refresh
    # tokens are no longer active there.
    assert not _introspect(oauth_server, session.refresh_token)["active"]
    assert _introspect(oauth_server, stored.refresh_token)["active"]


async def test_logout_revokes_the_tokens(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    assert _introspect(oauth_server, session.access_token)["active"]
    await logout(profile)
    assert not _introspect(oauth_server, session.access_token)["active"]
    assert not _introspect(oauth_server, session.refresh_token)["active"]
    assert profile.load_session() is None
    assert not (profile.root / Profile.OAUTH_CLIENTS_FILE).exists()
    # The device is gone on the homeserver too.
    status, _ = oauth_synapse._request(
        "GET", "/_matrix/client/v3/account/whoami", token=session.access_token
    )
    assert status == 401
    with pytest.raises(LoginError, match="holds no session"):
        await logout(profile)


async def test_unstable_scope_names_where_the_server_lists_only_those(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    # Synapse keeps the metadata it read first: the metadata of a server
    # that lists only the unstable names is taken from the server itself.
    oauth_server.unstable_scopes_only = True
    try:
        server = oauth.AuthServer.from_metadata(oauth_server.metadata())
    finally:
        oauth_server.unstable_scopes_only = False
    assert server.unstable_scopes
    session = await oauth_log_in(oauth_server, oauth_synapse, profile, server)
    scope = set(_introspect(oauth_server, session.access_token)["scope"].split())
    assert scope == {
        "urn:matrix:org.matrix.msc2967.client:api:*",
        f"urn:matrix:org.matrix.msc2967.client:device:{session.device_id}",
    }
    _assert_works(oauth_synapse, session)


async def test_account_command_prints_the_account_page(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    import os
    import sys

    session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    }

    async def account(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tuichat",
            "--profile",
            str(profile.root),
            "account",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, _err = await account()
    assert code == 0 and out.splitlines()[-1] == oauth_server.issuer + "account"
    code, out, _err = await account("device")
    assert code == 0
    assert out.splitlines()[-1] == (
        f"{oauth_server.issuer}account?action=org.matrix.session_view&device_id={session.device_id}"
    )
    code, _out, err = await account("deactivate")
    assert code == 1
    assert "the account page does not support org.matrix.account_deactivate" in err


async def test_a_profile_opened_after_its_oauth_token_expired_refreshes_it(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    """The homeserver refuses an expired OAuth access token without
    `soft_logout`; the token endpoint still renews it."""
    from tuichat.matrix.service import MatrixService

    oauth_server.access_token_lifetime = 2
    try:
        expired = await oauth_log_in(oauth_server, oauth_synapse, profile)
    finally:
        oauth_server.access_token_lifetime = 300
    await asyncio.sleep(max(0.0, expired.expires_at_ms / 1000 - time.time()) + 0.5)
    status, answer = oauth_synapse._request(
        "GET", "/_matrix/client/v3/account/whoami", token=expired.access_token
    )
    assert status == 401 and answer["errcode"] == "M_UNKNOWN_TOKEN", answer
    assert not answer.get("soft_logout")
    service = MatrixService(profile, Recorder())
    await service.open()
    try:
        devices = await service.devices(service.user_id)
    finally:
        await service.stop()
    assert expired.device_id in [device.device_id for device in devices]
    stored = profile.load_session()
    assert stored is not None and stored.access_token != expired.access_token
    assert stored.refresh_token != expired.refresh_token  # rotated at the token endpoint


async def test_a_session_ended_on_the_account_page_stops_sync_and_says_so(
    oauth_synapse: LocalSynapse,
    oauth_server: AuthServer,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    from tuichat.model.events import ConnectionChanged

    session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: service.connection_state is ConnectionState.SYNCED, 30)
    oauth_server.end_sessions(session.user_id[1:].split(":")[0])

    def stopped() -> ConnectionChanged | None:
        for event in recorder.events:
            if isinstance(event, ConnectionChanged) and event.state is ConnectionState.STOPPED:
                return event
        return None

    changed = await wait_until(stopped, 30)
    assert "logged this device out" in changed.detail
    # The profile is kept: `tuichat login` continues on the same device.
    assert profile.load_session() is not None


async def test_device_grant_polls_slower_after_slow_down(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    """RFC 8628 §3.5: after `slow_down` the client adds five seconds to its
    interval, for this and every later poll."""
    auth_server, client, device_id = await oauth_login.prepare(profile, oauth_synapse.url, None)
    oauth_server.enforced_interval = 3  # announces 1 s, wants 3 s
    oauth_server.polls.clear()
    try:
        authorization = await oauth_grants.start_device_authorization(
            auth_server, client, device_id
        )
        assert authorization.interval_s == 1
        assert authorization.verification_uri_complete is not None

        async def approve_later() -> None:
            await wait_until(lambda: any(a == "slow_down" for _, a in oauth_server.polls), 30)
            await approve_device(authorization.verification_uri_complete or "", _localpart())

        approval = asyncio.ensure_future(approve_later())
        started = time.monotonic()
        tokens = await oauth_grants.poll_device_token(auth_server, client, authorization)
        await approval
    finally:
        oauth_server.enforced_interval = None
    assert tokens.access_token and tokens.refresh_token
    answers = [answer for _, answer in oauth_server.polls]
    assert answers[:2] == ["authorization_pending", "slow_down"], answers
    # The poll that got the tokens came a slowed-down interval (1 + 5 s) later.
    assert time.monotonic() - started >= 1 + 1 + 6 - 0.5


def test_a_client_secret_is_kept_sealed_in_the_profile(profile: Profile) -> None:
    cache = oauth_client_registration.ClientCache(profile)
    registration = oauth_client_registration.ClientRegistration(
        "https://auth.example.org/",
        "client-1",
        (oauth_client_registration.REGISTERED_REDIRECT_URI,),
        oauth_client_registration.GRANT_TYPES,
        client_secret="very-secret-client-value",
    )
    cache.put(registration)
    text = cache.path.read_text()
    assert "very-secret-client-value" not in text and "client-1" in text
    assert cache.path.stat().st_mode & 0o777 == 0o600
    assert profile.root.stat().st_mode & 0o777 == 0o700
    assert cache.get("https://auth.example.org/") == registration
    assert cache.get("https://other.example.org/") is None
    assert "very-secret" not in repr(registration)


async def test_with_a_browser_here_the_code_grant_is_chosen_and_opened(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile, tmp_path: Path
) -> None:
    """No --method, no --grant: the OAuth 2.0 API, and with a browser on
    this machine the authorization code grant in that browser."""
    from tests.test_sso_login import _fake_browser

    env, opened = _fake_browser(tmp_path)
    login = await start_login(profile, "--homeserver", oauth_synapse.url, env=env)
    found = await _wait_for(login, r"http://127\.0\.0\.1:\d+/authorize\?\S+")
    assert opened.read_text().split() == [found.group(0)]
    assert "Opened your browser to sign in" in login.output
    query = parse_qs(urlsplit(found.group(0)).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/oauth-callback", query["redirect_uri"][0])
    assert query["response_type"] == ["code"] and len(query["state"][0]) >= 20
    localpart = _localpart()
    await approve_code(found.group(0), localpart)
    code, output, stderr = await login.finish()
    assert code == 0, (output, stderr)
    session = profile.load_session()
    assert session is not None and session.user_id == f"@{localpart}:localhost"
