"""Tokens that last: refresh tokens on Synapse's refreshable access tokens
(5-second access tokens, `refreshing_synapse`), soft logout, and a real
logout followed by a login into the same profile as the same device."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServiceFactory, log_in
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, join_invite
from tests.test_ui_chat import wait_ui
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.login import LoginError, login
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.matrix.storage.cache import Cache
from tuichat.matrix.storage.snapshot import load_snapshot
from tuichat.model.events import ConnectionChanged, ConnectionState, Notice, SendStateChanged
from tuichat.model.items import SendState
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.status_line import Feedback, StatusLine

# The access tokens of `refreshing_synapse` last 5 s.
LIFETIME = 5.0


@pytest.fixture
def new_user(refreshing_synapse: LocalSynapse) -> Callable[[str], RegisteredUser]:
    def make(prefix: str) -> RegisteredUser:
        return refreshing_synapse.register(f"{prefix}-{uuid.uuid4().hex[:8]}")

    return make


@pytest.fixture
async def peer_factory(
    refreshing_synapse: LocalSynapse, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """nio peers on the refreshing Synapse (they log in without asking for
    a refresh token, so their tokens do not expire)."""
    peers: list[NioPeer] = []

    async def make(user: RegisteredUser) -> NioPeer:
        peer = NioPeer(refreshing_synapse.url, user, tmp_path / f"peer-{len(peers)}")
        await peer.start()
        peers.append(peer)
        return peer

    yield make
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


async def _service_and_peer(
    synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    *,
    encrypted: bool = True,
) -> tuple[MatrixService, Recorder, NioPeer, str]:
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=encrypted)
    await join_invite(service, recorder, peer, room_id)
    return service, recorder, peer, room_id


def _bodies(recorder: Recorder, room_id: str, prefix: str) -> list[str]:
    return [i.body for i in recorder.items(room_id) if i.body.startswith(prefix)]


async def test_login_asks_for_a_refresh_token_and_stores_the_tokens_sealed(
    refreshing_synapse: LocalSynapse, new_user: Callable[[str], RegisteredUser], profile: Profile
) -> None:
    before = time.time() * 1000
    await log_in(refreshing_synapse, profile, new_user("alice"))
    session = profile.load_session()
    assert session is not None
    assert session.refresh_token, "the login did not ask for (or keep) a refresh token"
    assert before + 4000 <= session.expires_at_ms <= time.time() * 1000 + LIFETIME * 1000
    assert session.refresh_at_ms < session.expires_at_ms
    text = profile.session_file.read_text()
    # Both tokens sealed with the pickle key: the file alone gives no access.
    assert session.refresh_token not in text and session.access_token not in text
    assert json.loads(text)["refresh_token_sealed"] and json.loads(text)["access_token_sealed"]
    assert profile.session_file.stat().st_mode & 0o777 == 0o600
    assert session.refresh_token not in repr(session)


async def test_sync_goes_on_across_refreshes_and_no_event_is_lost(
    refreshing_synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    service, recorder, peer, room_id = await _service_and_peer(
        refreshing_synapse, new_user, profile, peer_factory, start_service
    )
    tokens = {service.session.access_token}
    sent = []
    # Over three token lifetimes, a message every second: several refreshes
    # fall between them, and between the sync requests that fetch them.
    deadline = time.monotonic() + 3 * LIFETIME
    while time.monotonic() < deadline:
        body = f"across-refresh-{len(sent)}"
        await peer.send_text(room_id, body)
        sent.append(body)
        assert service.client is not None
        tokens.add(service.client.access_token)
        await asyncio.sleep(1.0)
    await wait_until(lambda: len(_bodies(recorder, room_id, "across-refresh-")) == len(sent), 30)
    assert _bodies(recorder, room_id, "across-refresh-") == sent
    assert len(tokens) >= 3, "the access token was not refreshed"
    assert service.connection_state is ConnectionState.SYNCED
    # Every part of the service uses the token in use, and the profile has it.
    stored = profile.load_session()
    assert stored is not None and stored.access_token == service.session.access_token
    assert service.client is not None
    assert service.client.access_token == service.session.access_token
    # And an own message still goes out with it.
    service.send_text(room_id, "after the refreshes")
    await peer.wait_for_text(room_id, "after the refreshes", timeout=30)


async def test_after_a_soft_logout_the_token_is_refreshed_and_a_pending_message_sent_once(
    refreshing_synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    """The refresh before expiry is held back (its task stopped), so the
    token expires: Synapse answers M_UNKNOWN_TOKEN with soft_logout, to the
    send, the sync and the service's own requests alike."""
    service, recorder, peer, room_id = await _service_and_peer(
        refreshing_synapse, new_user, profile, peer_factory, start_service
    )
    assert service._token_task is not None
    service._token_task.cancel()
    expired = service.session.access_token
    await asyncio.sleep(max(0.0, service.session.expires_at_ms / 1000 - time.time()) + 0.5)
    status, reply = refreshing_synapse._request(
        "GET", "/_matrix/client/v3/account/whoami", token=expired
    )
    assert (status, reply.get("soft_logout")) == (401, True), reply
    service.send_text(room_id, "sent while the token had expired")
    await peer.wait_for_text(room_id, "sent while the token had expired", timeout=30)
    assert service.session.access_token != expired
    await peer.send_text(room_id, "the sync goes on")
    await wait_until(lambda: recorder.text_from(room_id, "the sync goes on"), 30)
    await asyncio.sleep(2.0)  # time for a doubled message to arrive
    delivered = [
        source
        for room, source in peer.events
        if room == room_id
        and source.get("content", {}).get("body") == "sent while the token had expired"
    ]
    assert len(delivered) == 1, delivered
    assert not [e for e in recorder.events if isinstance(e, Notice) and e.error]
    # The service's own requests (tuichat/matrix/transport/http.py) recover too.
    now_expired = service.session.access_token
    await asyncio.sleep(max(0.0, service.session.expires_at_ms / 1000 - time.time()) + 0.5)
    assert service.crypto is not None
    reply = await service.crypto.http.request("GET", "/account/whoami")
    assert reply["user_id"] == service.user_id
    assert service.session.access_token != now_expired


