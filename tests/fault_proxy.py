"""A reverse proxy on loopback between tuichat and Synapse that injects
faults: the first N requests to an endpoint fail (504), or a /sync response
carrying to-device messages is held back and never delivered. Built on
aiohttp (already a dependency) in the way complement-crypto uses mitmproxy."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import ClientSession, web

from tuichat.demo.synapse import free_port

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-encoding",
    "content-length",
    "host",
}


def _carries_room_key(body: bytes) -> bool:
    """Whether a sync answer holds Olm-encrypted to-device messages (room
    keys travel that way): at the top of a /v3/sync answer, in the
    `to_device` extension of a sliding sync one."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    extensions = data.get("extensions") or {}
    events = [
        *((data.get("to_device") or {}).get("events") or []),
        *((extensions.get("to_device") or {}).get("events") or []),
    ]
    return any(e.get("type") == "m.room.encrypted" for e in events if isinstance(e, dict))


@dataclass
class Rule:
    fragment: str
    remaining: int
    status: int = 504
    served: int = 0
    error: str = "injected fault"  # the error text the server gives
    method: str | None = None  # only requests of this method (None: any)


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    hold_to_device_syncs: bool = False
    held: int = 0
    # A hung server: connections are accepted and nothing is ever answered.
    hang: bool = False

    def fail(
        self,
        fragment: str,
        times: int,
        status: int = 504,
        error: str = "injected fault",
        method: str | None = None,
    ) -> Rule:
        rule = Rule(fragment, times, status, error=error, method=method)
        self.rules.append(rule)
        return rule

    async def start(self) -> str:
        self._release = asyncio.Event()
        self._session = ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        self._release.set()
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.hang:
            await self._release.wait()  # not answered before the client is gone
            return web.json_response({"errcode": "M_UNKNOWN"}, status=503)
        for rule in self.rules:
            if (
                rule.remaining > 0
                and rule.fragment in request.path
                and rule.method in (None, request.method)
            ):
                rule.remaining -= 1
                rule.served += 1
                await request.read()
                return web.json_response(
                    {"errcode": "M_UNKNOWN", "error": rule.error}, status=rule.status
                )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            if (
                self.hold_to_device_syncs
                and request.path.endswith("/sync")
                and _carries_room_key(body)
            ):
                self.held += 1
                await self._release.wait()  # not answered before the client is gone
                return web.json_response({"errcode": "M_UNKNOWN"}, status=503)
            out_headers = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
            return web.Response(status=upstream.status, body=body, headers=out_headers)
