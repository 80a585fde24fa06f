"""Logging in and out through the OAuth 2.0 API: from tokens to a session.

The protocol itself is in `oauth.py` (the authorization server),
`oauth_client_registration.py` and `oauth_grants.py`; this module turns the
grants' tokens into a stored session (the device's crypto store opened, its
keys uploaded, as `login.complete_login` does for the Matrix login API),
refreshes them for `TokenKeeper`, and logs out by revoking them.
"""

from __future__ import annotations

import json
import logging
import time

import aiohttp

from tuichat.log_redaction import register_secret
from tuichat.matrix.account import oauth_grants
from tuichat.matrix.account.login import HTTP_TIMEOUT, LoginError, store_session
from tuichat.matrix.account.oauth import AuthServer, fetch_auth_server
from tuichat.matrix.account.oauth_client_registration import (
    ClientCache,
    ClientRegistration,
    client_for,
)
from tuichat.matrix.account.oauth_grants import Tokens, new_device_id
from tuichat.matrix.account.session import Profile, Session
from tuichat.model.sanitize import clean_line

log = logging.getLogger(__name__)


async def prepare(
    profile: Profile, base_url: str, user_id: str | None
) -> tuple[AuthServer, ClientRegistration, str]:
    """The authorization server, tuichat's registration with it and the
    device id to ask for: the profile's own when it logs in again (its
    session expired or ended on the server), else a new one."""
    from tuichat.matrix.account.login import reusable_device_id

    device_id = await reusable_device_id(profile, user_id)
    server = await fetch_auth_server(base_url)
    if server is None:
        raise LoginError(f"{base_url} does not offer the OAuth 2.0 API")
    client = await client_for(profile, server)
    return server, client, device_id or new_device_id()


async def _whoami(base_url: str, access_token: str) -> tuple[str, str | None]:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.get(
                f"{base_url}/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {access_token}"},
            ) as response:
                status, text = response.status, await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LoginError(f"cannot reach {base_url}: {error}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("user_id"), str):
        said = clean_line(data.get("error"), max_length=200) if isinstance(data, dict) else ""
        raise LoginError(
            f"the homeserver does not accept the new access token (HTTP {status}"
            + (f": {said})" if said else ")")
        )
    device = data.get("device_id")
    return data["user_id"], device if isinstance(device, str) else None


async def complete(
    profile: Profile,
    base_url: str,
    server: AuthServer,
    client_registration: ClientRegistration,
    tokens: Tokens,
    device_id: str,
    user_id: str | None,
) -> Session:
    """Store the session the tokens open, on `device_id`: the crypto store
    opened (a new one with a fresh pickle key for a new device) and the
    device keys uploaded. A session of another account than the profile's
    (or than `user_id`) is revoked and nothing is stored."""
    from tuichat.matrix.transport.client import build_client

    whoami, whoami_device = await _whoami(base_url, tokens.access_token)
    if whoami_device is not None and whoami_device != device_id:
        await _revoke_quietly(server, client_registration, tokens)
        raise LoginError(
            f"the server gave device {clean_line(whoami_device)}, not the {device_id} "
            "tuichat asked for; nothing was stored"
        )
    previous = profile.load_session()
    wrong = None
    if user_id and user_id.startswith("@") and whoami != user_id:
        wrong = f"you signed in as {clean_line(whoami)}, not {user_id}; nothing was stored"
    elif previous is not None and whoami != previous.user_id:
        wrong = (
            f"you signed in as {clean_line(whoami)}, but {profile.root} belongs to "
            f"{previous.user_id}; run `tuichat logout` first or choose another --profile"
        )
    if wrong is not None:
        await _revoke_quietly(server, client_registration, tokens)
        raise LoginError(wrong)
    if previous is not None and previous.device_id != device_id:
        previous = None  # another device: a new crypto store
    profile.ensure()
    if previous is None:
        profile.remove_session()  # leftovers of an earlier, unfinished login
        ClientCache(profile).put(client_registration)
        profile.create_pickle_key()
    now_ms = int(time.time() * 1000)
    session = Session(
        base_url,
        whoami,
        device_id,
        "",
        created_ms=previous.created_ms if previous is not None else now_ms,
        oauth_issuer=server.issuer,
        oauth_client_id=client_registration.client_id,
        oauth_token_endpoint=server.token_endpoint,
    ).with_tokens(tokens.access_token, tokens.refresh_token, tokens.expires_in_ms, now_ms)
    client = build_client(profile, session, max_timeouts=0)
    try:
        client.restore_login(session.user_id, session.device_id, session.access_token)
        await store_session(profile, client, session, relogin=previous is not None)
        return session
    except BaseException:
        if previous is None and profile.load_session() is None:
            profile.remove_session()
        raise
    finally:
        await client.close()
        client.extras.close()


async def _revoke_quietly(server: AuthServer, client: ClientRegistration, tokens: Tokens) -> None:
    """Revoke tokens that must not be kept; a failure is only logged."""
    for token, hint in (
        (tokens.refresh_token, "refresh_token"),
        (tokens.access_token, "access_token"),
    ):
        if not token:
            continue
        try:
            await oauth_grants.revoke(server, client, token, hint)
        except LoginError as error:
            log.warning("revoking an unwanted token failed: %s", error)


def client_of(profile: Profile, session: Session) -> ClientRegistration:
    """tuichat's registration for an OAuth session (with its secret, if
    the server handed one out)."""
    cached = ClientCache(profile).get(session.oauth_issuer)
    if cached is not None and cached.client_id == session.oauth_client_id:
        return cached
    return ClientRegistration(session.oauth_issuer, session.oauth_client_id, (), ())


async def refresh_session(profile: Profile, session: Session) -> Session:
    """New tokens for an OAuth session from its token endpoint, stored in
    the profile. TokenRefused: the session is over; OAuthUnreachable: try
    again later."""
    tokens = await oauth_grants.refresh(
        session.oauth_token_endpoint, client_of(profile, session), session.refresh_token
    )
    register_secret(tokens.access_token)
    fresh = session.with_tokens(
        tokens.access_token,
        tokens.refresh_token or session.refresh_token,
        tokens.expires_in_ms,
        int(time.time() * 1000),
    )
    profile.save_session(fresh)
    return fresh


async def logout(profile: Profile, session: Session) -> None:
    """End an OAuth session on the server: revoke its refresh token (which
    ends the session and its device) and its access token (RFC 7009). An
    already invalid token counts as done: the server forgot it."""
    server = await fetch_auth_server(session.homeserver)
    if server is None:
        raise LoginError(
            f"{session.homeserver} no longer publishes its OAuth 2.0 metadata; nothing was removed"
        )
    client = client_of(profile, session)
    for token, hint in (
        (session.refresh_token, "refresh_token"),
        (session.access_token, "access_token"),
    ):
        if token:
            await oauth_grants.revoke(server, client, token, hint)
    log.info("the OAuth session's tokens are revoked")
