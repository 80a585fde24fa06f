"""Which ways of logging in a homeserver offers, and which one to use.

`GET /_matrix/client/v3/login` lists the login flows (password, SSO with its
identity providers, ...); `GET /_matrix/client/v1/auth_metadata` answers on
servers that use the OAuth 2.0 API (Matrix 1.15, next-generation auth).
Everything taken from the server is sanitised here, so messages built from
it can be printed as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

import aiohttp

from tuichat.matrix.account.login import HTTP_TIMEOUT, LoginError
from tuichat.matrix.account.oauth import AUTH_METADATA_PATHS
from tuichat.model.sanitize import clean_line

Method = Literal["password", "sso", "oauth"]
METHODS: tuple[Method, ...] = ("password", "sso", "oauth")

# Flows left out of "other methods" in messages: the ones named already,
# and application services' (bridges and bots, never a person).
_NOT_FOR_PEOPLE = (
    "m.login.password",
    "m.login.sso",
    "m.login.token",
    "m.login.application_service",
)

# Bounds on what a (hostile) server can make us keep and print.
_MAX_FLOWS = 50
_MAX_PROVIDERS = 50


@dataclass(frozen=True)
class IdentityProvider:
    """One `identity_providers` entry of the SSO flow, sanitised."""

    id: str
    name: str


@dataclass(frozen=True)
class LoginMethods:
    """What the server offers; `flow_types` keeps every flow type, for
    messages about servers that offer nothing tuichat can use."""

    flow_types: tuple[str, ...] = ()
    identity_providers: tuple[IdentityProvider, ...] = field(default=())
    oauth_issuer: str | None = None

    @property
    def password(self) -> bool:
        return "m.login.password" in self.flow_types

    @property
    def sso(self) -> bool:
        # The redirect ends in a login token, exchanged with m.login.token,
        # which servers list too; the SSO flow alone is taken as the offer.
        return "m.login.sso" in self.flow_types

    @property
    def oauth(self) -> bool:
        return self.oauth_issuer is not None

    def offers(self, method: Method) -> bool:
        return {"password": self.password, "sso": self.sso, "oauth": self.oauth}[method]

    def describe(self) -> str:
        """What the server offers, in words, for error messages."""
        parts = []
        if self.oauth:
            parts.append("the OAuth 2.0 API (--method oauth)")
        if self.sso:
            names = ", ".join(provider.name for provider in self.identity_providers)
            parts.append(f"single sign-on (--method sso{'; ' + names if names else ''})")
        if self.password:
            parts.append("password (--method password)")
        others = [flow for flow in self.flow_types if flow not in _NOT_FOR_PEOPLE]
        if others:
            parts.append("other methods tuichat does not know: " + ", ".join(others))
        return "; ".join(parts) if parts else "no login method at all"


def parse_flows(data: object) -> tuple[tuple[str, ...], tuple[IdentityProvider, ...]]:
    """The flow types and the SSO flow's identity providers of a
    `GET /login` answer; malformed entries are skipped."""
    flows = data.get("flows") if isinstance(data, dict) else None
    if not isinstance(flows, list):
        return (), ()
    types: list[str] = []
    providers: list[IdentityProvider] = []
    for flow in flows[:_MAX_FLOWS]:
        if not isinstance(flow, dict):
            continue
        kind = clean_line(flow.get("type"), max_length=100)
        if not kind or kind in types:
            continue
        types.append(kind)
        idps = flow.get("identity_providers") if kind == "m.login.sso" else None
        for idp in idps[:_MAX_PROVIDERS] if isinstance(idps, list) else ():
            if not isinstance(idp, dict) or not isinstance(idp.get("id"), str):
                continue
            idp_id = idp["id"]
            # The id goes into a URL path: keep only what the spec allows.
            if not idp_id or len(idp_id) > 255 or not all(c.isascii() for c in idp_id):
                continue
            name = clean_line(idp.get("name"), max_length=100) or clean_line(idp_id)
            providers.append(IdentityProvider(idp_id, name))
    return tuple(types), tuple(providers)


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with http.get(url) as response:
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, None


async def fetch_login_methods(base_url: str) -> LoginMethods:
    """Ask `base_url` what it offers (both endpoints)."""
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        try:
            status, data = await _get(http, f"{base_url}/_matrix/client/v3/login")
            issuer = None
            for path in AUTH_METADATA_PATHS:
                meta_status, metadata = await _get(http, base_url + path)
                if meta_status == 200 and isinstance(metadata, dict):
                    issuer = clean_line(metadata.get("issuer")) or None
                    if issuer:
                        break
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise LoginError(f"cannot reach {base_url}: {message}") from None
    types, providers = parse_flows(data) if status == 200 else ((), ())
    if status != 200 and issuer is None:
        said = clean_line(data.get("error"), max_length=200) if isinstance(data, dict) else ""
        raise LoginError(
            f"{base_url} did not say how to log in (HTTP {status} on /login"
            + (f": {said})" if said else ")")
        )
    return LoginMethods(types, providers, issuer)


def choose_method(methods: LoginMethods, requested: Method | None) -> Method:
    """The method to use: `requested` if the server offers it, else the
    OAuth 2.0 API, SSO, password, in that order. LoginError otherwise."""
    if requested is not None:
        if not methods.offers(requested):
            raise LoginError(
                f"this server does not offer {_NAMES[requested]}; it offers {methods.describe()}"
            )
        chosen = requested
    elif methods.oauth:
        chosen = "oauth"
    elif methods.sso:
        chosen = "sso"
    elif methods.password:
        chosen = "password"
    else:
        raise LoginError(
            f"this server offers no login method tuichat supports; it offers {methods.describe()}"
        )
    return chosen


_NAMES: dict[Method, str] = {
    "password": "password login",
    "sso": "single sign-on",
    "oauth": "the OAuth 2.0 API",
}
