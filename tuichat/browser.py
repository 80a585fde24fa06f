"""Opening an address in the person's web browser, when there is one: used
by `tuichat login`, `tuichat account` and the TUI's /account and recovery
approval. Over SSH there is no browser here, and the address is shown for
the person to open elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import webbrowser

# How long to wait for the browser command to report whether it opened.
BROWSER_START_S = 3.0


def can_open_browser() -> bool:
    """Whether a graphical browser can be on this machine. Over SSH without
    a display there is none, and Python's fallback would start a text
    browser inside this terminal."""
    if sys.platform in ("darwin", "win32") or os.environ.get("BROWSER"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def open_in_browser(url: str) -> bool:
    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False


async def open_browser(url: str) -> bool:
    """Open `url` without blocking the event loop (a loopback server, the TUI): `webbrowser` waits
    for a $BROWSER command to exit, which may be the browser itself. A
    browser still starting after a few seconds counts as opened."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[bool] = loop.create_future()

    def run() -> None:
        opened = open_in_browser(url)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(lambda: result.done() or result.set_result(opened))

    # A daemon thread, not the default executor: exiting must not wait for it.
    threading.Thread(target=run, name="open-browser", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(result), BROWSER_START_S)
    except TimeoutError:
        return True
