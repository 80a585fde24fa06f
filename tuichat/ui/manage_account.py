"""Opening the account's page on the server (MSC4191, OAuth 2.0 API
servers) from the TUI: `/account` and the Devices screen's key both come
here. The page opens in the browser, or its address is shown where no
browser can be opened (SSH)."""

from __future__ import annotations

from collections.abc import Callable

from tuichat.browser import can_open_browser, open_browser
from tuichat.matrix.service import ChatService, Failed
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted

# Shows a line to the person: the text, and whether it is an error.
Show = Callable[[SafeText, bool], None]


async def open_account_page(
    service: ChatService, action: str | None, show: Show, device_id: str | None = None
) -> None:
    show(trusted("Asking the server for your account page…"), False)
    url = await service.account_url(action, device_id)
    if isinstance(url, Failed):
        show(safe_text(f"No account page: {url.message}"), True)
    elif url is None:
        show(
            trusted(
                "Your server has no account page: it does not use the OAuth 2.0 API. "
                "Manage your account with its own tools or another client."
            ),
            True,
        )
    elif can_open_browser() and await open_browser(url):
        show(safe_line(f"Opened your account page in the browser: {url}"), False)
    else:
        show(safe_line(f"Open your account page in a browser: {url}"), False)
