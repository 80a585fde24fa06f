"""The OAuth 2.0 API: tuichat registered as a client of the authorization server.

tuichat registers itself as a native public client (dynamic client
registration, RFC 7591 / MSC2966) with the grants `oauth_grants.py` uses and
its loopback redirect URI, once per server and profile: `ClientCache` keeps
the registrations in the profile and `client_for` registers on first use.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tuichat import __version__
from tuichat.log_redaction import register_secret
from tuichat.matrix.account.login import HTTP_TIMEOUT, short_error
from tuichat.matrix.account.oauth import (
    DEVICE_CODE_GRANT,
    AuthServer,
    OAuthError,
    clean_strings,
    error_text,
    read_json,
)
from tuichat.matrix.account.session import Profile, ProfileError, Session, write_private

log = logging.getLogger(__name__)

GRANT_TYPES = ("authorization_code", "refresh_token", DEVICE_CODE_GRANT)

# The loopback redirect URI registered (RFC 8252 §7.3: the port is left out
# and may be any at request time; the `state` makes each callback unique).
CALLBACK_PATH = "/oauth-callback"
REGISTERED_REDIRECT_URI = "http://127.0.0.1" + CALLBACK_PATH

CLIENT_NAME = "tuichat"
# The client's home page, shown by the server on its consent page.
CLIENT_URI = "https://tuichat.invalid/"


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
            log.warning("ignoring the unreadable %s: %s", self.path, short_error(error))
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
                secret = self.profile.unseal_token(
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
            entry["client_secret_sealed"] = self.profile.seal_token(
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
                status, data = response.status, await read_json(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise OAuthError(f"cannot reach {server.issuer}: {short_error(error)}") from None
    if status not in (200, 201) or not isinstance(data, dict):
        raise OAuthError(
            f"registering tuichat with {server.issuer} failed: {error_text(data, status)}"
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
        redirect_uris=clean_strings(data.get("redirect_uris")) or (REGISTERED_REDIRECT_URI,),
        grant_types=clean_strings(data.get("grant_types")) or GRANT_TYPES,
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
