"""Single sign-on (`m.login.sso`): the browser side of it.

The homeserver's SSO redirect sends the browser to the identity provider
and, once the person signed in, back to a `redirectUrl` we chose with a
`loginToken` query parameter. That URL is a one-shot HTTP server on
127.0.0.1 with a random port (`LoopbackCallback`). Over SSH, where the
browser runs on another machine, the loopback cannot be reached: the person
pastes the final URL (or the bare token) into the terminal instead, and
`wait_for_login_token` takes whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from aiohttp import web

from tuichat.log_redaction import register_secret

log = logging.getLogger(__name__)

# Login tokens are opaque; Synapse's are short ASCII strings. Anything that
# could not be one (spaces, controls, a very long paste) is refused.
_TOKEN = re.compile(r"[\x21-\x7e]{1,1024}")

CLOSE_TAB_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tuichat</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1>You are signed in to tuichat</h1>
<p>You can close this tab and go back to the terminal.</p>
</body></html>
"""

NO_TOKEN_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tuichat</title></head>
<body style="font-family: sans-serif; margin: 3em">
<h1>tuichat did not get a login token</h1>
<p>This address carries no login token. Go back to the terminal and try again.</p>
</body></html>
"""


def sso_redirect_url(base_url: str, redirect_url: str, idp_id: str | None = None) -> str:
    """`/_matrix/client/v3/login/sso/redirect[/{idpId}]?redirectUrl=...`"""
    path = "/_matrix/client/v3/login/sso/redirect"
    if idp_id:
        path += "/" + quote(idp_id, safe="")
    return f"{base_url}{path}?{urlencode({'redirectUrl': redirect_url})}"


def token_from_paste(text: str) -> str | None:
    """The login token in what the person pasted: the final URL (with its
    `loginToken` parameter) or the bare token; None if neither."""
    text = text.strip()
    if not text:
        return None
    if "://" in text or text.startswith(("/", "?")) or "loginToken=" in text:
        query = urlsplit(text).query if "://" in text or text.startswith("/") else text
        values = parse_qs(query.lstrip("?")).get("loginToken")
        text = values[0] if values else ""
    return text if _TOKEN.fullmatch(text) else None


class LoopbackCallback:
    """A tiny HTTP server on 127.0.0.1 waiting for the SSO redirect.

    Its URL has a random path as well as a random port, so another local
    program guessing the port cannot feed it a token of its own choosing
    without knowing the path."""

    def __init__(self) -> None:
        self._path = "/sso-callback/" + secrets.token_urlsafe(12)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.token: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self._path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(self._path, self._callback)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def _callback(self, request: web.Request) -> web.Response:
        token = request.query.get("loginToken", "")
        if not _TOKEN.fullmatch(token):
            return web.Response(text=NO_TOKEN_PAGE, content_type="text/html", status=400)
        if not self.token.done():
            self.token.set_result(token)
        return web.Response(text=CLOSE_TAB_PAGE, content_type="text/html")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def stdin_lines() -> AsyncIterator[str]:
    """Lines typed on standard input, read without a thread (a thread
    blocked in `readline` would keep the program from exiting once the
    browser's callback won). Ends at once where stdin cannot be watched
    (a regular file, /dev/null) or at end of input."""
    loop = asyncio.get_running_loop()
    fd = 0
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        queue.put_nowait(chunk)
        if not chunk:
            loop.remove_reader(fd)

    try:
        loop.add_reader(fd, readable)
    except (OSError, ValueError, NotImplementedError):
        return
    buffer = b""
    try:
        while True:
            chunk = await queue.get()
            if not chunk:
                if buffer:
                    yield buffer.decode("utf-8", "replace")
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode("utf-8", "replace")
            if len(buffer) > 65536:  # no line is that long; drop the junk
                buffer = b""
    finally:
        loop.remove_reader(fd)


async def wait_for_login_token(
    callback: LoopbackCallback,
    pasted: AsyncIterator[str] | None,
    on_bad_paste: Callable[[str], None] | None = None,
    parse: Callable[[str], str | None] = token_from_paste,
    what: str = "single sign-on: login token",
) -> str:
    """The login token from the loopback callback or from a pasted line,
    whichever comes first. `on_bad_paste(line)` is called for a pasted line
    that holds no token; the wait goes on. `parse` finds the token in a
    pasted line (the OAuth 2.0 API's authorization code has its own);
    `what` names it in the log."""

    async def from_paste() -> str:
        if pasted is not None:
            async for line in pasted:
                token = parse(line)
                if token is not None:
                    return token
                if line.strip() and on_bad_paste is not None:
                    on_bad_paste(line)
        # Nothing (more) to read: only the callback is left.
        return await asyncio.get_running_loop().create_future()

    paste_task = asyncio.ensure_future(from_paste())
    try:
        done, _ = await asyncio.wait(
            {paste_task, callback.token}, return_when=asyncio.FIRST_COMPLETED
        )
        winner = callback.token if callback.token in done else paste_task
        token = winner.result()
        register_secret(token)
        # The token itself is never logged: it is a credential until used.
        source = "loopback callback" if winner is callback.token else "pasted"
        log.info("%s received (%s)", what, source)
        return token
    finally:
        paste_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await paste_task
        if pasted is not None and hasattr(pasted, "aclose"):
            await pasted.aclose()
