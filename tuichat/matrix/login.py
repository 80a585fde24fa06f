"""Logging in and out: homeserver discovery, password login, device logout.

Errors are `LoginError` with a one-line message meant for the user; the CLI
prints it and exits with code 1.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from tuichat.matrix.identifiers import SERVER_NAME, InvalidIdentifier, UserName
from tuichat.matrix.identifiers import parse_user as parse_identifier
from tuichat.matrix.session import Profile, Session
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
            raise LoginError(f"cannot reach {base_url}: {_short(error)}") from None
    if status != 200 or not isinstance(data, dict) or "versions" not in data:
        raise LoginError(f"{base_url} does not look like a Matrix homeserver")


def _short(error: BaseException) -> str:
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

    async def send(client: TuichatClient) -> object:
        return await client.login(password, device_name=device_name)

    return await complete_login(
        profile, base_url, name.user_id or name.localpart, device_id, send, "password"
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

    async def send(client: TuichatClient) -> object:
        return await client.login(token=token, device_name=device_name)

    return await complete_login(profile, base_url, user_id or "", device_id, send, "token")


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
    if await _token_still_works(existing):
        raise LoginError(
            f"{profile.root} is already logged in as {existing.user_id} "
            f"(device {existing.device_id}); {refused}"
        )
    log.info("the stored session is no longer accepted: logging in on the same device")
    return existing.device_id


async def _token_still_works(session: Session) -> bool:
    """Ask the server whether the stored access token is still valid; only
    a clear `M_UNKNOWN_TOKEN` counts as no (an unreachable server does not:
    the profile is then kept as it is)."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.get(
                f"{session.homeserver}/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {session.access_token}"},
            ) as response:
                status = response.status
                body = await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("cannot check the stored session: %s", _short(error))
            return True
    if status == 200:
        return True
    try:
        errcode = json.loads(body).get("errcode")
    except (ValueError, AttributeError):
        errcode = None
    return errcode != "M_UNKNOWN_TOKEN"


async def complete_login(
    profile: Profile,
    base_url: str,
    user: str,
    device_id: str | None,
    send: Callable[[TuichatClient], Awaitable[object]],
    what: str,
) -> Session:
    """Run one login request (`send`) with a client on `profile`'s crypto
    store, then store the session and upload the device keys.

    `device_id` None is a new device: a fresh random pickle key is created
    for its crypto store. Otherwise the profile's device is logged into
    again, its pickle key and store kept; the account must be the same."""
    from nio import LoginResponse

    from tuichat.matrix.client import build_client

    previous = profile.load_session() if device_id else None
    profile.ensure()
    if previous is None:
        profile.remove_session()  # leftovers of an earlier, unfinished login
        profile.create_pickle_key()
    pending = Session(base_url, user, device_id or "", "")
    client = build_client(profile, pending, max_timeouts=0)
    try:
        try:
            response = await send(client)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LoginError(f"cannot reach {base_url}: {_short(error)}") from None
        if not isinstance(response, LoginResponse):
            message = clean_line(getattr(response, "message", "")) or "login failed"
            if getattr(response, "status_code", "") == "M_FORBIDDEN" and what == "password":
                message = "wrong user name or password"
            raise LoginError(f"login failed: {message}")
        if what == "token" and user.startswith("@") and response.user_id != user:
            await _discard_login(base_url, response.access_token)
            raise LoginError(
                f"you signed in as {clean_line(response.user_id)}, not {user}; nothing was stored"
            )
        if previous is not None and response.user_id != previous.user_id:
            await _discard_login(base_url, response.access_token)
            raise LoginError(
                f"you signed in as {clean_line(response.user_id)}, but {profile.root} "
                f"belongs to {previous.user_id}; run `tuichat logout` first "
                "or choose another --profile"
            )
        session = Session(
            base_url,
            response.user_id,
            response.device_id,
            response.access_token,
            created_ms=int(time.time() * 1000),
        )
        profile.save_session(session)
        try:
            if client.should_upload_keys:
                await client.keys_upload()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            # The keys are stored; the first sync uploads them.
            log.warning("uploading device keys failed: %s", error)
        profile.fix_permissions()
        return session
    except BaseException:
        if previous is None and profile.load_session() is None:
            profile.remove_session()
        raise
    finally:
        await client.close()
        client.extras.close()


async def _discard_login(base_url: str, access_token: str) -> None:
    """Log out a session that must not be kept (it belongs to another
    account than the profile's); a failure is only logged."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.post(
                f"{base_url}/_matrix/client/v3/logout",
                headers={"Authorization": f"Bearer {access_token}"},
                json={},
            ) as response:
                await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.warning("logging out the unwanted session failed: %s", _short(error))


async def logout(profile: Profile) -> Session:
    """Log this device out on the server, then forget it locally."""
    session = profile.load_session()
    if session is None:
        raise LoginError(f"{profile.root} holds no session: nothing to log out")
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.post(
                f"{session.homeserver}/_matrix/client/v3/logout",
                headers={"Authorization": f"Bearer {session.access_token}"},
                json={},
            ) as response:
                status = response.status
                body = await response.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise LoginError(
                f"cannot reach {session.homeserver}: {_short(error)}; nothing was removed"
            ) from None
    if status != 200:
        try:
            errcode = json.loads(body).get("errcode")
        except (ValueError, AttributeError):
            errcode = None
        # An already invalid token means the device is gone on the server.
        if errcode != "M_UNKNOWN_TOKEN":
            raise LoginError(f"logout failed: HTTP {status}; nothing was removed")
    profile.remove_session()
    return session
