"""The account management page (MSC4191) of the account's server, for the
TUI's /account: on servers with the OAuth 2.0 API, the page where the
person edits their profile, lists or ends sessions, or approves a
cross-signing reset.

Importing this module imports neither nio nor aiohttp: the server's
metadata is asked for when the page is."""

from __future__ import annotations

from tuichat.matrix.account.session import Session
from tuichat.matrix.service.outcome import Failed, Outcome


async def account_url(
    session: Session, action: str | None, device_id: str | None = None
) -> Outcome[str | None]:
    """The page's address, for `action` (profile, sessions, device,
    end-device, cross-signing-reset) when given, about `device_id` (this
    device when not given) for the device actions; None when the server does
    not use the OAuth 2.0 API and so has no such page; `Failed` when the
    server cannot be asked or does not support the action."""
    from tuichat.matrix.account.oauth import OAuthError, fetch_auth_server

    try:
        server = await fetch_auth_server(session.homeserver)
        if server is None:
            return None
        return server.account_url(action, device_id or session.device_id)
    except OAuthError as error:
        return Failed(str(error))
