"""Shared fixtures: one real Synapse per session, fresh users per test, and a
guard that lets tests open connections to loopback only."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.js_peer import JsPeer
from tests.peers import NioPeer
from tests.recorder import Recorder, ServiceFactory, join_invite
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.login import login
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX paths
        return True
    if isinstance(address, tuple) and address:
        host = address[0]
        if host in ("localhost",):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")
    return _real_connect_ex(self, address)  # type: ignore[arg-type]


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


# Synapse's experimental features the tests switch on, one commented block each.
EXPERIMENTAL_FEATURES: dict[str, Any] = {}
# Dehydrated devices (MSC3814, issue 26): /unstable/org.matrix.msc3814.v1/dehydrated_device.
EXPERIMENTAL_FEATURES["msc3814_enabled"] = True


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSynapse]:
    server = LocalSynapse(
        tmp_path_factory.mktemp("synapse"),
        extra_config={"experimental_features": EXPERIMENTAL_FEATURES},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[str]:
    """A local OpenID Connect provider (oidc-provider-mock) on 127.0.0.1:
    its authorization page signs in whatever subject the form names."""
    import threading

    import oidc_provider_mock
    import werkzeug.serving

    server = werkzeug.serving.make_server(
        "127.0.0.1", 0, oidc_provider_mock.app(require_nonce=False), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)
    server.server_close()


def _oidc_provider_config(idp_id: str, name: str, issuer: str, prefix: str) -> dict[str, Any]:
    """One `oidc_providers` entry: users are created on first sign-in with
    the localpart `prefix` + the subject."""
    return {
        "idp_id": idp_id,
        "idp_name": name,
        "issuer": issuer,
        "client_id": f"synapse-{idp_id}",
        "client_secret": "not-a-secret-of-anything",
        "scopes": ["openid", "profile"],
        # The provider runs on plain http on loopback, not https.
        "skip_verification": True,
        "user_mapping_provider": {"config": {"localpart_template": prefix + "{{ user.sub }}"}},
    }


@pytest.fixture(scope="session")
def sso_synapse(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: str
) -> Iterator[LocalSynapse]:
    """A second Synapse whose users sign in through two upstream OpenID
    Connect providers (both the local mock, under different names and
    localparts); password login stays on, as on most SSO servers."""
    providers = [
        _oidc_provider_config("mock", "Mock Provider", oidc_provider, ""),
        _oidc_provider_config("other", "Other Provider", oidc_provider, "other-"),
    ]
    server = LocalSynapse(
        tmp_path_factory.mktemp("sso-synapse"), extra_config={"oidc_providers": providers}
    )
    server.start()
    yield server
    server.stop()


UserFactory = Callable[..., RegisteredUser]


@pytest.fixture
def new_user(synapse: LocalSynapse) -> UserFactory:
    """Register a fresh user (unique localpart) for this test."""

    def make(prefix: str = "user", display_name: str | None = None) -> RegisteredUser:
        user = synapse.register(f"{prefix}-{uuid.uuid4().hex[:8]}")
        if display_name:
            synapse.set_display_name(user, display_name)
        return user

    return make


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    return Profile(tmp_path / "profile")


async def log_in(synapse: LocalSynapse, profile: Profile, user: RegisteredUser) -> None:
    await login(
        profile,
        homeserver=synapse.url,
        user=user.user_id,
        password=user.password,
        device_name="tuichat-test",
    )


async def service_and_peer_in_room(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    *,
    encrypted: bool,
) -> tuple[MatrixService, Recorder, NioPeer, str]:
    """Alice's service and Bob's nio peer in a room Bob made and invited
    her to; she has joined and both sides see it."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=encrypted)
    await join_invite(service, recorder, peer, room_id)
    return service, recorder, peer, room_id


@pytest.fixture
async def peer_factory(synapse: LocalSynapse, tmp_path: Path) -> AsyncIterator[Callable]:
    """Start nio peers (each a new device of a user); all closed at the end."""
    peers: list[NioPeer] = []

    async def make(user: RegisteredUser) -> NioPeer:
        peer = NioPeer(synapse.url, user, tmp_path / f"peer-{len(peers)}")
        await peer.start()
        peers.append(peer)
        return peer

    yield make
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


@pytest.fixture
async def start_service() -> AsyncIterator[ServiceFactory]:
    services: list[MatrixService] = []

    async def start(profile: Profile, recorder: Recorder, **kwargs: Any) -> MatrixService:
        kwargs.setdefault("sync_timeout_ms", 1000)
        service = MatrixService(profile, recorder, **kwargs)
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        if service._sync_task is not None or service.client is not None:
            await service.stop()


