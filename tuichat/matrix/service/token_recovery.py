"""What the service does when the server answers `M_UNKNOWN_TOKEN`: refresh
the access token and try again, or, after a real logout, stop syncing and
say what to do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from tuichat.matrix.account.tokens import RefreshUnavailable
from tuichat.matrix.service.account_context import AccountContext
from tuichat.model.events import ConnectionState, Notice

log = logging.getLogger(__name__)

LOGGED_OUT = "the server logged this device out; run `tuichat login` again"
LOGGED_OUT_NOTICE = (
    "The server logged this device out. Quit and run `tuichat login` with this profile: "
    "it logs in again as the same device, keeping its keys, cache and unsent messages."
)


class TokenRecovery:
    """Shared by every part that makes requests; `stop_syncing` cancels the
    sync loop (unless called from it)."""

    def __init__(self, context: AccountContext, stop_syncing: Callable[[], None]) -> None:
        self._context = context
        self._stop_syncing = stop_syncing

    async def recover(self, used: str, soft_logout: bool) -> bool:
        """After a request made with the access token `used` was answered
        `M_UNKNOWN_TOKEN`: True when it can be made again with a refreshed
        token; False after a real logout (then reported, and sync stopped).
        A refresh that cannot be done now waits a moment and says True: the
        request is tried again."""
        tokens = self._context.tokens
        if tokens is None:
            return False
        try:
            fresh = await tokens.recover(used, soft_logout)
        except RefreshUnavailable as error:
            log.info("refreshing the access token failed (%s)", error)
            await asyncio.sleep(1.0)
            return True
        if not fresh:
            self.logged_out_by_server()
        return fresh

    def logged_out_by_server(self) -> None:
        """The server ended this device's session: stop syncing and say so,
        with what to do. The profile (keys, cache, outbox) stays as it is."""
        context = self._context
        if context.state is ConnectionState.STOPPED:
            return
        log.warning("the server logged this device out")
        context.set_state(ConnectionState.STOPPED, LOGGED_OUT)
        context.emit(Notice(LOGGED_OUT_NOTICE, error=True))
        self._stop_syncing()
