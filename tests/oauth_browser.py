"""A browser for the OAuth 2.0 API tests: an HTTP client that fills in the
pages of the test authorization server (tests/oauth_server.py) as a person
would: the sign-in and consent page of the authorization code grant, the
device page of the device authorization grant, the account page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp

_TIMEOUT = aiohttp.ClientTimeout(total=60)


async def approve_code(
    url: str, username: str, *, allow: bool = True, follow_final: bool = True
) -> str:
    """Sign in as `username` at the authorization URL `url` and allow (or
    deny) tuichat; the final address (the loopback redirect with the code).
    `follow_final` False stops before loading it, as a browser on another
    machine cannot."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as http:
        async with http.get(url) as response:
            page = await response.text()
            assert response.status == 200, (response.status, page[:500])
            assert 'name="username"' in page, page[:500]
        form = {"username": username, "action": "allow" if allow else "deny"}
        async with http.post(url, data=form, allow_redirects=False) as response:
            assert response.status == 302, (response.status, (await response.text())[:500])
            final = response.headers["Location"]
        if follow_final:
            async with http.get(final) as response:
                body = await response.text()
                if allow:
                    assert response.status == 200, (response.status, body[:300])
                    assert "You can close this tab" in body
        return final


async def approve_device(url: str, username: str, *, allow: bool = True) -> None:
    """Open the device page `url` (verification_uri_complete), sign in as
    `username` and allow (or deny) the device."""
    code = parse_qs(urlsplit(url).query)["user_code"][0]
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as http:
        async with http.get(url) as response:
            page = await response.text()
            assert response.status == 200 and code in page, page[:500]
        form = {"user_code": code, "username": username, "action": "allow" if allow else "deny"}
        async with http.post(url.split("?")[0], data=form) as response:
            assert response.status == 200, (response.status, (await response.text())[:300])


async def submit_account_page(url: str, username: str) -> None:
    """Confirm what the account page `url` asks (e.g. a cross-signing reset)."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as http:
        async with http.get(url) as response:
            assert response.status == 200
        async with http.post(url, data={"username": username}) as response:
            assert response.status == 200, (response.status, (await response.text())[:300])
