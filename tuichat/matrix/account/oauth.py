"""The OAuth 2.0 API (Matrix 1.15, "next-generation auth"): the protocol.

A homeserver that delegates authentication names its authorization server
in `GET /_matrix/client/v1/auth_metadata` (MSC2965; older servers answer on
the unstable `org.matrix.msc2965` path). tuichat registers itself there as a
native client (dynamic client registration, RFC 7591 / MSC2966), once per
server and profile (`ClientCache`), and asks for the Matrix scopes
(MSC2967): the client-server API and its own device, so the device id is
chosen by tuichat and kept across logins of one profile. The grants:

- authorization code with PKCE S256 (RFC 7636, MSC2964) through a loopback
  redirect on 127.0.0.1 (RFC 8252), a random port, the `state` checked;
- the device authorization grant (RFC 8628) for SSH and headless use.

Tokens come from the token endpoint and are refreshed there; logout revokes
them (RFC 7009, MSC4254). Everything the server sends that may be printed is
sanitised here; URLs are accepted only as http(s).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from aiohttp import web

from tuichat import __version__
from tuichat.log_redaction import register_secret
from tuichat.matrix.account.login import HTTP_TIMEOUT, LoginError
from tuichat.matrix.account.session import Profile, ProfileError, Session, write_private
from tuichat.matrix.account.sso import CLOSE_TAB_PAGE, LoopbackCallback
from tuichat.model.sanitize import clean_line

log = logging.getLogger(__name__)

# Where the server metadata is asked for: stable (Matrix 1.15), then MSC2965.
AUTH_METADATA_PATHS = (
    "/_matrix/client/v1/auth_metadata",
    "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
)

# The Matrix scopes, stable (Matrix 1.15) and MSC2967's unstable names.
SCOPE_API = "urn:matrix:client:api:*"
SCOPE_DEVICE = "urn:matrix:client:device:"
UNSTABLE_SCOPE_API = "urn:matrix:org.matrix.msc2967.client:api:*"
UNSTABLE_SCOPE_DEVICE = "urn:matrix:org.matrix.msc2967.client:device:"

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", "refresh_token", DEVICE_CODE_GRANT)

# The loopback redirect URI registered (RFC 8252 §7.3: the port is left out
# and may be any at request time; the `state` makes each callback unique).
CALLBACK_PATH = "/oauth-callback"
REGISTERED_REDIRECT_URI = "http://127.0.0.1" + CALLBACK_PATH

CLIENT_NAME = "tuichat"
# The client's home page, shown by the server on its consent page.
CLIENT_URI = "https://tuichat.invalid/"

# RFC 8628 §3.5: after `slow_down` the interval grows by 5 seconds.
SLOW_DOWN_STEP_S = 5.0
DEFAULT_INTERVAL_S = 5.0

# MSC4191: what the account management page can be asked to show.
ACCOUNT_ACTIONS = {
    "profile": ("org.matrix.profile", "view your profile"),
    "sessions": ("org.matrix.sessions_list", "list your sessions (devices)"),
    "device": ("org.matrix.session_view", "view this device's session"),
    "end-device": ("org.matrix.session_end", "end this device's session"),
    "deactivate": ("org.matrix.account_deactivate", "deactivate your account"),
    "cross-signing-reset": ("org.matrix.cross_signing_reset", "reset your cross-signing keys"),
}


class OAuthError(LoginError):
    """The authorization server refused or answered nonsense; the message
    is for the user (sanitised)."""


class TokenRefused(OAuthError):
    """The token endpoint refused the grant (`invalid_grant`): the session
    is over on the server."""


def _short(error: BaseException) -> str:
    return (str(error) or type(error).__name__).splitlines()[0]


def _http_url(value: object) -> str | None:
    """`value` if it is an absolute http(s) URL without controls, else None."""
    if not isinstance(value, str) or len(value) > 2048 or clean_line(value) != value:
        return None
    if any(c.isspace() for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return value


def _strings(value: object, limit: int = 100) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        clean_line(item, max_length=200) for item in value[:limit] if isinstance(item, str)
    )


@dataclass(frozen=True)
class AuthServer:
    """The parts of the authorization server's metadata (RFC 8414 as
    MSC2965 restricts it, plus MSC4191) that tuichat uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    device_authorization_endpoint: str | None = None
    account_management_uri: str | None = None
    account_management_actions: tuple[str, ...] = ()
    scopes_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    code_challenge_methods: tuple[str, ...] = ()

    @classmethod
    def from_metadata(cls, data: object) -> AuthServer:
        if not isinstance(data, dict):
            raise OAuthError("the server's OAuth 2.0 metadata is not a JSON object")
        issuer = _http_url(data.get("issuer"))
        authorization = _http_url(data.get("authorization_endpoint"))
        token = _http_url(data.get("token_endpoint"))
        missing = [
            name
            for name, value in (
                ("issuer", issuer),
                ("authorization_endpoint", authorization),
                ("token_endpoint", token),
            )
            if value is None
        ]
        if missing or issuer is None or authorization is None or token is None:
            raise OAuthError("the server's OAuth 2.0 metadata lacks a valid " + ", ".join(missing))
        return cls(
            issuer=issuer,
            authorization_endpoint=authorization,
            token_endpoint=token,
            registration_endpoint=_http_url(data.get("registration_endpoint")),
            revocation_endpoint=_http_url(data.get("revocation_endpoint")),
            device_authorization_endpoint=_http_url(data.get("device_authorization_endpoint")),
            account_management_uri=_http_url(data.get("account_management_uri")),
            account_management_actions=_strings(data.get("account_management_actions_supported")),
            scopes_supported=_strings(data.get("scopes_supported"), 500),
            grant_types_supported=_strings(data.get("grant_types_supported")),
            code_challenge_methods=_strings(data.get("code_challenge_methods_supported")),
        )

    @property
    def unstable_scopes(self) -> bool:
        """Whether the server lists only MSC2967's unstable scope names."""
        listed = set(self.scopes_supported)
        return UNSTABLE_SCOPE_API in listed and SCOPE_API not in listed

    def scope(self, device_id: str) -> str:
        """The scope to ask for: the API and this device."""
        if self.unstable_scopes:
            return f"{UNSTABLE_SCOPE_API} {UNSTABLE_SCOPE_DEVICE}{device_id}"
        return f"{SCOPE_API} {SCOPE_DEVICE}{device_id}"

    @property
    def offers_device_grant(self) -> bool:
        return self.device_authorization_endpoint is not None and (
            not self.grant_types_supported or DEVICE_CODE_GRANT in self.grant_types_supported
        )

    def account_url(self, action: str | None = None, device_id: str | None = None) -> str:
        """The account management URL (MSC4191), for `action` (an
        ACCOUNT_ACTIONS key) when the server supports it."""
        if self.account_management_uri is None:
            raise OAuthError("this server publishes no account management page")
        if action is None:
            return self.account_management_uri
        name = ACCOUNT_ACTIONS[action][0]
        if self.account_management_actions and name not in self.account_management_actions:
            supported = ", ".join(self.account_management_actions)
            raise OAuthError(f"the account page does not support {name}; it supports: {supported}")
        query: dict[str, str] = {"action": name}
        if action in ("device", "end-device") and device_id:
            query["device_id"] = device_id
        separator = "&" if urlsplit(self.account_management_uri).query else "?"
        return self.account_management_uri + separator + urlencode(query)


