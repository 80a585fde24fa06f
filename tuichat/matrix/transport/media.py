"""The homeserver's media repository: upload, download, thumbnails, limits.

Downloads use the authenticated endpoints (`/_matrix/client/v1/media`,
spec v1.11; Synapse serves new media only there), falling back to the
legacy `/_matrix/media/v3` paths on servers that do not know them. The
access token goes in the Authorization header, never in a URL.

`mxc://` URIs are remote input: `parse_mxc` checks them against the spec's
grammar (a server name, then a media id of `[A-Za-z0-9_-]`) before any is
put into a request path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from tuichat.matrix.transport import fastjson

if TYPE_CHECKING:
    # Only a type here: the timeline validates mxc URIs before nio is loaded.
    from nio import AsyncClient

AUTHENTICATED = "/_matrix/client/v1/media"
LEGACY = "/_matrix/media/v3"
CHUNK = 64 * 1024

# server_name: a DNS name, IPv4 address or [IPv6], with an optional port.
_MXC = re.compile(
    r"^mxc://(?P<server>(?:[A-Za-z0-9.\-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?)"
    r"/(?P<media>[A-Za-z0-9_\-]{1,255})$"
)

Progress = Callable[[int, int], None]


class MediaError(Exception):
    def __init__(self, message: str, status: int = 0, errcode: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode


@dataclass(frozen=True)
class MediaId:
    server: str
    media_id: str

    @property
    def path(self) -> str:
        return f"{quote(self.server, safe='')}/{quote(self.media_id, safe='')}"


def parse_mxc(uri: object) -> MediaId | None:
    """The parts of a valid `mxc://server/id` URI, else None."""
    if not isinstance(uri, str):
        return None
    match = _MXC.match(uri)
    if match is None:
        return None
    return MediaId(match.group("server"), match.group("media"))


class MediaRepository:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.client.access_token}"}

    async def _json(self, response: Any) -> dict[str, Any]:
        raw = await response.read()
        try:
            body = fastjson.loads(raw) if raw else {}
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    async def upload_limit(self) -> int | None:
        """The server's `m.upload.size` in bytes, if it says."""
        for prefix in (AUTHENTICATED, LEGACY):
            response = await self.client.send("GET", f"{prefix}/config", None, self._headers())
            if response.status == 200:
                size = (await self._json(response)).get("m.upload.size")
                return size if isinstance(size, int) and size > 0 else None
            await response.release()
        return None

    async def upload(
        self,
        data: bytes,
        content_type: str,
        filename: str,
        progress: Progress | None = None,
    ) -> str:
        """Upload `data`; returns its `mxc://` URI."""
        total = len(data)

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            for start in range(0, total, CHUNK):
                chunk = data[start : start + CHUNK]
                yield chunk
                sent += len(chunk)
                if progress is not None:
                    progress(sent, total)

        headers = {
            **self._headers(),
            "Content-Type": content_type,
            "Content-Length": str(total),
        }
        path = f"{LEGACY}/upload?{urlencode({'filename': filename})}"
        response = await self.client.send("POST", path, chunks(), headers, timeout=600)
        body = await self._json(response)
        if response.status != 200:
            raise MediaError(
                f"the server refused the upload: {body.get('error') or response.status}",
                response.status,
                str(body.get("errcode", "")),
            )
        uri = body.get("content_uri")
        if parse_mxc(uri) is None:
            raise MediaError("the server's answer had no valid content URI")
        return str(uri)

    async def download(self, uri: str, *, max_bytes: int | None = None) -> bytes:
        media = parse_mxc(uri)
        if media is None:
            raise MediaError(f"not a valid mxc:// URI: {uri[:100]!r}")
        return await self._get(f"download/{media.path}", max_bytes)

    async def thumbnail(self, uri: str, width: int, height: int) -> bytes:
        media = parse_mxc(uri)
        if media is None:
            raise MediaError(f"not a valid mxc:// URI: {uri[:100]!r}")
        query = urlencode({"width": width, "height": height, "method": "scale"})
        return await self._get(f"thumbnail/{media.path}?{query}", 20 * 1024 * 1024)

    async def _get(self, tail: str, max_bytes: int | None) -> bytes:
        status, errcode = 0, ""
        for prefix in (AUTHENTICATED, LEGACY):
            response = await self.client.send(
                "GET", f"{prefix}/{tail}", None, self._headers(), timeout=600
            )
            status = response.status
            if status == 200:
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        response.close()
                        raise MediaError(f"larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
            body = await self._json(response)
            errcode = str(body.get("errcode", ""))
            # An old server without authenticated media: try the legacy path.
            unknown = (status == 404 and errcode == "M_UNRECOGNIZED") or status in (400, 405)
            if prefix == AUTHENTICATED and unknown:
                continue
            break
        raise MediaError(f"the server answered {status} {errcode}".strip(), status, errcode)
