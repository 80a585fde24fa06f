"""Accounts of OAuth 2.0 API servers have no password: recovery is set up
without one, and where the server asks for an approval in the browser to
upload cross-signing keys (MSC4312), the recovery dialog shows the page
and goes on when the person presses "Done". /account opens (or shows) the
account page. Against the Synapse that delegates to the test authorization
server (tests/oauth_server.py), as in tests/test_oauth_uia.py."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from tests.oauth_browser import submit_account_page
from tests.oauth_server import AuthServer
from tests.test_oauth_login import oauth_log_in
from tests.test_oauth_uia import UPLOAD, _master
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.crypto.cross_signing import MASTER, SigningKey
from tuichat.matrix.service import Failed

NO_BROWSER = ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")


async def test_recovery_is_set_up_with_an_approval_in_the_browser_from_the_dialog(
    oauth_synapse: LocalSynapse,
    oauth_server: AuthServer,
    profile: Profile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another device uploads a master key while tuichat sets recovery up:
    replacing it needs the person's approval on the account page. The
    dialog asks no password, shows the page's address and a "Done"
    button; once approved, the keys are uploaded and the recovery key is
    shown."""
    from textual.widgets import Button, Input

    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.recovery import RecoveryDialog

    for name in NO_BROWSER:
        monkeypatch.delenv(name, raising=False)
    session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    localpart = session.user_id[1:].split(":")[0]
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        service = app.service
        assert service is not None and service.oauth_account and service.crypto is not None
        recovery = service.crypto.recovery
        setup = recovery.setup

        async def setup_meanwhile_another_device_uploads(*args: Any) -> Any:
            status, answer = await asyncio.to_thread(
                oauth_synapse._request,
                "POST",
                UPLOAD,
                {"master_key": _master(session.user_id, SigningKey.generate())},
                token=session.access_token,
            )
            assert status == 200, answer
            return await setup(*args)

        monkeypatch.setattr(recovery, "setup", setup_meanwhile_another_device_uploads)

        await type_text(pilot, "/recover")
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, RecoveryDialog) and app.screen, 30
        )
        assert not dialog.has_secret_storage
        assert not list(dialog.query("#password").results(Input))  # no password to ask for
        await pilot.press("enter")  # "Set up recovery" has the focus

        done = dialog.query_one("#approved", Button)
        await wait_ui(pilot, lambda: done.display, 30)
        url = str(dialog.query_one("#approval").render())
        assert url.startswith(oauth_server.issuer + "account?")
        assert "action=org.matrix.cross_signing_reset" in url
        assert "approve creating your cross-signing keys" in str(
            dialog.query_one("#outcome").render()
        )
        await submit_account_page(url, localpart)  # the person approves
        await pilot.click("#approved")
        await wait_ui(pilot, lambda: dialog.query_one("#recovery-key").display, 60)
        assert not done.display

        status = await service.recovery_status()
        assert not isinstance(status, Failed) and status.has_secret_storage
        assert await service.has_cross_signing() is True
        # Ours replaced the other device's master key on the server.
        _status, keys = oauth_synapse._request(
            "POST",
            "/_matrix/client/v3/keys/query",
            {"device_keys": {session.user_id: []}},
            token=session.access_token,
        )
        ours = service.crypto.cross_signing.private[MASTER].public_key
        assert list(keys["master_keys"][session.user_id]["keys"].values()) == [ours]


async def test_recover_setup_on_the_command_line_needs_no_password(
    oauth_synapse: LocalSynapse, oauth_server: AuthServer, profile: Profile
) -> None:
    """`tuichat recover --setup` on an OAuth 2.0 API account: the first
    cross-signing keys need no approval, and no password is asked."""
    await oauth_log_in(oauth_server, oauth_synapse, profile)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tuichat",
        "--profile",
        str(profile.root),
        "recover",
        "--setup",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "Recovery is set up. Your recovery key is:" in out.decode()


async def test_the_account_command_shows_the_account_page_without_a_browser(
    oauth_synapse: LocalSynapse,
    oauth_server: AuthServer,
    profile: Profile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuichat.ui.app import TuichatApp

    for name in NO_BROWSER:
        monkeypatch.delenv(name, raising=False)
    session = await oauth_log_in(oauth_server, oauth_synapse, profile)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(200, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        feedback = app.main.feedback
        await type_text(pilot, "/account device")
        page = (
            f"{oauth_server.issuer}account?action=org.matrix.session_view"
            f"&device_id={session.device_id}"
        )
        await wait_ui(pilot, lambda: page in str(feedback.render()), 20)
        assert str(feedback.render()).startswith("Open your account page in a browser: ")

        await type_text(pilot, "/account nonsense")
        await wait_ui(pilot, lambda: "Usage: /account [profile" in str(feedback.render()))


async def test_the_devices_screen_opens_the_account_page_of_your_sessions(
    oauth_synapse: LocalSynapse,
    oauth_server: AuthServer,
    profile: Profile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`m` on your own Devices screen (no other session to select): the
    account page listing your sessions, shown where no browser opens."""
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.devices import DevicesScreen

    for name in NO_BROWSER:
        monkeypatch.delenv(name, raising=False)
    await oauth_log_in(oauth_server, oauth_synapse, profile)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(200, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        await pilot.press("f3")
        await wait_ui(pilot, lambda: isinstance(app.screen, DevicesScreen), 10)
        screen = app.screen
        assert isinstance(screen, DevicesScreen)
        await wait_ui(
            pilot, lambda: "Loading" not in str(screen.query_one("#this-device").render())
        )
        await pilot.press("m")
        page = f"{oauth_server.issuer}account?action=org.matrix.sessions_list"
        status = screen.query_one("#devices-status")
        await wait_ui(pilot, lambda: page in str(status.render()), 20)


async def test_a_server_without_the_oauth_api_has_no_account_page(
    synapse: LocalSynapse, new_user: Any, profile: Profile
) -> None:
    from tests.conftest import log_in
    from tuichat.ui.app import TuichatApp

    await log_in(synapse, profile, new_user("alice"))
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        assert app.service is not None and not app.service.oauth_account
        assert await app.service.account_url("profile") is None
        await type_text(pilot, "/account")
        await wait_ui(pilot, lambda: "has no account page" in str(app.main.feedback.render()))
