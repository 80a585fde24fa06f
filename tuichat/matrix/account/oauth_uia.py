"""User-interactive auth on OAuth 2.0 API servers: approval in the browser.

Such servers have no password to ask for. Where a request needs the person's
consent (replacing the cross-signing keys), the homeserver answers 401 with
a flow of one `m.oauth` stage (MSC4312; `org.matrix.cross_signing_reset`
before it was stable) whose params hold the URL of the account page where
the person approves it. tuichat says so, opens (or prints) that URL, waits
until the person says it is done, then makes the request again with
`{"type": <stage>, "session": <session>}`.

`uia_auth(body, authenticate)` answers a 401 body either way: with the
approval when the server asks for it, else with `authenticate(session)`
(the password stage). The approval needs a way to show the URL and wait:
an `authenticate` that is a `BrowserApproval` brings it; any other one gets
`ApprovalRequired`, whose message names the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tuichat.model.sanitize import clean_line

log = logging.getLogger(__name__)

OAUTH_STAGES = ("m.oauth", "org.matrix.cross_signing_reset")

PasswordAuth = Callable[[str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ApprovalNeeded:
    """The server asks for an approval in the browser at `url`."""

    stage: str
    session: str
    url: str


class ApprovalRequired(Exception):
    """The server needs an approval in the browser and nothing here can
    show it; the message says where to go (sanitised)."""

    def __init__(self, needed: ApprovalNeeded) -> None:
        self.needed = needed
        super().__init__(
            f"the server asks you to approve this in your browser first: open {needed.url}, "
            "approve, then try again"
        )


class NoPasswordStage(Exception):
    """The server asked for a password where only an approval was ready."""


def _safe_url(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > 2048 or clean_line(value) != value:
        return None
    if any(c.isspace() for c in value):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def approval_needed(body: Mapping[str, Any]) -> ApprovalNeeded | None:
    """The approval a 401 user-interactive auth answer asks for, if one of
    its flows is a single OAuth approval stage with a usable URL."""
    session = body.get("session")
    flows = body.get("flows")
    params = body.get("params")
    if not isinstance(session, str) or not isinstance(flows, list):
        return None
    params = params if isinstance(params, dict) else {}
    for stage in OAUTH_STAGES:
        offered = any(isinstance(flow, dict) and flow.get("stages") == [stage] for flow in flows)
        stage_params = params.get(stage)
        url = _safe_url(stage_params.get("url")) if isinstance(stage_params, dict) else None
        if offered and url is not None:
            return ApprovalNeeded(stage, session, url)
    return None


class BrowserApproval:
    """An `authenticate` for requests that may need user-interactive auth:
    `approve(url)` shows or opens the URL and returns once the person says
    they approved; `password(session)`, if given, answers the password
    stage on servers that still have one."""

    def __init__(
        self, approve: Callable[[str], Awaitable[None]], password: PasswordAuth | None = None
    ) -> None:
        self.approve = approve
        self.password = password

    async def __call__(self, session: str) -> dict[str, Any]:
        if self.password is None:
            raise NoPasswordStage(
                "the server asks for your password, and none was given for this request"
            )
        return await self.password(session)


async def uia_auth(body: Mapping[str, Any], authenticate: PasswordAuth) -> dict[str, Any]:
    """The `auth` to send again after the 401 `body`: the OAuth approval
    when the server asks for one, else what `authenticate(session)` gives."""
    needed = approval_needed(body)
    if needed is None:
        return await authenticate(str(body.get("session", "")))
    if not isinstance(authenticate, BrowserApproval):
        raise ApprovalRequired(needed)
    log.info("the server asks for an approval in the browser (%s)", needed.stage)
    await authenticate.approve(needed.url)
    return {"type": needed.stage, "session": needed.session}
