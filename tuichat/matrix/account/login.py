"""Logging in and out: homeserver discovery, password login, device logout
(sessions of the OAuth 2.0 API log out by revoking, in oauth_login.py).

Errors are `LoginError` with a one-line message meant for the user; the CLI
prints it and exits with code 1.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from tuichat.log_redaction import register_secret
from tuichat.matrix.account.identifiers import SERVER_NAME, InvalidIdentifier, UserName
from tuichat.matrix.account.identifiers import parse_user as parse_identifier
from tuichat.matrix.account.session import Profile, Session
from tuichat.model.sanitize import clean_line

if TYPE_CHECKING:
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

log = logging.getLogger(__name__)

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=20)


class LoginError(Exception):
    """Login, logout or discovery failed; the message is for the user."""


def parse_user(user: str) -> UserName:
    """Accept `@alice:example.org` or `alice`."""
    try:
        return parse_identifier(user)
    except InvalidIdentifier as error:
        raise LoginError(str(error)) from None


def _normalise_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LoginError(f"{url!r} is not a valid homeserver URL (http:// or https://)")
    if parts.query or parts.fragment:
        raise LoginError(f"{url!r} is not a valid homeserver URL")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


async def _get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url, allow_redirects=True) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def discover_homeserver(server_name: str, *, scheme: str = "https") -> str:
    """Resolve a bare server name through `.well-known/matrix/client`.

    `scheme` is https, as the spec says; tests use http on loopback."""
    if not SERVER_NAME.match(server_name):
        raise LoginError(f"{server_name!r} is not a valid server name")
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            status, data = await _get_json(
                http, f"{scheme}://{server_name}/.well-known/matrix/client"
            )
        except (aiohttp.ClientError, OSError, TimeoutError):
            status, data = 404, None
        if status == 200 and isinstance(data, dict):
            homeserver = data.get("m.homeserver")
            base_url = homeserver.get("base_url") if isinstance(homeserver, dict) else None
            if not isinstance(base_url, str):
                raise LoginError(
                    f"{server_name}'s .well-known/matrix/client has no m.homeserver base_url"
                )
            return _normalise_base_url(base_url)
    # No well-known: the spec says to try the server name itself.
    return f"{scheme}://{server_name}"


async def check_homeserver(base_url: str) -> None:
    """Fail early, with a clear message, if `base_url` is not a homeserver."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            status, data = await _get_json(http, f"{base_url}/_matrix/client/versions")
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LoginError(f"cannot reach {base_url}: {short_error(error)}") from None
    if status != 200 or not isinstance(data, dict) or "versions" not in data:
        raise LoginError(f"{base_url} does not look like a Matrix homeserver")


def short_error(error: BaseException) -> str:
    """The first line of an error's message, or its type's name if it has none."""
    text = str(error) or type(error).__name__
    return text.splitlines()[0]


async def resolve_homeserver(homeserver: str | None, user: UserName | None) -> str:
    """The client-server base URL from --homeserver or the user id's server."""
    if homeserver:
        if "://" in homeserver:
            return _normalise_base_url(homeserver)
        return await discover_homeserver(homeserver)
    if user is not None and user.server_name:
        return await discover_homeserver(user.server_name)
    raise LoginError("give --homeserver, or a full user id such as @alice:example.org")


async def login(
    profile: Profile,
    *,
    homeserver: str | None,
    user: str,
    password: str,
    device_name: str = "tuichat",
) -> Session:
    """Log in with a password and store the session in `profile`.

    A fresh random pickle key is created for the new device's crypto store,
    its identity keys are generated and uploaded before this returns.
    """
    name = parse_user(user)
    base_url = await resolve_homeserver(homeserver, name)
    await check_homeserver(base_url)
    device_id = await reusable_device_id(profile, name.user_id)
    user_id = name.user_id or name.localpart
    auth = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    return await complete_login(
        profile, base_url, user_id, device_id, auth, device_name, "password"
    )


async def login_with_token(
    profile: Profile,
    base_url: str,
    token: str,
    *,
    device_id: str | None,
    device_name: str = "tuichat",
    user_id: str | None = None,
) -> Session:
    """Exchange a login token (`m.login.token`, as SSO hands out) for a
    session stored in `profile`, like `login` does for a password.
    `device_id` is `reusable_device_id`'s answer, asked before the person
    went through the browser; `user_id`, if given (`--user`), is the account
    the person meant to sign in as."""
    auth = {"type": "m.login.token", "token": token}
    return await complete_login(
        profile, base_url, user_id or "", device_id, auth, device_name, "token"
    )


