"""The demo: its homeserver, its bot and a logged-in profile, end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.peers import wait_until
from tests.recorder import Recorder
from tuichat.demo.bot import GREETING, reply_to
from tuichat.demo.runner import DemoEnvironment
from tuichat.matrix.service import MatrixService


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
            assert room_id is not None
            greeting = await wait_until(lambda: recorder.text_from(room_id, GREETING), 30)
            assert greeting.encrypted and greeting.sender_name == "Ada"
            summary = await wait_until(lambda: recorder.rooms().get(room_id))
            assert summary.is_direct and summary.encrypted and summary.name == "Ada"
            service.send_text(room_id, "hello")
            answer = await wait_until(lambda: recorder.text_from(room_id, reply_to("hello")), 30)
            assert answer.encrypted
        finally:
            await service.stop()
    finally:
        environment.stop()
    assert environment.bot_process is None
