"""The demo: its homeserver, its bot and a logged-in profile, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.peers import wait_until
from tests.recorder import Recorder
from tuichat.demo.bot import GREETING, VERIFIED, VERIFY_HINT, describe_emoji, reply_to
from tuichat.demo.runner import DemoEnvironment
from tuichat.matrix.service import MatrixService
from tuichat.model.devices import Trust
from tuichat.model.events import VerificationChanged
from tuichat.model.verification import Phase, VerificationView


async def test_demo_bot_greets_and_answers_in_an_encrypted_dm(tmp_path: Path) -> None:
    environment = DemoEnvironment(tmp_path)
    # DemoEnvironment.start is synchronous (it runs before the TUI's loop).
    try:
        await asyncio.to_thread(environment.start)
        recorder = Recorder()
        service = MatrixService(environment.profile, recorder, sync_timeout_ms=1000)
        await service.start()
        try:
            room_id = environment.room_id
            assert room_id is not None and environment.bot is not None
            hello = GREETING.format(me=environment.bot.user_id)
            greeting = await wait_until(lambda: recorder.text_from(room_id, hello), 30)
            assert greeting.encrypted and greeting.sender_name == "Ada"
            summary = await wait_until(lambda: recorder.rooms().get(room_id))
            assert summary.is_direct and summary.encrypted and summary.name == "Ada"
            service.send_text(room_id, "hello")
            answer = await wait_until(lambda: recorder.text_from(room_id, reply_to("hello")), 30)
            assert answer.encrypted
            # Ada's only device is the first one of hers we see: not "new".
            assert not [i for i in recorder.items(room_id) if "new device" in i.body]
        finally:
            await service.stop()
    finally:
        environment.stop()
    assert environment.bot_process is None


async def _verify_ada(tmp_path: Path, *, in_room: bool) -> None:
    environment = DemoEnvironment(tmp_path)
    try:
        await asyncio.to_thread(environment.start)
        recorder = Recorder()
        service = MatrixService(environment.profile, recorder, sync_timeout_ms=1000)
        await service.start()
        try:
            room_id = environment.room_id
            assert room_id is not None and environment.bot is not None
            ada = environment.bot.user_id
            hello = GREETING.format(me=ada)
            await wait_until(lambda: recorder.text_from(room_id, hello), 30)
            if in_room:
                transaction_id = await service.request_user_verification(ada)
            else:
                devices = await service.devices(ada, refresh=True)
                transaction_id = await service.request_verification(ada, devices[0].device_id)
            assert transaction_id

            def view(phase: Phase) -> VerificationView | None:
                for event in reversed(recorder.events):
                    if (
                        isinstance(event, VerificationChanged)
                        and event.view.transaction_id == transaction_id
                        and event.view.phase is phase
                    ):
                        return event.view
                return None

            shown = await wait_until(lambda: view(Phase.SHOW_SAS), 30)
            # Ada says which emoji she sees, in the DM: the same ones.
            hint = VERIFY_HINT.format(emoji=describe_emoji(shown.emoji))
            await wait_until(lambda: recorder.text_from(room_id, hint), 30)
            await service.confirm_verification(transaction_id)
            done = await wait_until(lambda: view(Phase.DONE), 30)
            assert done.verified
            await wait_until(lambda: recorder.text_from(room_id, VERIFIED), 30)
            devices = await service.devices(ada)
            assert devices and all(device.trust is Trust.VERIFIED for device in devices)
        finally:
            await service.stop()
    finally:
        environment.stop()


async def test_ada_accepts_and_completes_an_emoji_verification_of_her_device(
    tmp_path: Path,
) -> None:
    await _verify_ada(tmp_path, in_room=False)


async def test_ada_accepts_and_completes_a_verification_started_in_the_dm(
    tmp_path: Path,
) -> None:
    await _verify_ada(tmp_path, in_room=True)


async def test_verifying_ada_in_the_tui_turns_her_earlier_lines_from_warning_to_lock(
    tmp_path: Path,
) -> None:
    """What `make demo` shows: Ada's greeting is marked ⚠ (her device is not
    verified); `/verify` with her, "They match", and the same lines, already
    on screen, are marked 🔒."""
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.verification import VerificationDialog
    from tuichat.ui.widgets.timeline_view import TimelineView

    environment = DemoEnvironment(tmp_path)
    try:
        await asyncio.to_thread(environment.start)
        assert environment.bot is not None
        app = TuichatApp(environment.profile, sync_timeout_ms=1000)
        async with app.run_test(size=(150, 40)) as pilot:
            view = app.query_one(TimelineView)

            def greeting_line() -> str | None:
                return next((t for t in view.line_texts() if "Hi! I'm Ada" in t), None)

            def marker() -> str:
                # The cell after the time: the greeting itself mentions both.
                return (greeting_line() or " ?").split()[1]

            await wait_ui(pilot, greeting_line, 60)
            assert marker() == "⚠"
            await type_text(pilot, f"/verify {environment.bot.user_id}")
            dialog = await wait_ui(
                pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 30
            )
            await wait_ui(pilot, lambda: dialog.view.phase is Phase.SHOW_SAS, 30)
            await pilot.click("#match")
            await wait_ui(pilot, lambda: dialog.view.phase is Phase.DONE, 30)
            await pilot.click("#close")
            await wait_ui(pilot, lambda: marker() == "🔒", 30)
    finally:
        environment.stop()
