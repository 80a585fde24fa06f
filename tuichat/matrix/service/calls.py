"""Awaiting a nio request whose network failure is an answer, not an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from tuichat.matrix.transport.network import NETWORK_ERRORS

log = logging.getLogger(__name__)

T = TypeVar("T")


async def quietly(call: Awaitable[T], what: str) -> T | None:
    """Await a nio request; a network failure becomes None (logged)."""
    try:
        return await call
    except NETWORK_ERRORS as error:
        log.warning("%s failed: %s", what, error)
        return None