async def test_a_real_logout_stops_sync_and_says_so_and_unsent_messages_stay(
    refreshing_synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    # Unencrypted: the send meets the logout itself, not a key claim first.
    service, recorder, _peer, room_id = await _service_and_peer(
        refreshing_synapse, new_user, profile, peer_factory, start_service, encrypted=False
    )
    status, _ = refreshing_synapse._request(
        "POST", "/_matrix/client/v3/logout", {}, token=service.session.access_token
    )
    assert status == 200

    def stopped() -> ConnectionChanged | None:
        for event in recorder.events:
            if isinstance(event, ConnectionChanged) and event.state is ConnectionState.STOPPED:
                return event
        return None

    changed = await wait_until(stopped, 30)
    assert "logged this device out" in changed.detail
    assert service._sync_task is not None
    await wait_until(lambda: service._sync_task is not None and service._sync_task.done(), 10)
    service.send_text(room_id, "written after the logout")
    await asyncio.sleep(2.0)
    # Not failed and dropped: kept for the next start after `tuichat login`.
    entries, _ = service.outbox.pending()
    assert [e.content["body"] for e in entries] == ["written after the logout"]
    assert not [
        e
        for e in recorder.events
        if isinstance(e, SendStateChanged) and e.state is SendState.FAILED
    ]
    notices = [e.text for e in recorder.events if isinstance(e, Notice)]
    assert any("tuichat login" in text and "same device" in text for text in notices), notices


def _status_line(app: TuichatApp) -> str:
    return str(app.screen.query_one(StatusLine).render())


async def test_a_logout_elsewhere_shows_in_the_status_line_and_login_keeps_the_device(
    refreshing_synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
) -> None:
    """The device is logged out from another session (`POST /logout` with its
    token); the screen says so and what to do; `tuichat login` into the same
    profile then logs in as the same device with the same keys and cache."""
    alice, bob = new_user("alice"), new_user("bob")
    await log_in(refreshing_synapse, profile, alice)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        assert app.service is not None and app.service.client is not None
        identity = app.service.client.olm.account.identity_keys["ed25519"]
        session = app.service.session
        status, _ = refreshing_synapse._request(
            "POST", "/_matrix/client/v3/logout", {}, token=session.access_token
        )
        assert status == 200
        await wait_ui(pilot, lambda: "logged this device out" in _status_line(app), 30)
        assert "tuichat login" in _status_line(app)
        feedback = str(app.screen.query_one(Feedback).render())
        assert "same device" in feedback, feedback
    sync_token = load_snapshot(Cache(profile.cache_file), alice.user_id).sync_token
    assert sync_token
    store_files = profile.crypto_store_files()

    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "tuichat",
            "--profile",
            str(profile.root),
            "login",
            "--homeserver",
            refreshing_synapse.url,
            "--user",
            alice.user_id,
            "--password-stdin",
        ],
        input=alice.password + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"device {session.device_id}" in result.stdout
    again = profile.load_session()
    assert again is not None
    assert again.device_id == session.device_id
    assert again.access_token != session.access_token and again.refresh_token
    assert again.created_ms == session.created_ms
    assert profile.crypto_store_files() == store_files
    assert load_snapshot(Cache(profile.cache_file), alice.user_id).sync_token == sync_token
    # The server has the device's keys again, the same identity as before.
    status, reply = refreshing_synapse._request(
        "POST",
        "/_matrix/client/v3/keys/query",
        {"device_keys": {alice.user_id: []}},
        token=bob.access_token,
    )
    keys = reply["device_keys"][alice.user_id][session.device_id]["keys"]
    assert keys[f"ed25519:{session.device_id}"] == identity
    # And the profile opens and syncs as that device.
    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    await service.start()
    try:
        await asyncio.wait_for(service.first_sync_done.wait(), 30)
        assert service.client is not None
        assert service.client.olm.account.identity_keys["ed25519"] == identity
    finally:
        await service.stop()


