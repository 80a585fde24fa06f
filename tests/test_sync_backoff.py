"""The sync loop waits as long as a 429 asks, and backs off exponentially
(capped) on other failures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.recorder import Recorder
from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.service import MatrixService, SyncHTTPError


def _profile(root: Path) -> Profile:
    profile = Profile(root)
    profile.ensure()
    profile.create_pickle_key()
    profile.save_session(Session("http://127.0.0.1:9", "@me:x", "DEVICE", "token-123456"))
    return profile


async def test_sync_waits_out_a_rate_limit_then_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = MatrixService(_profile(tmp_path / "p"), Recorder())
    await service.open()
    failures = iter(
        [
            SyncHTTPError(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}),
            SyncHTTPError(502, {}),
            SyncHTTPError(502, {}),
            SyncHTTPError(502, {}),
        ]
    )
    delays: list[float] = []

    async def sync_request(timeout_ms: int) -> dict[str, Any]:
        raise next(failures)

    async def back_off(detail: str, delay: float) -> None:
        delays.append(delay)
        if len(delays) == 4:
            raise asyncio.CancelledError

    async def nothing() -> None:
        return None

    parts = service.parts
    monkeypatch.setattr(parts.syncing, "_sync_request", sync_request)
    monkeypatch.setattr(parts.syncing, "_back_off", back_off)
    monkeypatch.setattr(parts.keys, "upkeep", nothing)
    with pytest.raises(asyncio.CancelledError):
        await parts.syncing.run()
    assert delays == [1.5, 1.0, 2.0, 4.0]
    await service.stop()