@pytest.fixture
async def js_peer_factory(synapse: LocalSynapse, tmp_path: Path) -> AsyncIterator[Callable]:
    """Start matrix-js-sdk peers (Rust crypto), each logged in as a new device."""
    peers: list[JsPeer] = []

    async def make(user: RegisteredUser, device_name: str = "js-peer") -> JsPeer:
        peer = JsPeer(tmp_path / f"js-peer-{len(peers)}.log")
        peers.append(peer)
        await peer.start()
        await peer.login(synapse.url, user.user_id, user.password, device_name)
        return peer

    yield make
    await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)


# Access tokens that expire within seconds (Synapse's refreshable tokens,
# MSC2918): a second Synapse, so the other tests keep the default lifetime.
SHORT_TOKEN_LIFETIME = "5s"


class RefreshingSynapse(LocalSynapse):
    def write_config(self) -> Path:
        import json

        config_file = super().write_config()
        config = json.loads(config_file.read_text())
        config["refreshable_access_token_lifetime"] = SHORT_TOKEN_LIFETIME
        config["refresh_token_lifetime"] = "1h"
        config_file.write_text(json.dumps(config, indent=2))
        return config_file


@pytest.fixture(scope="session")
def refreshing_synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSynapse]:
    server = RefreshingSynapse(tmp_path_factory.mktemp("refreshing-synapse"))
    server.start()
    yield server
    server.stop()


# The OAuth 2.0 API: Synapse delegates authentication to a local
# authorization server (tests/oauth_server.py, playing the Matrix
# Authentication Service's part), which it reaches with this shared secret.
OAUTH_SYNAPSE_SECRET = "not-a-secret-of-anything-oauth"


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[Any]:
    """The authorization server on 127.0.0.1 (Synapse's URL is filled in
    by `oauth_synapse`)."""
    import threading

    import werkzeug.serving

    from tests.oauth_server import AuthServer

    auth = AuthServer(OAUTH_SYNAPSE_SECRET)
    server = werkzeug.serving.make_server("127.0.0.1", 0, auth.app, threaded=True)
    auth.issuer = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    yield auth
    server.shutdown()
    thread.join(5)
    server.server_close()


@pytest.fixture(scope="session")
def oauth_synapse(
    tmp_path_factory: pytest.TempPathFactory, oauth_server: Any
) -> Iterator[LocalSynapse]:
    """A Synapse whose authentication is delegated to `oauth_server`
    (`matrix_authentication_service`): no password login, no registration,
    only the OAuth 2.0 API."""
    server = LocalSynapse(
        tmp_path_factory.mktemp("oauth-synapse"),
        extra_config={
            "matrix_authentication_service": {
                "enabled": True,
                "endpoint": oauth_server.issuer,
                "secret": OAUTH_SYNAPSE_SECRET,
            },
            "enable_registration": False,
            "password_config": {"enabled": False},
        },
    )
    oauth_server.synapse_url = server.url
    server.start()
    yield server
    server.stop()


# -- sync modes (issue 25) ---------------------------------------------------------------
# The service syncs with /v3/sync in tests unless a test asks for sliding sync
# or the run does (`TUICHAT_SYNC_MODE=sliding pytest` runs the whole suite on
# sliding sync); the tests of these encryption files run on both modes, so
# encryption is seen not to notice which API brought its events.
BOTH_SYNC_MODES = {
    "test_late_keys.py",
    "test_interop_js.py",
    "test_hostile_e2e.py",
    "test_cross_signing.py",
    "test_devices.py",
    "test_lazy_members.py",
}


_RUN_SYNC_MODE = os.environ.get("TUICHAT_SYNC_MODE") or "v3"


@pytest.fixture(autouse=True)
def sync_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    mode = str(getattr(request, "param", None) or _RUN_SYNC_MODE)
    monkeypatch.setenv("TUICHAT_SYNC_MODE", mode)
    return mode


def sync_timeline_limit(mode: str) -> int:
    """How many of a room's newest events one sync brings in `mode` (more
    left out make its timeline `limited`)."""
    from tuichat.matrix.service import sliding_sync, sync_loop

    return sliding_sync.LIST_TIMELINE_LIMIT if mode == "sliding" else sync_loop.TIMELINE_LIMIT


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if Path(str(metafunc.definition.fspath)).name in BOTH_SYNC_MODES:
        metafunc.parametrize("sync_mode", ["v3", "sliding"], indirect=True)
