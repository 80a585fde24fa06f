"""The network figures, against a real local Synapse holding a large account
(benchmarks/big_account.py, built once and kept under benchmarks/.data):

- `first_login`: from the login request to a usable first screen (the app
  running headless: the room list painted, the room it opened showing its
  last messages), with sliding sync over the same with `/v3/sync`;
- `catch_up`: after CATCH_UP_EVENTS messages in CATCH_UP_ROOMS rooms while
  tuichat was closed, from start to up to date (every changed room's unread
  count from the server, the open room's newest message shown), sliding
  over `/v3`.

The size is 2,000 rooms of 20 members and 50 messages; TUICHAT_BENCH_ACCOUNT
("ROOMSxMEMBERSxEVENTS", e.g. "500x20x50") sets another (the account is built
up to it first; building 2,000 rooms takes hours on a small machine), and
TUICHAT_BENCH_DATA another directory for it.
`catch_up` runs the service in this process with a recording sink, as the
tests drive it."""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import big_account
from tuichat.matrix.account.login import login
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.matrix.service.sliding_sync import SYNC_MODE_ENV
from tuichat.model.connection import ConnectionState
from tuichat.model.events import ServerCounts, TimelineAppended

SIZE_ENV = "TUICHAT_BENCH_ACCOUNT"
FIRST_LOGIN_ROUNDS = 2
CATCH_UP_ROOMS, CATCH_UP_PER_ROOM = 200, 50
POLL = 0.01


def _account() -> big_account.Account:
    size = os.environ.get(SIZE_ENV)
    if not size:
        return big_account.account()
    rooms, members, events = (int(part) for part in size.lower().split("x"))
    return big_account.account(rooms, members, events)


class _Sink:
    def __init__(self) -> None:
        self.appended: dict[str, float] = {}  # room id -> first time with items
        self.last_body: dict[str, str] = {}
        self.counts: dict[str, float] = {}  # room id -> time of the server counts

    def __call__(self, event: Any) -> None:
        now = time.perf_counter()
        if isinstance(event, TimelineAppended) and event.items:
            self.appended.setdefault(event.room_id, now)
            self.last_body[event.room_id] = event.items[-1].body
        elif isinstance(event, ServerCounts):
            self.counts[event.room_id] = now


async def _until(predicate: Any, limit: float = 1200.0) -> None:
    deadline = time.perf_counter() + limit
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark condition not met")
        await asyncio.sleep(POLL)


def _newest_room(service: MatrixService) -> str | None:
    activity = service.snapshot.last_activity
    return max(activity, key=lambda room: activity[room]) if activity else None


async def _first_login(url: str, root: Path, mode: str) -> dict[str, float]:
    os.environ[SYNC_MODE_ENV] = mode
    profile = Profile(root)
    started = time.perf_counter()
    await login(
        profile,
        homeserver=url,
        user=big_account.OWNER,
        password=big_account.PASSWORD,
        device_name="bench",
    )
    sink = _Sink()
    service = MatrixService(profile, sink, sync_timeout_ms=1000)
    await service.start()
    try:
        await _until(lambda: service.first_sync_done.is_set())
        newest = _newest_room(service)
        await _until(lambda: newest in sink.appended)
        usable = time.perf_counter() - started
        await _until(lambda: service.connection_state is ConnectionState.SYNCED)
        complete = time.perf_counter() - started
        return {"usable": usable, "complete": complete, "rooms": len(service.states)}
    finally:
        await service.stop()


