"""The OAuth 2.0 API (Matrix 1.15, "next-generation auth"): the authorization server.

A homeserver that delegates authentication names its authorization server
in `GET /_matrix/client/v1/auth_metadata` (MSC2965; older servers answer on
the unstable `org.matrix.msc2965` path). This module finds it and reads its
metadata (`AuthServer`, including the account management page of MSC4191
and the Matrix scopes of MSC2967 to ask for), and holds what the protocol's
other modules share: its errors and the reading of the server's answers.
Everything the server sends that may be printed is sanitised here; URLs are
accepted only as http(s).

The rest of the protocol: `oauth_client_registration.py` registers tuichat
with the server; `oauth_grants.py` gets, refreshes and revokes tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import aiohttp

from tuichat.matrix.account.login import HTTP_TIMEOUT, LoginError, short_error
from tuichat.model.sanitize import clean_line

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


class OAuthUnreachable(OAuthError):
    """The authorization server could not be reached: try again later."""


def http_url(value: object) -> str | None:
    """`value` if it is an absolute http(s) URL without controls, else None."""
    if not isinstance(value, str) or len(value) > 2048 or clean_line(value) != value:
        return None
    if any(c.isspace() for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return value


def clean_strings(value: object, limit: int = 100) -> tuple[str, ...]:
    """The strings of a JSON list (at most `limit`), sanitised; () if it is
    not a list."""
    if not isinstance(value, list):
        return ()
    return tuple(
        clean_line(item, max_length=200) for item in value[:limit] if isinstance(item, str)
    )


def error_text(data: object, status: int) -> str:
    """An OAuth error answer (RFC 6749 §5.2) in words, sanitised."""
    if isinstance(data, dict):
        code = clean_line(data.get("error"), max_length=100)
        description = clean_line(data.get("error_description"), max_length=300)
        if code or description:
            return ": ".join(part for part in (code, description) if part)
    return f"HTTP {status}"


async def read_json(response: aiohttp.ClientResponse) -> object:
    """The answer's body as JSON, or None if it is not JSON."""
    text = await response.text()
    try:
        return json.loads(text)
    except ValueError:
        return None


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
        issuer = http_url(data.get("issuer"))
        authorization = http_url(data.get("authorization_endpoint"))
        token = http_url(data.get("token_endpoint"))
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
            registration_endpoint=http_url(data.get("registration_endpoint")),
            revocation_endpoint=http_url(data.get("revocation_endpoint")),
            device_authorization_endpoint=http_url(data.get("device_authorization_endpoint")),
            account_management_uri=http_url(data.get("account_management_uri")),
            account_management_actions=clean_strings(
                data.get("account_management_actions_supported")
            ),
            scopes_supported=clean_strings(data.get("scopes_supported"), 500),
            grant_types_supported=clean_strings(data.get("grant_types_supported")),
            code_challenge_methods=clean_strings(data.get("code_challenge_methods_supported")),
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


async def fetch_auth_server(base_url: str) -> AuthServer | None:
    """The homeserver's authorization server, or None if it does not use the
    OAuth 2.0 API (neither metadata endpoint answers)."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        for path in AUTH_METADATA_PATHS:
            try:
                async with http.get(base_url + path) as response:
                    status, data = response.status, await read_json(response)
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise OAuthError(f"cannot reach {base_url}: {short_error(error)}") from None
            if status == 200 and isinstance(data, dict):
                return AuthServer.from_metadata(data)
    return None
