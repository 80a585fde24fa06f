"""The log file never holds the access token, the pickle key or message
text, even at DEBUG level with nio logging everything it does."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ServiceFactory, UserFactory, log_in, service_and_peer_in_room
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, join_invite
from tuichat.cli import _configure_logging
from tuichat.demo.synapse import LocalSynapse
from tuichat.log_redaction import redact
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService


def test_redaction_removes_token_shapes() -> None:
    assert "abc123" not in redact("GET /sync?access_token=abc123&since=s1")
    assert "abc123" not in redact("Authorization: Bearer abc123")
    assert "abc123" not in redact('{"access_token": "abc123"}')
    assert "abc123" not in redact("{'access_token': 'abc123', 'device_id': 'D'}")


async def test_a_logged_session_keeps_secrets_and_plaintext_out_of_the_log(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "tuichat.log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        _configure_logging(str(log_file))
        root.setLevel(logging.DEBUG)  # more than the CLI's INFO: the worst case
        alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
        await log_in(synapse, profile, alice)
        peer: NioPeer = await peer_factory(bob)
        room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
        recorder = Recorder()
        service = await start_service(profile, recorder)
        await join_invite(service, recorder, peer, room_id)
        service.send_text(room_id, "plaintext-canary-from-alice")
        await peer.wait_for_text(room_id, "plaintext-canary-from-alice", timeout=30)
        await peer.send_text(room_id, "plaintext-canary-from-bob")
        await wait_until(lambda: recorder.text_from(room_id, "plaintext-canary-from-bob"), 30)
        session = profile.load_session()
        assert session is not None
        secrets = {
            "access token": session.access_token,
            "pickle key": profile.pickle_key(),
        }
        await service.stop()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    text = log_file.read_text()
    assert "sync" in text.lower() and len(text) > 1000  # it did log the session
    for name, secret in secrets.items():
        assert secret not in text, f"the {name} is in the log"
    leaked = [line for line in text.splitlines() if "plaintext-canary" in line]
    assert not leaked, leaked[:3]
    assert oct(log_file.stat().st_mode & 0o777) == "0o600"


# A newline and what the log's own lines start with: a forged record.
FORGED = "\n2026-01-01 00:00:00,000 ERROR tuichat.forged: \x1b[31mthe server was compromised"


def test_each_record_is_one_line_with_controls_escaped_and_tokens_redacted(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "tuichat.log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        _configure_logging(str(log_file))
        log = logging.getLogger("tuichat.test")
        log.warning("event %s at GET /sync?access_token=abc123secret", FORGED)
        try:
            raise ValueError(f"server said {FORGED}")
        except ValueError:
            log.exception("request failed")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    lines = log_file.read_text().splitlines()
    assert len(lines) == 2, lines
    assert "abc123secret" not in lines[0] and "<redacted>" in lines[0]
    assert "\\n2026-01-01 00:00:00,000 ERROR tuichat.forged: \\x1b[31m" in lines[0]
    assert "Traceback" in lines[1] and "\\nValueError: server said \\n2026" in lines[1]


async def test_an_event_id_from_a_peer_cannot_forge_a_log_line(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    tmp_path: Path,
) -> None:
    """A reply names its parent by an event id the sender chooses; fetching
    that parent fails and is logged with the id and the server's answer."""
    log_file = tmp_path / "tuichat.log"
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        _configure_logging(str(log_file))
        service, _recorder, _peer, room_id = await service_and_peer_in_room(
            synapse, new_user, profile, peer_factory, start_service, encrypted=False
        )
        assert await service.fetch_event(room_id, "$parent" + FORGED) is None
        await service.stop()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    lines = log_file.read_text().splitlines()
    fetching = [line for line in lines if "fetching $parent" in line]
    assert len(fetching) == 1, fetching
    assert "tuichat.forged" in fetching[0] and "\x1b" not in fetching[0]
    assert not [line for line in lines if line.startswith("2026-01-01")]


async def test_refresh_tokens_and_refreshed_access_tokens_stay_out_of_the_log(
    refreshing_synapse: LocalSynapse,
    tmp_path: Path,
) -> None:
    """On 5-second access tokens: the login's tokens and every token a
    refresh brings (access and refresh) are secrets the log never holds."""
    log_file = tmp_path / "tuichat.log"
    profile = Profile(tmp_path / "profile")
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    seen: set[str] = set()
    try:
        _configure_logging(str(log_file))
        root.setLevel(logging.DEBUG)
        alice = refreshing_synapse.register(f"alice-{uuid.uuid4().hex[:8]}")
        await log_in(refreshing_synapse, profile, alice)
        recorder = Recorder()
        service = MatrixService(profile, recorder, sync_timeout_ms=1000)
        await service.start()
        try:
            deadline = asyncio.get_running_loop().time() + 12
            while asyncio.get_running_loop().time() < deadline:
                seen.update((service.session.access_token, service.session.refresh_token))
                await asyncio.sleep(0.2)
            stored = profile.load_session()
            assert stored is not None
            seen.update((stored.access_token, stored.refresh_token))
        finally:
            await service.stop()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    text = log_file.read_text()
    assert text.count("access token refreshed") >= 2, "no refresh happened"
    seen.discard("")
    assert len(seen) >= 4  # the first pair and at least one refreshed pair
    leaked = [secret for secret in seen if secret in text]
    assert not leaked, f"{len(leaked)} token(s) in the log"


async def test_oauth_tokens_codes_and_refreshes_stay_out_of_the_log(
    oauth_synapse: LocalSynapse, oauth_server: Any, tmp_path: Path
) -> None:
    """The OAuth 2.0 API: the device code, the tokens of the login and
    every pair a refresh at the token endpoint brings (4-second access
    tokens), and the revoked ones at logout, never reach the log."""
    from tests.test_oauth_login import oauth_log_in
    from tuichat.matrix.account.login import logout

    log_file = tmp_path / "tuichat.log"
    profile = Profile(tmp_path / "profile")
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    seen: set[str] = set()
    oauth_server.access_token_lifetime = 4
    try:
        _configure_logging(str(log_file))
        root.setLevel(logging.DEBUG)
        session = await oauth_log_in(oauth_server, oauth_synapse, profile)
        seen.update(
            credential["device_code"] for credential in oauth_server.device_credentials.values()
        )
        recorder = Recorder()
        service = MatrixService(profile, recorder, sync_timeout_ms=1000)
        await service.start()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while asyncio.get_running_loop().time() < deadline:
                seen.update((service.session.access_token, service.session.refresh_token))
                await asyncio.sleep(0.2)
        finally:
            await service.stop()
        stored = profile.load_session()
        assert stored is not None
        seen.update((session.access_token, session.refresh_token))
        seen.update((stored.access_token, stored.refresh_token))
        await logout(profile)
    finally:
        oauth_server.access_token_lifetime = 300
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])
    text = log_file.read_text()
    assert text.count("access token refreshed") >= 2, "no refresh happened"
    assert "revoked" in text
    seen.discard("")
    assert len(seen) >= 5
    leaked = [secret for secret in seen if secret in text]
    assert not leaked, f"{len(leaked)} secret(s) in the log"
