"""Awaiting requests to the homeserver: a network failure that is an answer,
not an error (`quietly`); a failed request as a `Failed` sentence; and a
JSON request to an endpoint nio has no call for, its refusal a sentence."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from tuichat.matrix.service.outcome import Failed
from tuichat.matrix.transport.http import MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.sanitize import clean_line

if TYPE_CHECKING:
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

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


class RequestRefused(Exception):
    """The server could not be asked, or said no: the sentence to show."""


async def json_request(
    client: TuichatClient | None, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """Send `body` as JSON with the access token; the answer's JSON, or
    RequestRefused with the server's reason."""
    if client is None:
        raise RequestRefused("not connected yet")
    headers = {"Authorization": f"Bearer {client.access_token}"}
    data = json.dumps(body) if body is not None else None
    try:
        response = await client.send(method, path, data, headers)
        try:
            payload = await response.json(content_type=None)
        finally:
            response.release()
    except NETWORK_ERRORS as error:
        raise RequestRefused("the server could not be reached") from error
    except ValueError as error:
        raise RequestRefused("the server's answer was not JSON") from error
    if response.status != 200:
        reason = payload.get("error") if isinstance(payload, dict) else None
        raise RequestRefused(clean_line(reason) or f"HTTP {response.status}")
    return payload
