"""Approval in the browser instead of a password (MSC4312 `m.oauth`): on a
Synapse that delegates authentication to the test authorization server,
replacing the cross-signing keys needs the person's approval on the
account page; `uia_auth` shows the page, then the upload goes through."""

from __future__ import annotations

from typing import Any

import pytest

from tests.oauth_browser import submit_account_page
from tests.oauth_server import AuthServer
from tests.test_oauth_login import oauth_log_in
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.oauth_uia import (
    ApprovalRequired,
    BrowserApproval,
    approval_needed,
    uia_auth,
)
from tuichat.matrix.account.session import Profile
from tuichat.matrix.crypto.cross_signing import SigningKey

UPLOAD = "/_matrix/client/v3/keys/device_signing/upload"


def _master(user_id: str, key: SigningKey) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "usage": ["master"],
        "keys": {f"ed25519:{key.public_key}": key.public_key},
    }


async def test_cross_signing_reset_is_approved_in_the_browser(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    token, user_id = session.access_token, session.user_id
    localpart = user_id[1:].split(":")[0]
    status, answer = oauth_synapse._request(
        "POST", UPLOAD, {"master_key": _master(user_id, SigningKey.generate())}, token=token
    )
    assert status == 200, answer  # the first keys need no approval

    body = {"master_key": _master(user_id, SigningKey.generate())}
    status, answer = oauth_synapse._request("POST", UPLOAD, body, token=token)
    assert status == 401, answer
    needed = approval_needed(answer)
    assert needed is not None and needed.stage == "m.oauth"
    assert needed.url.startswith(oauth_server.issuer + "account?")
    assert "action=org.matrix.cross_signing_reset" in needed.url

    # Without a way to show the page: a plain error that names it.
    async def password(session: str) -> dict[str, Any]:
        raise AssertionError("no password stage on this server")

    with pytest.raises(ApprovalRequired, match="approve this in your browser first: open http"):
        await uia_auth(answer, password)

    opened: list[str] = []

    async def approve(url: str) -> None:
        opened.append(url)
        await submit_account_page(url, localpart)  # the person approves

    auth = await uia_auth(answer, BrowserApproval(approve))
    assert opened == [needed.url]
    assert auth == {"type": "m.oauth", "session": answer["session"]}
    status, answer = oauth_synapse._request("POST", UPLOAD, {**body, "auth": auth}, token=token)
    assert status == 200, answer


async def test_a_password_stage_goes_to_the_password() -> None:
    body = {"session": "s1", "flows": [{"stages": ["m.login.password"]}], "params": {}}

    async def password(session: str) -> dict[str, Any]:
        return {"type": "m.login.password", "session": session}

    assert approval_needed(body) is None
    assert await uia_auth(body, password) == {"type": "m.login.password", "session": "s1"}
    # A URL that is not http(s) or carries controls is not followed.
    hostile = {
        "session": "s",
        "flows": [{"stages": ["m.oauth"]}],
        "params": {"m.oauth": {"url": "javascript:alert(1)"}},
    }
    assert approval_needed(hostile) is None
    hostile["params"] = {"m.oauth": {"url": "https://a.example/\x1b[2J"}}
    assert approval_needed(hostile) is None
