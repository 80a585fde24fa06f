"""No background error vanishes: a worker of the App that fails ends in a
message the user sees and a log line, against the real Synapse."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from textual.widgets import Input

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.crypto.secret_storage import ALGORITHM, encode_recovery_key
from tuichat.ui.app import TuichatApp


async def _put_account_data(peer: NioPeer, event_type: str, content: dict[str, Any]) -> None:
    """Account data written by another client of the same account."""
    client = peer.client
    url = (
        f"{client.homeserver}/_matrix/client/v3/user/{quote(client.user_id, safe='')}"
        f"/account_data/{quote(event_type, safe='')}"
    )
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, json=content, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()


def _toasts(app: TuichatApp) -> list[str]:
    from textual.widgets._toast import Toast

    return [str(toast.render()) for toast in app.screen.query(Toast)]


async def test_a_failed_background_task_is_shown_and_logged(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another client of the account wrote a secret storage key whose check
    value is not base64: restoring from the recovery dialog raises an error
    the recovery code does not expect. It must not vanish with its worker."""
    alice = new_user("alice", "Alice")
    await log_in(synapse, profile, alice)
    other_device: NioPeer = await peer_factory(alice)
    await _put_account_data(
        other_device,
        "m.secret_storage.key.broken",
        {"algorithm": ALGORITHM, "iv": "A", "mac": "A"},
    )
    await _put_account_data(other_device, "m.secret_storage.default_key", {"key": "broken"})
    from tuichat.ui.screens.recovery import RecoveryDialog

    caplog.set_level(logging.ERROR, logger="tuichat")
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36), notifications=True) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        await type_text(pilot, "/recover")
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, RecoveryDialog) and app.screen, 30
        )
        await wait_ui(pilot, lambda: dialog.query("#secret"))
        dialog.query_one("#secret", Input).value = encode_recovery_key(secrets.token_bytes(32))
        await pilot.press("enter")

        await wait_ui(pilot, lambda: any("Recovery failed" in t for t in _toasts(app)), 20)
        toast = next(t for t in _toasts(app) if "Recovery failed" in t)
        assert "Invalid base64" in toast
        feedback = str(app.main.feedback.render())
        assert feedback.startswith("Recovery failed: Error: Invalid base64")

    failures = [r for r in caplog.records if r.name == "tuichat.ui.worker_errors"]
    assert len(failures) == 1
    assert "recovery" in failures[0].getMessage() and failures[0].exc_info is not None


def test_the_failure_message_is_one_clean_line_of_plain_text() -> None:
    """An exception may quote remote text: no escape sequence, no line
    break reaches the screen, and it is shown as plain text, not markup."""
    from tuichat.ui.worker_errors import failure_text

    text = failure_text("downloads", ValueError("\x1b[2Jbad\nname [b]x[/b]"))
    assert text.startswith("The download failed: ValueError: ")
    assert "\x1b" not in text and "\n" not in text
    assert "[b]x[/b]" in text
    assert failure_text("nonesuch", None) == "A background task failed."
