"""A browser for the single sign-on tests: an HTTP client that keeps cookies
and follows redirects as a browser does, and fills in the pages of the
local OpenID Connect provider (oidc-provider-mock) and of Synapse.

The path: Synapse's SSO redirect (or its provider picker page) -> the
provider's authorization page, where a form POST names the subject (`sub`)
to sign in as -> Synapse's OIDC callback -> Synapse's "Continue to your
account" page, whose link goes to the client's `redirectUrl` with the
`loginToken`.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import aiohttp

_CONTINUE_LINK = re.compile(r'<a href="([^"]+)" class="primary-button">')
_PICK_IDP_LINK = re.compile(r'<a href="(pick_idp\?idp=[^"]+)"')


async def sign_in(
    sso_url: str, subject: str, *, secure_origins: list[str], follow_final: bool = True
) -> str:
    """Go through single sign-on from `sso_url` as `subject`; return the
    final address (the client's `redirectUrl` with the login token).

    `follow_final` False stops before loading that address, as a browser on
    another machine would fail to (the SSH case, where the person copies
    it from the address bar instead). `secure_origins` are the http origins
    treated as secure, as browsers treat loopback (Synapse's session
    cookies are `Secure`)."""
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=secure_origins)
    async with aiohttp.ClientSession(
        cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        async with http.get(sso_url) as response:
            page = await response.text()
            url = str(response.url)
            assert response.status == 200, (response.status, url, page[:500])
        picker = _PICK_IDP_LINK.search(page)
        if picker is not None:  # Synapse's own page: the first provider
            async with http.get(urljoin(url, html.unescape(picker.group(1)))) as response:
                page = await response.text()
                url = str(response.url)
                assert response.status == 200, (response.status, url, page[:500])
        assert 'name="sub"' in page, f"not the provider's authorization page: {url}"
        # The provider's form posts to the page's own address.
        async with http.post(url, data={"sub": subject}) as response:
            page = await response.text()
            assert response.status == 200, (response.status, str(response.url), page[:500])
        link = _CONTINUE_LINK.search(page)
        assert link is not None, f"no 'Continue' link on Synapse's page: {page[:800]}"
        final = html.unescape(link.group(1))
        if follow_final:
            async with http.get(final) as response:
                body = await response.text()
                assert response.status == 200, (response.status, body[:300])
                assert "You can close this tab" in body
        return final
