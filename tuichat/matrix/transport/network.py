"""What a failed request to the homeserver can raise."""

from __future__ import annotations

import asyncio

import aiohttp

# aiohttp's connection errors are not all OSErrors; nio re-raises them after
# its own retries.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    OSError,
    asyncio.TimeoutError,
)
