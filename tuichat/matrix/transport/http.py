"""Plain JSON requests to the homeserver through nio's HTTP session.

For the endpoints nio has no method for (account data, key backup, cross-
signing uploads). The access token goes in the Authorization header, never
in the URL, so it cannot end up in a log line.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from nio import AsyncClient

from tuichat.matrix.transport import fastjson

PREFIX = "/_matrix/client/v3"


class MatrixHttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.errcode = str(body.get("errcode", ""))
        self.error = str(body.get("error", ""))
        self.body = body
        super().__init__(f"HTTP {status} {self.errcode}: {self.error}".strip())


def path_segment(value: str) -> str:
    """Percent-encode one path segment (session ids contain '/')."""
    return quote(value, safe="")


class MatrixHttp:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        # Asked after an `M_UNKNOWN_TOKEN` answer, with the token used and
        # whether it was a soft logout: True when the request may be made
        # again with a refreshed token (set by the service).
        self.on_unknown_token: Callable[[str, bool], Awaitable[bool]] | None = None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON reply; raises MatrixHttpError for a non-2xx answer."""
        for _attempt in range(3):
            token = self.client.access_token
            try:
                return await self._request_once(method, path, body, query, token)
            except MatrixHttpError as error:
                if error.errcode != "M_UNKNOWN_TOKEN" or self.on_unknown_token is None:
                    raise
                if not await self.on_unknown_token(token, bool(error.body.get("soft_logout"))):
                    raise
        return await self._request_once(method, path, body, query, self.client.access_token)

    async def _request_once(
        self,
        method: str,
        path: str,
        body: Any,
        query: dict[str, str] | None,
        token: str,
    ) -> dict[str, Any]:
        # A full path ("/_matrix/client/v1/...") for endpoints outside v3.
        base = path if path.startswith("/_matrix/") else PREFIX + path
        url = base + (f"?{urlencode(query)}" if query else "")
        headers = {"Authorization": f"Bearer {token}"}
        data = None if body is None else json.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = await self.client.send(method, url, data, headers)
        raw = await response.read()
        try:
            reply = fastjson.loads(raw) if raw else {}
        except ValueError:
            reply = {"error": "invalid JSON"}
        if not isinstance(reply, dict):
            reply = {}
        if response.status >= 300:
            raise MatrixHttpError(response.status, reply)
        return reply

    async def account_data(self, event_type: str) -> dict[str, Any] | None:
        user = path_segment(self.client.user_id)
        try:
            return await self.request(
                "GET", f"/user/{user}/account_data/{path_segment(event_type)}"
            )
        except MatrixHttpError as error:
            if error.status == 404:
                return None
            raise

    async def put_account_data(self, event_type: str, content: dict[str, Any]) -> None:
        user = path_segment(self.client.user_id)
        await self.request("PUT", f"/user/{user}/account_data/{path_segment(event_type)}", content)
