"""The service's background tasks: the sync loop and the token keeper
started, the sync loop stopped when the server ends the session, and
everything closed in order when tuichat stops (tasks, nio's client, the
crypto store, the cache, the outbox)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from tuichat.model.connection import ConnectionState

if TYPE_CHECKING:
    from tuichat.matrix.service.account_context import AccountContext
    from tuichat.matrix.service.wiring import Parts
    from tuichat.matrix.storage.outbox import Outbox


class RunControl:
    def __init__(self, context: AccountContext, outbox: Outbox) -> None:
        self._context = context
        self._outbox = outbox
        self.sync_task: asyncio.Task[None] | None = None
        self.token_task: asyncio.Task[None] | None = None

    def start(self, parts: Parts) -> None:
        self.sync_task = asyncio.create_task(parts.syncing.run(), name="tuichat-sync")
        tokens = self._context.tokens
        assert tokens is not None
        self.token_task = asyncio.create_task(tokens.run(), name="tuichat-tokens")
        parts.sending.resume_outbox()

    def stop_syncing(self) -> None:
        task = self.sync_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def stop(self, parts: Parts | None) -> None:
        workers = parts.sending.workers if parts is not None else {}
        tasks = [t for t in (self.sync_task, self.token_task, *workers.values()) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            # Stopping: whatever the tasks died of was already reported.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.sync_task = self.token_task = None
        workers.clear()
        context = self._context
        if context.client is not None:
            await context.client.close()
        if context.crypto is not None:
            context.crypto.close()
        elif context.client is not None:
            context.client.extras.close()
        context.cache.close()
        self._outbox.close()
        context.set_state(ConnectionState.STOPPED)