async def test_login_into_a_profile_whose_session_works_is_refused(
    refreshing_synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
) -> None:
    alice = new_user("alice")
    await log_in(refreshing_synapse, profile, alice)
    before = profile.load_session()
    with pytest.raises(LoginError, match="already logged in"):
        await login(
            profile, homeserver=refreshing_synapse.url, user=alice.user_id, password=alice.password
        )
    assert profile.load_session() == before


async def _until_expired(profile: Profile) -> None:
    session = profile.load_session()
    assert session is not None and session.expires_at_ms
    await asyncio.sleep(max(0.0, session.expires_at_ms / 1000 - time.time()) + 0.5)


async def test_a_profile_opened_after_its_token_expired_refreshes_it_first(
    refreshing_synapse: LocalSynapse,
    new_user: Callable[[str], RegisteredUser],
    profile: Profile,
) -> None:
    """What `tuichat devices` does, after the access token expired while
    tuichat was not running: the first request already works."""
    alice = new_user("alice")
    await log_in(refreshing_synapse, profile, alice)
    expired = profile.load_session()
    await _until_expired(profile)
    service = MatrixService(profile, Recorder())
    await service.open()
    try:
        devices = await service.devices(service.user_id)
    finally:
        await service.stop()
    assert expired is not None
    own = [device for device in devices if device.device_id == expired.device_id]
    # Last seen comes from the server's answer to `GET /devices`.
    assert own and own[0].last_seen_ts, "the server was not asked, or refused"
    stored = profile.load_session()
    assert stored is not None and stored.access_token != expired.access_token


def test_a_session_file_from_before_sealing_still_loads_and_is_sealed_when_saved(
    tmp_path: Path,
) -> None:
    profile = Profile(tmp_path / "p")
    profile.ensure()
    profile.create_pickle_key()
    old = {"homeserver": "http://h", "user_id": "@me:h", "device_id": "D", "created_ms": 1}
    profile.session_file.write_text(json.dumps({**old, "access_token": "syt_old_plain_token"}))
    session = profile.load_session()
    assert session is not None and session.access_token == "syt_old_plain_token"
    profile.save_session(session)
    assert "syt_old_plain_token" not in profile.session_file.read_text()
    again = profile.load_session()
    assert again == session
    # What start-up reads before the first frame: who, without the tokens.
    quick = profile.load_session(tokens=False)
    assert quick is not None and quick.user_id == "@me:h" and quick.access_token == ""