async def _first_login_on_screen(url: str, root: Path, mode: str) -> dict[str, float]:
    """As `_first_login`, through the app: usable once the room list and the
    opened room's messages are painted."""
    from tuichat.ui.app import TuichatApp

    os.environ[SYNC_MODE_ENV] = mode
    profile = Profile(root)
    started = time.perf_counter()
    await login(
        profile,
        homeserver=url,
        user=big_account.OWNER,
        password=big_account.PASSWORD,
        device_name="bench",
    )
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:

        def usable() -> bool:
            room = app.state.current_room_id
            return bool(room and app.state.rooms.ordered() and len(app.state.timeline(room)))

        while not usable():
            await pilot.pause(POLL)
        await pilot.pause()  # the frame that shows it
        painted = time.perf_counter() - started
        while app.state.connection is not ConnectionState.SYNCED:
            await pilot.pause(0.05)
        complete = time.perf_counter() - started
        return {"usable": painted, "complete": complete, "rooms": len(app.state.rooms.ordered())}


async def _first_logins(url: str, tmp: Path) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"v3": [], "sliding": []}
    for n in range(FIRST_LOGIN_ROUNDS):
        for mode in ("v3", "sliding"):
            runs[mode].append(await _first_login_on_screen(url, tmp / f"{mode}-{n}", mode))
    return runs


def first_login(tmp: Path) -> dict[str, Any]:
    """The figure's numbers (`run.py` adds the target)."""
    account = _account()
    server = account.server()
    server.start(timeout=300)
    try:
        runs = asyncio.run(_first_logins(server.url, tmp))
    finally:
        server.stop()
    v3 = statistics.median(r["usable"] for r in runs["v3"])
    sliding = statistics.median(r["usable"] for r in runs["sliding"])
    return {
        "ratio": sliding / v3,
        "rooms": int(runs["sliding"][0]["rooms"]),
        "members": account.members,
        "events_per_room": account.events,
        "sliding_ms": round(sliding * 1000),
        "v3_ms": round(v3 * 1000),
        "sliding_all_rooms_ms": round(
            statistics.median(r["complete"] for r in runs["sliding"]) * 1000
        ),
    }


async def _catch_up(url: str, account: big_account.Account, tmp: Path) -> dict[str, float]:
    profiles = {mode: Profile(tmp / mode) for mode in ("v3", "sliding")}
    results: dict[str, float] = {}
    for mode, profile in profiles.items():
        # The rooms the account is in (an interrupted build leaves a few
        # more than it lists).
        results["rooms"] = (await _first_login(url, profile.root, mode))["rooms"]
    rooms = min(CATCH_UP_ROOMS, len(account.room_ids))
    await big_account.send_burst(url, account, rooms, CATCH_UP_PER_ROOM)
    changed = account.room_ids[:rooms]
    open_room = changed[-1]
    last = f"(later {CATCH_UP_PER_ROOM - 1})"
    for mode, profile in profiles.items():
        os.environ[SYNC_MODE_ENV] = mode
        sink = _Sink()
        started = time.perf_counter()
        service = MatrixService(profile, sink, sync_timeout_ms=1000)
        service.show_room(open_room)
        await service.start()
        try:
            await _until(
                lambda sink=sink: (
                    all(room in sink.counts for room in changed)
                    and sink.last_body.get(open_room, "").endswith(last)
                )
            )
            results[mode] = time.perf_counter() - started
        finally:
            await service.stop()
    return results


def catch_up(tmp: Path) -> dict[str, Any]:
    """The figure's numbers (`run.py` adds the target)."""
    account = _account()
    with tempfile.TemporaryDirectory(prefix="catch-up-", dir=tmp) as directory:
        # A copy: the burst of messages stays out of the kept account.
        copy = account.copy_to(Path(directory) / "account")
        server = copy.server()
        server.start(timeout=300)
        try:
            results = asyncio.run(_catch_up(server.url, copy, Path(directory)))
        finally:
            server.stop()
    return {
        "ratio": results["sliding"] / results["v3"],
        "rooms": int(results["rooms"]),
        "changed_rooms": min(CATCH_UP_ROOMS, len(account.room_ids)),
        "events": min(CATCH_UP_ROOMS, len(account.room_ids)) * CATCH_UP_PER_ROOM,
        "sliding_ms": round(results["sliding"] * 1000),
        "v3_ms": round(results["v3"] * 1000),
    }
