"""The OAuth 2.0 API's grants: tokens got, refreshed and revoked.

- authorization code with PKCE S256 (RFC 7636, MSC2964) through a loopback
  redirect on 127.0.0.1 (RFC 8252), a random port, the `state` checked
  (`OAuthCallback` and the pages it answers the browser with);
- the device authorization grant (RFC 8628) for SSH and headless use.

Both ask for the client-server API and tuichat's own device (MSC2967), so
the device id is chosen by tuichat (`new_device_id`) and kept across logins
of one profile. Tokens come from the token endpoint and are refreshed there;
logout revokes them (RFC 7009, MSC4254). Every code and token received is
registered as a secret, so the log never shows it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from tuichat.log_redaction import register_secret
from tuichat.matrix.account.login import HTTP_TIMEOUT, short_error
from tuichat.matrix.account.oauth import (
    DEVICE_CODE_GRANT,
    AuthServer,
    OAuthError,
    OAuthUnreachable,
    TokenRefused,
    error_text,
    http_url,
    read_json,
)
from tuichat.matrix.account.oauth_client_registration import CALLBACK_PATH, ClientRegistration
from tuichat.matrix.account.sso import CLOSE_TAB_PAGE, LoopbackCallback
from tuichat.model.sanitize import clean_line

log = logging.getLogger(__name__)

# RFC 8628 §3.5: after `slow_down` the interval grows by 5 seconds.
SLOW_DOWN_STEP_S = 5.0
DEFAULT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class Tokens:
    """What the token endpoint granted; `expires_in_ms` is None when the
    access token does not expire."""

    access_token: str
    refresh_token: str
    expires_in_ms: int | None
    scope: str = ""

    def __repr__(self) -> str:
        return f"Tokens(<hidden>, expires_in_ms={self.expires_in_ms!r}, scope={self.scope!r})"


def _client_auth(client: ClientRegistration) -> tuple[dict[str, str], aiohttp.BasicAuth | None]:
    """Form fields and HTTP auth identifying the client at the token,
    device and revocation endpoints."""
    if client.client_secret:
        return {}, aiohttp.BasicAuth(client.client_id, client.client_secret)
    return {"client_id": client.client_id}, None


async def _post_form(
    url: str, form: Mapping[str, str], client: ClientRegistration
) -> tuple[int, object]:
    fields, auth = _client_auth(client)
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.post(
                url, data={**form, **fields}, auth=auth, headers={"Accept": "application/json"}
            ) as response:
                return response.status, await read_json(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            host = urlsplit(url).netloc
            raise OAuthUnreachable(f"cannot reach {host}: {short_error(error)}") from None


def _tokens(data: object, status: int, what: str) -> Tokens:
    if status != 200 or not isinstance(data, dict):
        text = error_text(data, status)
        if isinstance(data, dict) and data.get("error") == "invalid_grant":
            raise TokenRefused(f"{what} refused: {text}")
        raise OAuthError(f"{what} failed: {text}")
    access = data.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError(f"{what} failed: the answer holds no access token")
    register_secret(access)
    refresh = data.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        register_secret(refresh)
    else:
        refresh = ""
    expires = data.get("expires_in")
    expires_ms = int(expires * 1000) if isinstance(expires, (int, float)) and expires > 0 else None
    scope = data.get("scope")
    return Tokens(access, refresh, expires_ms, scope if isinstance(scope, str) else "")


def make_pkce() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636 §4)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_device_id() -> str:
    """A device id for a new device: ten capital letters, as Synapse makes."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization code request: the URL to open and what the answer
    is checked against."""

    url: str
    redirect_uri: str
    state: str
    verifier: str


def new_state() -> str:
    """A fresh `state` for one authorization request."""
    return secrets.token_urlsafe(24)


def authorization_request(
    server: AuthServer,
    client: ClientRegistration,
    redirect_uri: str,
    device_id: str,
    state: str,
) -> AuthorizationRequest:
    if server.code_challenge_methods and "S256" not in server.code_challenge_methods:
        raise OAuthError(f"{server.issuer} does not support PKCE with S256, which tuichat needs")
    verifier, challenge = make_pkce()
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": server.scope(device_id),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "query",
    }
    separator = "&" if urlsplit(server.authorization_endpoint).query else "?"
    return AuthorizationRequest(
        server.authorization_endpoint + separator + urlencode(query),
        redirect_uri,
        state,
        verifier,
    )


def code_from_redirect(text: str, state: str) -> str | None:
    """The authorization code in a redirect URL (or its query) that carries
    our `state`; None if it holds none. OAuthError if it carries an error
    (the person denied access) for our state."""
    text = text.strip()
    if not text:
        return None
    query = urlsplit(text).query if "://" in text or text.startswith("/") else text.lstrip("?")
    values = parse_qs(query)
    if values.get("state", [""])[0] != state:
        return None
    if "error" in values:
        code = clean_line(values["error"][0], max_length=100)
        description = clean_line(values.get("error_description", [""])[0], max_length=300)
        if code == "access_denied":
            raise OAuthError("access was denied in the browser; nothing was stored")
        raise OAuthError(
            "the authorization server answered "
            + ": ".join(part for part in (code, description) if part)
        )
    code = values.get("code", [""])[0]
    if not code or len(code) > 2048 or not code.isascii() or not code.isprintable():
        return None
    register_secret(code)
    return code


async def exchange_code(
    server: AuthServer, client: ClientRegistration, request: AuthorizationRequest, code: str
) -> Tokens:
    """The token request for an authorization code (RFC 6749 §4.1.3)."""
    status, data = await _post_form(
        server.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": request.redirect_uri,
            "code_verifier": request.verifier,
        },
        client,
    )
    return _tokens(data, status, "the token request")


async def refresh(token_endpoint: str, client: ClientRegistration, refresh_token: str) -> Tokens:
    """A refresh at the token endpoint (RFC 6749 §6). TokenRefused when the
    refresh token is no longer valid; OAuthUnreachable on network errors."""
    status, data = await _post_form(
        token_endpoint, {"grant_type": "refresh_token", "refresh_token": refresh_token}, client
    )
    if status >= 500:
        raise OAuthUnreachable(f"the token endpoint answered HTTP {status}")
    return _tokens(data, status, "refreshing the access token")


async def revoke(server: AuthServer, client: ClientRegistration, token: str, hint: str) -> None:
    """Revoke `token` (RFC 7009); OAuthError if the server refuses."""
    if server.revocation_endpoint is None:
        raise OAuthError(f"{server.issuer} offers no token revocation")
    status, data = await _post_form(
        server.revocation_endpoint, {"token": token, "token_type_hint": hint}, client
    )
    if status != 200:
        raise OAuthError(
            f"revoking the {hint.replace('_', ' ')} failed: {error_text(data, status)}"
        )


# -- device authorization grant (RFC 8628) -------------------------------------------


@dataclass(frozen=True)
class DeviceAuthorization:
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in_s: float
    interval_s: float

    def __repr__(self) -> str:
        return f"DeviceAuthorization(user_code={self.user_code!r}, uri={self.verification_uri!r})"


async def start_device_authorization(
    server: AuthServer, client: ClientRegistration, device_id: str
) -> DeviceAuthorization:
    """The device authorization request (RFC 8628 §3.1, §3.2)."""
    if not server.offers_device_grant or server.device_authorization_endpoint is None:
        raise OAuthError(
            f"{server.issuer} does not offer the device authorization grant; "
            "log in with a browser on this machine instead (without --device)"
        )
    status, data = await _post_form(
        server.device_authorization_endpoint, {"scope": server.scope(device_id)}, client
    )
    if status != 200 or not isinstance(data, dict):
        raise OAuthError(f"starting the device login failed: {error_text(data, status)}")
    device_code = data.get("device_code")
    user_code = clean_line(data.get("user_code"), max_length=64)
    uri = http_url(data.get("verification_uri"))
    if not isinstance(device_code, str) or not device_code or not user_code or uri is None:
        raise OAuthError("the device login answer lacks its code or address")
    register_secret(device_code)
    expires = data.get("expires_in")
    interval = data.get("interval")
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=http_url(data.get("verification_uri_complete")),
        expires_in_s=float(expires) if isinstance(expires, (int, float)) and expires > 0 else 600.0,
        interval_s=(
            float(interval)
            if isinstance(interval, (int, float)) and 0 < interval <= 60
            else DEFAULT_INTERVAL_S
        ),
    )


async def poll_device_token(
    server: AuthServer,
    client: ClientRegistration,
    authorization: DeviceAuthorization,
    *,
    on_tick: Callable[[float], None] | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> Tokens:
    """Poll the token endpoint until the person approved (RFC 8628 §3.4,
    §3.5): `authorization_pending` waits `interval`, `slow_down` adds five
    seconds to it, `expired_token` and `access_denied` end with a clear
    OAuthError. `on_tick(seconds_left)` is called before each wait."""
    deadline = time.monotonic() + authorization.expires_in_s
    interval = authorization.interval_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise OAuthError("the code expired before it was approved; run tuichat login again")
        if on_tick is not None:
            on_tick(left)
        await sleep(min(interval, left))
        try:
            status, data = await _post_form(
                server.token_endpoint,
                {"grant_type": DEVICE_CODE_GRANT, "device_code": authorization.device_code},
                client,
            )
        except OAuthUnreachable as error:
            log.info("polling the token endpoint failed (%s); trying again", error)
            continue
        error = data.get("error") if isinstance(data, dict) else None
        if status == 200:
            return _tokens(data, status, "the device login")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += SLOW_DOWN_STEP_S
            continue
        if error == "expired_token":
            raise OAuthError("the code expired before it was approved; run tuichat login again")
        if error == "access_denied":
            raise OAuthError("the login was denied in the browser; nothing was stored")
        raise OAuthError(f"the device login failed: {error_text(data, status)}")


# -- the loopback redirect ---------------------------------------------------------


class OAuthCallback(LoopbackCallback):
    """The loopback redirect URI (RFC 8252 §7.3) on 127.0.0.1 and a random
    port: its `token` is the authorization code of a redirect that carries
    our `state`, or the OAuthError of one that carries an error."""

    def __init__(self, state: str) -> None:
        super().__init__()
        self._path = CALLBACK_PATH
        self.state = state

    async def _callback(self, request: web.Request) -> web.Response:
        try:
            code = code_from_redirect(request.query_string, self.state)
        except OAuthError as error:
            if not self.token.done():
                self.token.set_exception(error)
            return web.Response(text=DENIED_PAGE, content_type="text/html", status=400)
        if code is None:
            return web.Response(text=NO_CODE_PAGE, content_type="text/html", status=400)
        if not self.token.done():
            self.token.set_result(code)
        return web.Response(text=CLOSE_TAB_PAGE, content_type="text/html")


NO_CODE_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tuichat</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1>tuichat did not get an authorization code</h1>
<p>This address carries no code for this login. Go back to the terminal and try again.</p>
</body></html>
"""

DENIED_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tuichat</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1>tuichat was not signed in</h1>
<p>The server refused or you denied the login. Go back to the terminal.</p>
</body></html>
"""
