"""Awaiting requests to the homeserver: a network failure that is an answer,
not an error (`quietly`), and a failed request as a `Failed` sentence."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from tuichat.matrix.service.outcome import Failed
from tuichat.matrix.transport.http import MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a request to the homeserver raises when the server refuses it or
# cannot be reached.
SERVER_ERRORS: tuple[type[BaseException], ...] = (MatrixHttpError, *NETWORK_ERRORS)


async def quietly(call: Awaitable[T], what: str) -> T | None:
    """Await a nio request; a network failure becomes None (logged)."""
    try:
        return await call
    except NETWORK_ERRORS as error:
        log.warning("%s failed: %s", what, error)
        return None


def server_failure(error: BaseException) -> Failed:
    """One of SERVER_ERRORS, said as a sentence."""
    if isinstance(error, MatrixHttpError):
        return Failed(f"the server refused: {error}")
    return Failed(f"the server could not be reached: {error or type(error).__name__}")
