"""Logging in and out: homeserver discovery, password login, device logout.

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


async def resolve_homeserver(homeserver: str | None, user: UserName) -> str:
    """The client-server base URL from --homeserver or the user id's server."""
    if homeserver:
        if "://" in homeserver:
            return _normalise_base_url(homeserver)
        return await discover_homeserver(homeserver)
    if user.server_name:
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
    A profile whose session the server ended (a logout elsewhere, an expired
    refresh token) logs in again as the same device, keeping its keys and
    cache (see `_ended_session`).
    """
    from tuichat.matrix.client import build_client

    name = parse_user(user)
    ended = await _ended_session(profile, name)
    base_url = ended.homeserver if ended else await resolve_homeserver(homeserver, name)
    await check_homeserver(base_url)
    profile.ensure()
    if ended is None:
        profile.remove_session()  # leftovers of an earlier, unfinished login
        profile.create_pickle_key()
    pending = Session(base_url, name.user_id or name.localpart, "", "")
    client = build_client(profile, pending, max_timeouts=0)
    try:
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": pending.user_id},
            "password": password,
        }
        device_id = ended.device_id if ended else None
        try:
            session = await request_login(client, base_url, auth, device_name, device_id)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LoginError(f"cannot reach {base_url}: {_short(error)}") from None
        if ended is not None:
            session = replace(session, created_ms=ended.created_ms)
            # The server forgot this device's keys with the device: upload
            # them again (the same identity, so peers see the same device).
            client.olm.account.shared = False
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
        if ended is None and profile.load_session() is None:
            profile.remove_session()
        raise
    finally:
        await client.close()
        client.extras.close()


async def _ended_session(profile: Profile, name: UserName) -> Session | None:
    """The profile's session if the server has ended it (its access token is
    unknown and cannot be refreshed), for a login as the same device; None
    for an empty profile. LoginError while the session still works, or for
    another account."""
    existing = profile.load_session()
    if existing is None:
        return None
    taken = LoginError(
        f"{profile.root} is already logged in as {existing.user_id} "
        f"(device {existing.device_id}); run `tuichat logout` first "
        "or choose another --profile"
    )
    if (name.user_id and name.user_id != existing.user_id) or (
        not name.user_id and existing.user_id.split(":")[0] != f"@{name.localpart}"
    ):
        raise taken
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.get(
                f"{existing.homeserver}/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {existing.access_token}"},
            ) as response:
                status, body = response.status, await response.text()
            if status == 401 and existing.refresh_token and _errcode(body) == "M_UNKNOWN_TOKEN":
                async with http.post(
                    f"{existing.homeserver}/_matrix/client/v3/refresh",
                    json={"refresh_token": existing.refresh_token},
                ) as response:
                    if response.status == 200:
                        raise taken  # only expired: tuichat refreshes it when it starts
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise LoginError(f"cannot reach {existing.homeserver}: {_short(error)}") from None
    if status == 401 and _errcode(body) == "M_UNKNOWN_TOKEN":
        log.info("the stored session was ended by the server; logging in as the same device")
        return existing
    raise taken


def _errcode(body: str) -> str | None:
    try:
        errcode = json.loads(body).get("errcode")
    except (ValueError, AttributeError):
        return None
    return errcode if isinstance(errcode, str) else None


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
        if reply.get("errcode") == "M_FORBIDDEN":
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