async def _read_json(response: aiohttp.ClientResponse) -> object:
    text = await response.text()
    try:
        return json.loads(text)
    except ValueError:
        return None


async def fetch_auth_server(base_url: str) -> AuthServer | None:
    """The homeserver's authorization server, or None if it does not use the
    OAuth 2.0 API (neither metadata endpoint answers)."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        for path in AUTH_METADATA_PATHS:
            try:
                async with http.get(base_url + path) as response:
                    status, data = response.status, await _read_json(response)
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise OAuthError(f"cannot reach {base_url}: {_short(error)}") from None
            if status == 200 and isinstance(data, dict):
                return AuthServer.from_metadata(data)
    return None


# -- dynamic client registration ------------------------------------------------


@dataclass(frozen=True)
class ClientRegistration:
    """What the server answered to our registration; public clients (as
    tuichat asks to be) have no secret."""

    issuer: str
    client_id: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    client_secret: str = ""

    def __repr__(self) -> str:
        return f"ClientRegistration(issuer={self.issuer!r}, client_id={self.client_id!r})"


def client_metadata() -> dict[str, Any]:
    """tuichat's client metadata (RFC 7591 §2, MSC2966)."""
    return {
        "client_name": CLIENT_NAME,
        "client_uri": CLIENT_URI,
        "application_type": "native",
        "redirect_uris": [REGISTERED_REDIRECT_URI],
        "grant_types": list(GRANT_TYPES),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "software_id": "tuichat",
        "software_version": __version__,
    }


