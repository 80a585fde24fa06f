"""The current access token, and keeping it valid with the refresh token.

One source of truth: every request reads the token from nio's client
(`client.access_token`) when it is made, and `TokenKeeper` is the only thing
that changes it. With a server's refreshable access tokens (`refresh_token`
and `expires_in_ms` in the login answer) the keeper refreshes the token
(`POST /_matrix/client/v3/refresh`) before it expires, and when a request is
answered `M_UNKNOWN_TOKEN` with `soft_logout: true`. Sessions of the OAuth
2.0 API refresh at the authorization server's token endpoint instead
(`oauth_login.refresh_session`), also after an `M_UNKNOWN_TOKEN` without
soft logout, which is how such servers refuse an expired token. Each new token is saved
in the profile (the refresh token sealed with the pickle key) and registered
with the log's redaction. A refresh the server refuses is a real logout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from nio import AsyncClient

from tuichat.log_redaction import register_secret
from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.crypto.nio_extensions import TuichatClient
from tuichat.matrix.transport import fastjson
from tuichat.matrix.transport.network import NETWORK_ERRORS

log = logging.getLogger(__name__)

REFRESH_PATH = "/_matrix/client/v3/refresh"
# After a refresh that failed for want of a network, the next try.
RETRY_SECONDS = 5.0


class RefreshUnavailable(Exception):
    """The refresh could not be done now (network, server error): try later."""


class TokenKeeper:
    def __init__(
        self,
        profile: Profile,
        session: Session,
        client: AsyncClient,
        *,
        on_refreshed: Callable[[Session], None] | None = None,
        on_logged_out: Callable[[], None] | None = None,
    ) -> None:
        self.profile = profile
        self.session = session
        self.client = client
        self.on_refreshed = on_refreshed
        self.on_logged_out = on_logged_out
        self.logged_out = False
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[bool]] = set()
        client.access_token = session.access_token
        if isinstance(client, TuichatClient):
            client.on_soft_logout = self._refresh_soon

    def _refresh_soon(self, stale: str) -> None:
        """A request of nio's found the token expired: refresh it now, so
        that the request's own retry (and the others) find a fresh one."""
        if stale != self.session.access_token or self.logged_out:
            return
        task = asyncio.get_running_loop().create_task(self._refresh_quietly(stale))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_quietly(self, stale: str) -> bool:
        try:
            fresh = await self.refresh(stale)
        except RefreshUnavailable as error:
            log.info("refreshing the access token failed (%s)", error)
            return False
        if not fresh and self.on_logged_out is not None:
            self.on_logged_out()
        return fresh

    @property
    def access_token(self) -> str:
        return self.session.access_token

    def refresh_due_in(self) -> float | None:
        """Seconds until the token should be refreshed; None if it never is."""
        if not self.session.refresh_token or not self.session.refresh_at_ms:
            return None
        return (self.session.refresh_at_ms - time.time() * 1000) / 1000

    async def recover(self, used: str, soft_logout: bool) -> bool:
        """After `M_UNKNOWN_TOKEN` for a request made with `used`: whether
        the request can be made again (the token was or has been refreshed).
        False is a real logout. Raises RefreshUnavailable (try later)."""
        if used != self.session.access_token:
            return True  # refreshed meanwhile: the old token is gone
        # An OAuth server's expired access token is refused without
        # `soft_logout`: only its token endpoint can tell whether the
        # session lives on.
        if not soft_logout and not self.session.oauth_issuer:
            self.logged_out = True
            return False
        return await self.refresh(used)

    async def refresh(self, stale: str) -> bool:
        """Replace the access token `stale`; True once a fresh one is in use,
        False when the server refuses (the device was logged out)."""
        async with self._lock:
            if self.session.access_token != stale:
                return True  # another request refreshed it while this one waited
            if self.logged_out or not self.session.refresh_token:
                self.logged_out = True
                return False
            if self.session.oauth_issuer:
                return await self._refresh_oauth()
            body = json.dumps({"refresh_token": self.session.refresh_token})
            try:
                response = await self.client.send(
                    "POST", REFRESH_PATH, body, {"Content-Type": "application/json"}
                )
                raw = await response.read()
            except NETWORK_ERRORS as error:
                raise RefreshUnavailable(str(error) or type(error).__name__) from None
            try:
                reply = fastjson.loads(raw) if raw else {}
            except ValueError:
                reply = {}
            if not isinstance(reply, dict):
                reply = {}
            if response.status in (401, 403) or reply.get("errcode") == "M_UNKNOWN_TOKEN":
                log.warning("the server refused the refresh token: %s", reply.get("errcode"))
                self.logged_out = True
                return False
            token = reply.get("access_token")
            if response.status != 200 or not isinstance(token, str) or not token:
                raise RefreshUnavailable(f"refresh answered HTTP {response.status}")
            refresh_token = reply.get("refresh_token")
            expires = reply.get("expires_in_ms")
            register_secret(token)
            if isinstance(refresh_token, str):
                register_secret(refresh_token)
            self.session = self.session.with_tokens(
                token,
                refresh_token if isinstance(refresh_token, str) else self.session.refresh_token,
                expires if isinstance(expires, int) else None,
                int(time.time() * 1000),
            )
            self.profile.save_session(self.session)
            self._use(self.session)
            return True

    async def _refresh_oauth(self) -> bool:
        """The refresh of an OAuth 2.0 API session, at its token endpoint."""
        from tuichat.matrix.account import oauth, oauth_login

        try:
            session = await oauth_login.refresh_session(self.profile, self.session)
        except oauth.TokenRefused as error:
            log.warning("the token endpoint refused the refresh token: %s", error)
            self.logged_out = True
            return False
        except oauth.OAuthError as error:
            raise RefreshUnavailable(str(error)) from None
        self._use(session)
        return True

    def _use(self, session: Session) -> None:
        """Make `session`'s (stored) tokens the ones in use."""
        self.session = session
        self.client.access_token = session.access_token
        log.info("access token refreshed")
        if self.on_refreshed is not None:
            self.on_refreshed(session)

    async def run(self) -> None:
        """Refresh the token before it expires, for as long as it is used."""
        while True:
            due = self.refresh_due_in()
            if due is None or self.logged_out:
                return
            if due > 0:
                await asyncio.sleep(due)
                continue
            try:
                fresh = await self.refresh(self.session.access_token)
            except RefreshUnavailable as error:
                log.info("refreshing the access token failed (%s); trying again", error)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if not fresh:
                if self.on_logged_out is not None:
                    self.on_logged_out()
                return
