"""An OAuth 2.0 authorization server for the tests, built on Authlib: it
plays the Matrix Authentication Service's part for a Synapse configured with
`matrix_authentication_service` (Synapse asks it about every access token
and it tells Synapse which users and devices exist).

What it follows, and where:
- server metadata: RFC 8414, with the fields Matrix 1.15 (MSC2965) asks
  for and MSC4191's `account_management_uri` and actions, served at
  `/.well-known/openid-configuration` (where Synapse reads it);
- dynamic client registration: RFC 7591, with MSC2966's rules for native
  clients (`application_type: native`, loopback redirect URIs on http
  whose port is not compared, RFC 8252 §7.3);
- authorization code grant: RFC 6749 §4.1, PKCE (RFC 7636) required;
- device authorization grant: RFC 8628 (`authorization_pending`,
  `slow_down` for polls faster than `interval`, `expired_token`,
  `access_denied`);
- refresh: RFC 6749 §6, the refresh token rotated;
- revocation: RFC 7009; revoking a refresh token ends the session, and its
  device is deleted in Synapse (as MAS does);
- introspection: RFC 7662 as Synapse calls it (the shared secret as a
  bearer token): `active`, `scope`, `username`, `sub`, `expires_in`;
- scopes: MSC2967, `urn:matrix:client:api:*` and one
  `urn:matrix:client:device:<id>` (or the unstable `org.matrix.msc2967`
  names); the user and the device are provisioned in Synapse through its
  `/_synapse/mas/` endpoints when the tokens are issued.

The person in the browser signs in by typing a user name on the
authorization or device page (no passwords: the tests play the person).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerToken
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from flask import Flask, Response, request

API_SCOPES = ("urn:matrix:client:api:*", "urn:matrix:org.matrix.msc2967.client:api:*")
DEVICE_PREFIXES = ("urn:matrix:client:device:", "urn:matrix:org.matrix.msc2967.client:device:")
AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]


@dataclass
class User:
    localpart: str

    def get_user_id(self) -> str:
        return self.localpart


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str | None
    metadata: dict[str, Any]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.metadata.get("redirect_uris") or []
        return uris[0] if uris else None

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 8252 §7.3: a loopback redirect URI may use any port.
        asked = urlsplit(redirect_uri)
        for registered in self.metadata.get("redirect_uris") or []:
            known = urlsplit(registered)
            if known.hostname in ("127.0.0.1", "::1") and asked.scheme == "http":
                if (asked.hostname, asked.path) == (known.hostname, known.path):
                    return True
            elif redirect_uri == registered:
                return True
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and client_secret == self.client_secret

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.metadata.get("token_endpoint_auth_method", "client_secret_basic")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.metadata.get("grant_types") or ["authorization_code"])


@dataclass
class Token(TokenMixin):
    client_id: str
    localpart: str
    scope: str
    access_token: str
    refresh_token: str | None
    issued_at: float
    expires_in: int
    access_revoked: bool = False
    refresh_revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.access_revoked

    def get_user(self) -> User:
        return User(self.localpart)

    def get_client(self) -> ClientMixin:
        raise NotImplementedError

    @property
    def device_id(self) -> str | None:
        for item in self.scope.split():
            for prefix in DEVICE_PREFIXES:
                if item.startswith(prefix):
                    return item[len(prefix) :]
        return None


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    localpart: str
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> float:
        return self.auth_time

    def is_expired(self) -> bool:
        return time.time() > self.auth_time + 300


def _check_matrix_scope(scope: str | None) -> str | None:
    """What is wrong with a requested scope (MSC2967), or None."""
    items = (scope or "").split()
    if not any(item in API_SCOPES for item in items):
        return "the scope lacks the Matrix client-server API"
    devices = [item for item in items if item.startswith(DEVICE_PREFIXES)]
    if len(devices) != 1:
        return "the scope must name exactly one device"
    return None


class AuthServer:
    """The whole server; `app` is the Flask application to serve."""

    def __init__(self, synapse_secret: str) -> None:
        self.synapse_secret = synapse_secret
        self.synapse_url = ""  # set once Synapse's port is known
        self.issuer = ""  # set once served
        self.access_token_lifetime = 300
        self.device_interval = 1
        # The interval the server enforces with `slow_down`, if not the one
        # it announces (to see a client slow down).
        self.enforced_interval: float | None = None
        self.polls: list[tuple[float, str]] = []  # (time, answer) of device-code polls
        self.device_expires_in = 600
        # Only the MSC2967 unstable scope names in the metadata.
        self.unstable_scopes_only = False
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: list[Token] = []
        self.device_credentials: dict[str, DeviceCredentialDict] = {}
        self.user_grants: dict[str, tuple[User, bool]] = {}
        self.last_poll: dict[str, float] = {}
        self.registrations: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.app = self._make_app()

    # -- Synapse's side (its /_synapse/mas/ endpoints) -------------------------

    def _synapse(self, path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(
            f"{self.synapse_url}/_synapse/mas/{path}",
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.synapse_secret}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            response.read()

    def provision(self, token: Token) -> None:
        self._synapse("provision_user", {"localpart": token.localpart})
        if token.device_id:
            self._synapse(
                "upsert_device",
                {"localpart": token.localpart, "device_id": token.device_id},
            )

    # -- lookups ---------------------------------------------------------------

    def find(self, value: str, hint: str | None = None) -> Token | None:
        with self.lock:
            for token in self.tokens:
                if hint != "refresh_token" and token.access_token == value:
                    return token
                if hint != "access_token" and token.refresh_token == value:
                    return token
        return None

    def introspect(self, value: str) -> dict[str, Any]:
        """RFC 7662 §2.2, with the claims Synapse reads."""
        token = self.find(value)
        if token is None:
            return {"active": False}
        if value == token.access_token:
            if token.access_revoked or token.is_expired():
                return {"active": False}
            expires_in = int(token.issued_at + token.expires_in - time.time())
            kind = "access_token"
        else:
            if token.refresh_revoked:
                return {"active": False}
            expires_in = None
            kind = "refresh_token"
        answer: dict[str, Any] = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "username": token.localpart,
            "sub": token.localpart,
            "token_type": kind,
        }
        if expires_in is not None:
            answer["expires_in"] = max(expires_in, 0)
        return answer

    def issue(self, localpart: str, device_id: str, lifetime: int = 3600) -> str:
        """An access token for `localpart` on `device_id`, as if that person
        had signed in with another client (the tests' peers)."""
        token = Token(
            client_id="test-peer",
            localpart=localpart,
            scope=f"{API_SCOPES[0]} {DEVICE_PREFIXES[0]}{device_id}",
            access_token="mat_" + _random(40),
            refresh_token=None,
            issued_at=time.time(),
            expires_in=lifetime,
        )
        self.provision(token)
        with self.lock:
            self.tokens.append(token)
        return token.access_token

    def end_sessions(self, localpart: str) -> None:
        """End every session of `localpart`, as its account page would:
        the tokens revoked, the devices deleted in Synapse."""
        for token in self.active_sessions(localpart):
            token.refresh_revoked = token.access_revoked = True
            if token.device_id:
                self._synapse(
                    "delete_device", {"localpart": localpart, "device_id": token.device_id}
                )

    def active_sessions(self, localpart: str) -> list[Token]:
        with self.lock:
            return [
                token
                for token in self.tokens
                if token.localpart == localpart and not token.refresh_revoked
            ]

    # -- the Flask application ----------------------------------------------------

    def _make_app(self) -> Flask:
        app = Flask("tuichat-test-oauth")
        outer = self

        def query_client(client_id: str) -> Client | None:
            return outer.clients.get(client_id)

        def save_token(token: dict[str, Any], req: Any) -> None:
            user = req.user
            scope = token.get("scope") or ""
            item = Token(
                client_id=req.client.get_client_id(),
                localpart=user.localpart,
                scope=scope,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                issued_at=time.time(),
                expires_in=int(token.get("expires_in") or outer.access_token_lifetime),
            )
            outer.provision(item)
            with outer.lock:
                outer.tokens.append(item)

        server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
        server.register_token_generator(
            "default",
            BearerToken(
                access_token_generator=lambda *a, **k: "mat_" + _random(40),
                refresh_token_generator=lambda *a, **k: "mar_" + _random(40),
                expires_generator=lambda client, grant_type: outer.access_token_lifetime,
            ),
        )

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

            def save_authorization_code(self, code: str, req: Any) -> None:
                outer.codes[code] = AuthorizationCode(
                    code=code,
                    client_id=req.client.get_client_id(),
                    redirect_uri=req.payload.redirect_uri,
                    scope=req.payload.scope,
                    localpart=req.user.localpart,
                    code_challenge=req.payload.data.get("code_challenge"),
                    code_challenge_method=req.payload.data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Any:
                item = outer.codes.get(code)
                if item and item.client_id == client.get_client_id() and not item.is_expired():
                    return item
                return None

            def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
                outer.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
                return User(authorization_code.localpart)

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                token = outer.find(refresh_token, "refresh_token")
                if token is None or token.refresh_revoked:
                    return None
                return token

            def authenticate_user(self, refresh_token: Token) -> User:
                return refresh_token.get_user()

            def revoke_old_credential(self, refresh_token: Token) -> None:
                # Rotated: the old refresh token is spent; the old access
                # token lives until it expires, as with MAS.
                refresh_token.refresh_revoked = True

        class DeviceGrant(DeviceCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

            def query_device_credential(self, device_code: str) -> Any:
                return outer.device_credentials.get(device_code)

            def query_user_grant(self, user_code: str) -> tuple[User, bool] | None:
                return outer.user_grants.get(user_code)

            def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
                now = time.time()
                last = outer.last_poll.get(credential["device_code"])
                outer.last_poll[credential["device_code"]] = now
                interval = outer.enforced_interval or outer.device_interval
                # A little slack for the client's timer.
                slow = last is not None and now - last < interval * 0.8
                outer.polls.append((now, "slow_down" if slow else "authorization_pending"))
                return slow

        class DeviceEndpoint(DeviceAuthorizationEndpoint):
            CLIENT_AUTH_METHODS = AUTH_METHODS

            def get_verification_uri(self) -> str:
                return outer.issuer + "device"

            def save_device_credential(self, client_id: str, scope: str, data: dict) -> None:
                outer.device_credentials[data["device_code"]] = DeviceCredentialDict(
                    client_id=client_id,
                    scope=scope,
                    expires_at=int(time.time()) + data["expires_in"],
                    **data,
                )

            def create_endpoint_response(self, req: Any) -> Any:
                self.INTERVAL = outer.device_interval
                self.EXPIRES_IN = outer.device_expires_in
                problem = _check_matrix_scope(req.payload.scope)
                if problem is not None:
                    return 400, {"error": "invalid_scope", "error_description": problem}, []
                return super().create_endpoint_response(req)

        class Revocation(RevocationEndpoint):
            CLIENT_AUTH_METHODS = AUTH_METHODS

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                return outer.find(token_string, token_type_hint)

            def revoke_token(self, token: Token, req: Any) -> None:
                value = req.form["token"]
                if value == token.refresh_token:
                    # The session ends: both tokens, and the device.
                    token.refresh_revoked = True
                    token.access_revoked = True
                    for other in outer.tokens:
                        if (
                            other.localpart == token.localpart
                            and other.device_id == token.device_id
                        ):
                            other.refresh_revoked = other.access_revoked = True
                    if token.device_id:
                        outer._synapse(
                            "delete_device",
                            {"localpart": token.localpart, "device_id": token.device_id},
                        )
                else:
                    token.access_revoked = True

        class Registration(ClientRegistrationEndpoint):
            def authenticate_token(self, req: Any) -> bool:
                return True  # open registration, as MSC2966 expects

            def get_server_metadata(self) -> None:
                return None

            def generate_client_secret(self, req: Any) -> str | None:
                if req.payload.data.get("token_endpoint_auth_method") == "none":
                    return None
                return _random(32)

            def extract_client_metadata(self, req: Any) -> dict[str, Any]:
                data = req.payload.data
                # MSC2966: native clients use loopback (or private-use
                # scheme) redirect URIs.
                if data.get("application_type") == "native":
                    for uri in data.get("redirect_uris") or []:
                        parts = urlsplit(uri)
                        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1"):
                            from authlib.oauth2.rfc7591 import InvalidRedirectURIError

                            raise InvalidRedirectURIError()
                metadata = super().extract_client_metadata(req)
                metadata["application_type"] = data.get("application_type")
                return metadata

            def save_client(
                self, client_info: dict[str, Any], client_metadata: dict[str, Any], req: Any
            ) -> Client:
                client = Client(
                    client_info["client_id"], client_info.get("client_secret"), client_metadata
                )
                outer.clients[client.client_id] = client
                outer.registrations.append(dict(req.payload.data))
                return client

        server.register_grant(CodeGrant, [CodeChallenge(required=True)])
        server.register_grant(RefreshGrant)
        server.register_grant(DeviceGrant)
        server.register_endpoint(DeviceEndpoint)
        server.register_endpoint(Revocation)
        server.register_endpoint(Registration)

        @app.get("/.well-known/openid-configuration")
        @app.get("/.well-known/oauth-authorization-server")
        def metadata() -> Any:
            return outer.metadata()

        @app.post("/oauth2/registration")
        def registration() -> Any:
            return server.create_endpoint_response("client_registration")

        @app.route("/authorize", methods=["GET", "POST"])
        def authorize() -> Any:
            if request.method == "GET":
                problem = _check_matrix_scope(request.args.get("scope"))
                if problem is not None:
                    return Response(problem, status=400)
                try:
                    grant = server.get_consent_grant(end_user=None)
                except Exception as error:  # noqa: BLE001 - shown to the "person"
                    return Response(f"bad request: {error}", status=400)
                return Response(
                    _page(
                        f"Sign in to {grant.client.metadata.get('client_name')}",
                        '<input name="username"><button name="action" value="allow">'
                        'Allow</button><button name="action" value="deny">Deny</button>',
                    ),
                    content_type="text/html",
                )
            user = None if request.form.get("action") == "deny" else User(request.form["username"])
            grant = server.get_consent_grant(end_user=user)
            return server.create_authorization_response(grant=grant, grant_user=user)

        @app.post("/oauth2/token")
        def token() -> Any:
            return server.create_token_response()

        @app.post("/oauth2/device")
        def device_authorization() -> Any:
            return server.create_endpoint_response("device_authorization")

        @app.route("/device", methods=["GET", "POST"])
        def device_page() -> Any:
            if request.method == "GET":
                code = request.args.get("user_code", "")
                return Response(
                    _page(
                        "Approve the device",
                        f'<input name="user_code" value="{code}"><input name="username">'
                        '<button name="action" value="allow">Allow</button>'
                        '<button name="action" value="deny">Deny</button>',
                    ),
                    content_type="text/html",
                )
            code = request.form["user_code"]
            known = any(c["user_code"] == code for c in outer.device_credentials.values())
            if not known:
                return Response("unknown code", status=400)
            outer.user_grants[code] = (
                User(request.form.get("username", "")),
                request.form.get("action") == "allow",
            )
            return Response(_page("Done", "You can go back to your device."))

        @app.post("/oauth2/revoke")
        def revoke() -> Any:
            return server.create_endpoint_response("revocation")

        @app.post("/oauth2/introspect")
        def introspect() -> Any:
            if request.headers.get("Authorization") != f"Bearer {outer.synapse_secret}":
                return Response(json.dumps({"error": "invalid_client"}), status=401)
            return outer.introspect(request.form.get("token", ""))

        @app.route("/account", methods=["GET", "POST"])
        def account() -> Any:
            action = request.values.get("action", "")
            if request.method == "GET":
                return Response(
                    _page(f"Account: {action or 'overview'}", '<input name="username">'),
                    content_type="text/html",
                )
            if action == "org.matrix.cross_signing_reset":
                outer._synapse("allow_cross_signing_reset", {"localpart": request.form["username"]})
            return Response(_page("Done", "You can go back to the app."))

        return app

    def metadata(self) -> dict[str, Any]:
        issuer = self.issuer
        api = ["urn:matrix:org.matrix.msc2967.client:api:*"]
        if not self.unstable_scopes_only:
            api.insert(0, "urn:matrix:client:api:*")
        return {
            "issuer": issuer,
            "authorization_endpoint": issuer + "authorize",
            "token_endpoint": issuer + "oauth2/token",
            "registration_endpoint": issuer + "oauth2/registration",
            "revocation_endpoint": issuer + "oauth2/revoke",
            "introspection_endpoint": issuer + "oauth2/introspect",
            "device_authorization_endpoint": issuer + "oauth2/device",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                DEVICE_CODE_GRANT_TYPE,
            ],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "scopes_supported": ["openid", *api],
            "prompt_values_supported": ["create"],
            "account_management_uri": issuer + "account",
            "account_management_actions_supported": [
                "org.matrix.profile",
                "org.matrix.sessions_list",
                "org.matrix.session_view",
                "org.matrix.session_end",
                "org.matrix.cross_signing_reset",
            ],
        }


def _random(length: int) -> str:
    import secrets

    return secrets.token_urlsafe(length)[:length]


def _page(title: str, form: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>"
        f'<form method="post">{form}</form></body></html>'
    )