class ClientCache:
    """Client registrations per issuer, kept in the profile (0600). A
    client secret, should a server hand one out, is sealed with the
    profile's token key like the session's tokens."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    @property
    def path(self) -> Path:
        return self.profile.root / Profile.OAUTH_CLIENTS_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("ignoring the unreadable %s: %s", self.path, _short(error))
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _binding(issuer: str, client_id: str) -> Session:
        # The sealing binds a token to a user and device; a client secret
        # belongs to the issuer and client id instead.
        return Session(issuer, "oauth-client", client_id, "")

    def get(self, issuer: str) -> ClientRegistration | None:
        entry = self._read().get(issuer)
        if not isinstance(entry, dict) or not isinstance(entry.get("client_id"), str):
            return None
        secret = ""
        sealed = entry.get("client_secret_sealed")
        if isinstance(sealed, str) and sealed:
            try:
                secret = self.profile._unseal_token(
                    self._binding(issuer, entry["client_id"]), sealed
                )
            except ProfileError as error:  # no pickle key: register again
                log.warning("the stored OAuth client secret cannot be opened: %s", error)
                return None
            if not secret:
                return None
        return ClientRegistration(
            issuer=issuer,
            client_id=entry["client_id"],
            redirect_uris=tuple(entry.get("redirect_uris") or ()),
            grant_types=tuple(entry.get("grant_types") or ()),
            client_secret=secret,
        )

    def put(self, registration: ClientRegistration) -> None:
        self.profile.ensure()
        data = self._read()
        entry = asdict(registration)
        secret = entry.pop("client_secret")
        if secret:
            if not self.profile.pickle_key_file.exists():
                self.profile.create_pickle_key()
            entry["client_secret_sealed"] = self.profile._seal_token(
                self._binding(registration.issuer, registration.client_id), secret
            )
        data[registration.issuer] = entry
        write_private(self.path, json.dumps(data, indent=2).encode())

    def forget(self, issuer: str) -> None:
        data = self._read()
        if data.pop(issuer, None) is not None:
            write_private(self.path, json.dumps(data, indent=2).encode())


async def register_client(server: AuthServer) -> ClientRegistration:
    """Register tuichat with the authorization server (RFC 7591)."""
    if server.registration_endpoint is None:
        raise OAuthError(
            f"the authorization server {server.issuer} offers no dynamic client "
            "registration, which tuichat needs"
        )
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            async with http.post(server.registration_endpoint, json=client_metadata()) as response:
                status, data = response.status, await _read_json(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise OAuthError(f"cannot reach {server.issuer}: {_short(error)}") from None
    if status not in (200, 201) or not isinstance(data, dict):
        raise OAuthError(
            f"registering tuichat with {server.issuer} failed: {_error_text(data, status)}"
        )
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 512:
        raise OAuthError(f"{server.issuer} registered tuichat without a client id")
    secret = data.get("client_secret")
    if isinstance(secret, str) and secret:
        register_secret(secret)
    log.info("registered tuichat with %s", server.issuer)
    return ClientRegistration(
        issuer=server.issuer,
        client_id=client_id,
        redirect_uris=_strings(data.get("redirect_uris")) or (REGISTERED_REDIRECT_URI,),
        grant_types=_strings(data.get("grant_types")) or GRANT_TYPES,
        client_secret=secret if isinstance(secret, str) else "",
    )


async def client_for(profile: Profile, server: AuthServer) -> ClientRegistration:
    """The profile's registration with `server`, registering on first use
    (or again when the cached one lacks what tuichat now needs)."""
    cache = ClientCache(profile)
    cached = cache.get(server.issuer)
    if cached is not None and set(GRANT_TYPES) <= set(cached.grant_types):
        return cached
    registration = await register_client(server)
    cache.put(registration)
    return registration


def _error_text(data: object, status: int) -> str:
    """An OAuth error answer (RFC 6749 §5.2) in words, sanitised."""
    if isinstance(data, dict):
        code = clean_line(data.get("error"), max_length=100)
        description = clean_line(data.get("error_description"), max_length=300)
        if code or description:
            return ": ".join(part for part in (code, description) if part)
    return f"HTTP {status}"


# -- tokens ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
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
                return response.status, await _read_json(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            host = urlsplit(url).netloc
            raise OAuthUnreachable(f"cannot reach {host}: {_short(error)}") from None


class OAuthUnreachable(OAuthError):
    """The authorization server could not be reached: try again later."""


def _tokens(data: object, status: int, what: str) -> Tokens:
    if status != 200 or not isinstance(data, dict):
        text = _error_text(data, status)
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
            f"revoking the {hint.replace('_', ' ')} failed: {_error_text(data, status)}"
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
        raise OAuthError(f"starting the device login failed: {_error_text(data, status)}")
    device_code = data.get("device_code")
    user_code = clean_line(data.get("user_code"), max_length=64)
    uri = _http_url(data.get("verification_uri"))
    if not isinstance(device_code, str) or not device_code or not user_code or uri is None:
        raise OAuthError("the device login answer lacks its code or address")
    register_secret(device_code)
    expires = data.get("expires_in")
    interval = data.get("interval")
    return DeviceAuthorization(
        device_code=device_code,
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=_http_url(data.get("verification_uri_complete")),
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
        raise OAuthError(f"the device login failed: {_error_text(data, status)}")


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