async def reusable_device_id(profile: Profile, user_id: str | None) -> str | None:
    """The device id to log in again with, or None for a new device.

    A profile that holds no session gets a new device. One whose session
    the server no longer accepts (`M_UNKNOWN_TOKEN`: expired, or ended on
    the server) is logged into again on the same device, keeping its
    crypto store and cache. One whose session still works is refused: two
    live sessions must not share a crypto store."""
    existing = profile.load_session()
    if existing is None:
        return None
    refused = "run `tuichat logout` first or choose another --profile"
    if user_id is not None and user_id != existing.user_id:
        raise LoginError(
            f"{profile.root} is logged in as {existing.user_id}, not {user_id}; {refused}"
        )
    if await _token_still_works(profile, existing):
        raise LoginError(
            f"{profile.root} is already logged in as {existing.user_id} "
            f"(device {existing.device_id}); {refused}"
        )
    log.info("the stored session is no longer accepted: logging in on the same device")
    return existing.device_id


async def _token_still_works(profile: Profile, session: Session) -> bool:
    """Ask the server whether the stored access token is still valid; only
    a clear `M_UNKNOWN_TOKEN` that a refresh cannot mend counts as no (an
    unreachable server does not: the profile is then kept as it is). A token
    that had only expired is refreshed here, and the new tokens stored."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.get(
                f"{session.homeserver}/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {session.access_token}"},
            ) as response:
                status = response.status
                body = await response.text()
            if status == 401 and _errcode(body) == "M_UNKNOWN_TOKEN" and session.oauth_issuer:
                return await _oauth_refresh_works(profile, session)
            if status == 401 and _errcode(body) == "M_UNKNOWN_TOKEN" and session.refresh_token:
                async with http.post(
                    f"{session.homeserver}/_matrix/client/v3/refresh",
                    json={"refresh_token": session.refresh_token},
                ) as response:
                    if response.status == 200:
                        _store_refreshed(profile, session, await response.text())
                        return True
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("cannot check the stored session: %s", short_error(error))
            return True
    if status == 200:
        return True
    return _errcode(body) != "M_UNKNOWN_TOKEN"


async def _oauth_refresh_works(profile: Profile, session: Session) -> bool:
    """Whether an OAuth session whose access token is refused can be
    refreshed at its token endpoint (the new tokens are stored)."""
    from tuichat.matrix.account import oauth, oauth_login

    if not session.refresh_token:
        return False
    try:
        await oauth_login.refresh_session(profile, session)
    except oauth.TokenRefused:
        return False
    except oauth.OAuthError as error:
        log.warning("cannot check the stored session: %s", error)
        return True
    return True


def _store_refreshed(profile: Profile, session: Session, body: str) -> None:
    """Keep the tokens a refresh answered with (the old refresh token is
    spent)."""
    try:
        reply = json.loads(body)
    except ValueError:
        return
    access = reply.get("access_token") if isinstance(reply, dict) else None
    if not isinstance(access, str):
        return
    refresh = reply.get("refresh_token")
    expires = reply.get("expires_in_ms")
    register_secret(access)
    if isinstance(refresh, str):
        register_secret(refresh)
    profile.save_session(
        session.with_tokens(
            access,
            refresh if isinstance(refresh, str) else session.refresh_token,
            expires if isinstance(expires, int) else None,
            int(time.time() * 1000),
        )
    )


def _errcode(body: str) -> str | None:
    try:
        errcode = json.loads(body).get("errcode")
    except (ValueError, AttributeError):
        return None
    return errcode if isinstance(errcode, str) else None


async def store_session(
    profile: Profile, client: TuichatClient, session: Session, *, relogin: bool
) -> None:
    """Store a new login's session in `profile` and upload the device keys
    with `client` (built on the profile's crypto store). `relogin`: the
    profile's device logged in again."""
    if relogin:
        # The server may have forgotten this device's keys with the device
        # (a logout): upload them again, the same identity, so peers see
        # the same device.
        client.olm.account.shared = False
    profile.save_session(session)
    try:
        if client.should_upload_keys:
            await client.keys_upload()
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        # The keys are stored; the first sync uploads them.
        log.warning("uploading device keys failed: %s", error)
    profile.fix_permissions()


async def complete_login(
    profile: Profile,
    base_url: str,
    user: str,
    device_id: str | None,
    auth: dict[str, Any],
    device_name: str,
    what: str,
) -> Session:
    """Run one login request (`auth`: its type and fields) with a client on
    `profile`'s crypto store, then store the session and upload the device
    keys.

    `device_id` None is a new device: a fresh random pickle key is created
    for its crypto store. Otherwise the profile's device is logged into
    again, its pickle key and store kept; the account must be the same."""
    from tuichat.matrix.transport.client import build_client

    previous = profile.load_session() if device_id else None
    profile.ensure()
    if previous is None:
        profile.remove_session()  # leftovers of an earlier, unfinished login
        profile.create_pickle_key()
    pending = Session(base_url, user, device_id or "", "")
    client = build_client(profile, pending, max_timeouts=0)
    try:
        try:
            session = await request_login(client, base_url, auth, device_name, device_id, what)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LoginError(f"cannot reach {base_url}: {short_error(error)}") from None
        if what == "token" and user.startswith("@") and session.user_id != user:
            await _discard_login(base_url, session.access_token)
            raise LoginError(
                f"you signed in as {clean_line(session.user_id)}, not {user}; nothing was stored"
            )
        if previous is not None and session.user_id != previous.user_id:
            await _discard_login(base_url, session.access_token)
            raise LoginError(
                f"you signed in as {clean_line(session.user_id)}, but {profile.root} "
                f"belongs to {previous.user_id}; run `tuichat logout` first "
                "or choose another --profile"
            )
        if previous is not None:
            session = replace(session, created_ms=previous.created_ms)
        await store_session(profile, client, session, relogin=previous is not None)
        return session
    except BaseException:
        if previous is None and profile.load_session() is None:
            profile.remove_session()
        raise
    finally:
        await client.close()
        client.extras.close()


async def _post_logout(base_url: str, access_token: str) -> tuple[int, str]:
    """POST /logout with `access_token`: the status and the body."""
    async with (
        aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
        http.post(
            f"{base_url}/_matrix/client/v3/logout",
            headers={"Authorization": f"Bearer {access_token}"},
            json={},
        ) as response,
    ):
        return response.status, await response.text()


async def _discard_login(base_url: str, access_token: str) -> None:
    """Log out a session that must not be kept (it belongs to another
    account than the profile's); a failure is only logged."""
    try:
        await _post_logout(base_url, access_token)
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        log.warning("logging out the unwanted session failed: %s", short_error(error))


def login_request_body(
    auth: dict[str, Any], device_name: str, device_id: str | None = None
) -> dict[str, Any]:
    """The body of `POST /login` for any login type (`auth`: the type and its
    fields): asks for a refresh token, and names the device to log in as
    when the profile already has one."""
    body = {**auth, "initial_device_display_name": device_name, "refresh_token": True}
    if device_id:
        body["device_id"] = device_id
    return body


async def request_login(
    client: TuichatClient,
    base_url: str,
    auth: dict[str, Any],
    device_name: str,
    device_id: str | None = None,
    what: str = "password",
) -> Session:
    """Make the login request and hand the answer to nio (which opens the
    device's crypto store); the session it gives, with the refresh token and
    expiry when the server uses refreshable tokens. LoginError if refused."""
    from nio import LoginResponse

    body = login_request_body(auth, device_name, device_id)
    response = await client.send(
        "POST",
        "/_matrix/client/v3/login",
        json.dumps(body),
        {"Content-Type": "application/json"},
    )
    text = await response.text()
    try:
        reply = json.loads(text)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise LoginError(f"login failed: HTTP {response.status}")
    if response.status != 200:
        message = clean_line(str(reply.get("error") or "")) or "login failed"
        if reply.get("errcode") == "M_FORBIDDEN" and what == "password":
            message = "wrong user name or password"
        raise LoginError(f"login failed: {message}")
    for key in ("access_token", "refresh_token"):
        if isinstance(reply.get(key), str):
            register_secret(reply[key])
    parsed = LoginResponse.from_dict(reply)
    if not isinstance(parsed, LoginResponse):
        raise LoginError("login failed: the server's answer lacks the session")
    await client.receive_response(parsed)
    refresh_token = reply.get("refresh_token")
    expires = reply.get("expires_in_ms")
    now_ms = int(time.time() * 1000)
    return Session(base_url, parsed.user_id, parsed.device_id, "", created_ms=now_ms).with_tokens(
        parsed.access_token,
        refresh_token if isinstance(refresh_token, str) else "",
        expires if isinstance(expires, int) else None,
        now_ms,
    )


async def logout(profile: Profile) -> Session:
    """Log this device out on the server, then forget it locally."""
    session = profile.load_session()
    if session is None:
        raise LoginError(f"{profile.root} holds no session: nothing to log out")
    if session.oauth_issuer:
        from tuichat.matrix.account import oauth_login

        try:
            await oauth_login.logout(profile, session)
        except LoginError as error:
            raise LoginError(f"{error}; nothing was removed") from None
        profile.remove_session()
        return session
    try:
        status, body = await _post_logout(session.homeserver, session.access_token)
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise LoginError(
            f"cannot reach {session.homeserver}: {short_error(error)}; nothing was removed"
        ) from None
    # An already invalid token means the device is gone on the server.
    if status != 200 and _errcode(body) != "M_UNKNOWN_TOKEN":
        raise LoginError(f"logout failed: HTTP {status}; nothing was removed")
    profile.remove_session()
    return session
