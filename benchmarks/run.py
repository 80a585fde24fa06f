"""`make bench`: every figure as a ratio against a baseline measured in the
same run, its target, and the numbers behind it; written to
benchmarks/results.json. Each figure makes its own synthetic data."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import vodozemac

from benchmarks.offline import offline_service
from benchmarks.search_figure import search_latency
from benchmarks.synthetic import (
    PEER_USER,
    PeerDevice,
    fill_cache,
    make_profile,
    room_id,
    sync_response,
)
from tuichat.matrix.transport import fastjson

RESULTS = Path(__file__).with_name("results.json")
Figure = dict[str, Any]


def figure(ratio: float, target: float, at_most: bool, **numbers: Any) -> Figure:
    ok = ratio <= target if at_most else ratio >= target
    return {"ratio": round(ratio, 3), "target": target, "ok": ok, **numbers}


class RawDecrypt:
    """The baseline: vodozemac alone, `from_base64` + `decrypt`, in order."""

    def __init__(self, keys: dict[str, Any]) -> None:
        self.sessions = {room: vodozemac.InboundGroupSession(key) for room, key in keys.items()}

    def run(self, ciphertexts: list[tuple[str, str]]) -> float:
        sessions = self.sessions
        started = time.perf_counter()
        for room, ciphertext in ciphertexts:
            sessions[room].decrypt(vodozemac.MegolmMessage.from_base64(ciphertext))
        return time.perf_counter() - started


def throughput_figure(raw: float, pipeline: float, events: int) -> Figure:
    """A decrypt figure: raw vodozemac time over pipeline time (≥ 0.5)."""
    return figure(
        raw / pipeline,
        0.5,
        False,
        events=events,
        raw_us_per_event=round(raw / events * 1e6, 1),
        pipeline_us_per_event=round(pipeline / events * 1e6, 1),
    )


# Baseline and measured work alternate batch by batch, so both see the same
# machine (these machines are noisy: a slow second here and there would
# otherwise fall on one side only).


# -- 1. decrypt_pipeline -------------------------------------------------------------


async def decrypt_pipeline(tmp: Path) -> Figure:
    rooms = [room_id(n) for n in range(10)]
    peer = PeerDevice()
    service, sink = await offline_service(tmp / "decrypt", rooms, peer)
    keys = {room: peer.outbound(room).session_key for room in rooms}
    batches, ciphertexts, number = [], [], 0
    for batch in range(40):  # 40 syncs x 10 rooms x 50 events
        per_room, batch_ciphertexts = {}, []
        for room in rooms:
            events = [peer.encrypt(room, number + n) for n in range(50)]
            number += 50
            per_room[room] = events
            batch_ciphertexts += [(room, e["content"]["ciphertext"]) for e in events]
        ciphertexts += batch_ciphertexts
        body = json.dumps(sync_response(per_room, f"s{batch}")).encode()
        batches.append((batch_ciphertexts, body))
    baseline = RawDecrypt(keys)
    gc.collect()
    raw = pipeline = 0.0
    for batch_ciphertexts, body in batches:
        raw += baseline.run(batch_ciphertexts)
        started = time.perf_counter()
        await service.handle_sync(fastjson.loads(body))
        pipeline += time.perf_counter() - started
    started = time.perf_counter()
    await service.cache.flushed()  # the cache writes overlap; their tail counts
    pipeline += time.perf_counter() - started
    items = [i for e in sink.events for i in getattr(e, "items", ())]
    decrypted = sum(1 for i in items if i.trust == "verified" and i.body)
    await service.stop()
    assert decrypted == len(ciphertexts), (decrypted, len(ciphertexts))
    return throughput_figure(raw, pipeline, len(ciphertexts))


# -- 2. history_decrypt ----------------------------------------------------------------


async def history_decrypt(tmp: Path) -> Figure:
    room = room_id(0)
    peer = PeerDevice()
    service, sink = await offline_service(tmp / "history", [room], peer)
    key = peer.outbound(room).session_key
    events = [peer.encrypt(room, n) for n in range(5000)]
    ciphertexts = [(room, e["content"]["ciphertext"]) for e in events]
    pages = []
    for end in range(len(events), 0, -50):  # newest page first, newest event first
        chunk = list(reversed(events[end - 50 : end]))
        page = {"chunk": chunk, "start": f"t{end}", "end": f"t{end - 50}"}
        pages.append((f"t{end}", json.dumps(page)))
    # The room's gap token, as a limited sync would have left it.
    service.cache._db.execute(
        "UPDATE rooms SET prev_batch = ? WHERE room_id = ?", (f"t{len(events)}", room)
    )
    # The baseline decrypts the same events in order, page by page.
    in_order = [ciphertexts[end - 50 : end] for end in range(50, len(events) + 1, 50)]
    baseline = RawDecrypt({room: key})
    gc.collect()
    raw = pipeline = 0.0
    for raw_page, (token, page) in zip(in_order, pages, strict=True):
        raw += baseline.run(raw_page)
        started = time.perf_counter()
        service.handle_history_page(room, fastjson.loads(page.encode()), token)
        pipeline += time.perf_counter() - started
    started = time.perf_counter()
    await service.cache.flushed()
    pipeline += time.perf_counter() - started
    items = [i for e in sink.events for i in getattr(e, "items", ())]
    cached = service.cache.event_count()
    await service.stop()
    assert sum(1 for i in items if i.body) == len(events)
    assert cached == len(events), cached  # the pages were written, not skipped
    return throughput_figure(raw, pipeline, len(events))


# -- 3. cold_start and 7. memory (separate processes) -----------------------------------


def _child_environment(tmp: Path) -> dict[str, str]:
    """As an installed program starts: with compiled bytecode to load. An
    environment that forbids writing it (PYTHONDONTWRITEBYTECODE, as some
    shells and CI images set) would have tuichat's own modules compiled from
    source at every start while the bare app's library came compiled by pip;
    the children keep their caches under `tmp` instead, after a warm-up."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return environment


def _child(*args: str, environment: dict[str, str] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        env=environment,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["elapsed"] = result["painted"] - started
    return result


def cold_start(tmp: Path) -> Figure:
    profile = make_profile(tmp / "cold")
    fill_cache(profile, rooms=1000, events_per_room=100, encrypted_share=0.2)
    environment = _child_environment(tmp)
    bare_runs, app_runs = [], []
    for run in range(8):  # alternating, medians, after one warm-up each
        bare = _child("start", "bare", environment=environment)["elapsed"]
        app = _child("start", "tuichat", str(profile.root), environment=environment)["elapsed"]
        if run:
            bare_runs.append(bare)
            app_runs.append(app)
    bare, app = statistics.median(bare_runs), statistics.median(app_runs)
    return figure(
        app / bare,
        1.3,
        True,
        rooms=1000,
        cached_events=100_000,
        bare_ms=round(bare * 1000, 1),
        tuichat_ms=round(app * 1000, 1),
    )


MEMORY_ROOMS, MEMORY_EVENTS = 1000, 50
MEMORY_TARGET_BYTES = 300  # per loaded event


def memory(tmp: Path) -> Figure:
    """What a loaded event costs the running app: its RSS with 1,000 rooms x
    50 events loaded minus the same app on a profile with no rooms, per
    event (the room states, timelines and room list rows count with them).
    The ratio is that figure over its 300-byte budget; the ratio against a
    bare Textual app is kept as information (most of it is the libraries
    the project must import)."""
    full = make_profile(tmp / "memory")
    fill_cache(full, rooms=MEMORY_ROOMS, events_per_room=MEMORY_EVENTS, encrypted_share=0.0)
    empty = make_profile(tmp / "empty")
    fill_cache(empty, rooms=0, events_per_room=0)
    environment = _child_environment(tmp)
    bares, apps, empties = [], [], []
    for run in range(4):  # the first runs compile and cache the bytecode
        bare = _child("memory", "bare", environment=environment)
        app = _child("memory", "tuichat", str(full.root), environment=environment)
        nothing = _child("memory", "tuichat", str(empty.root), environment=environment)
        if run:
            bares.append(bare["rss_kb"])
            apps.append(app["rss_kb"])
            empties.append(nothing["rss_kb"])
    loaded = int(app.get("items", 0))
    assert loaded == MEMORY_ROOMS * MEMORY_EVENTS, loaded
    app_kb, empty_kb, bare_kb = (statistics.median(runs) for runs in (apps, empties, bares))
    per_event = (app_kb - empty_kb) * 1024 / loaded
    widget = widget_bytes_per_event()
    result = figure(
        per_event / MEMORY_TARGET_BYTES,
        1.0,
        True,
        rss_bytes_per_event=round(per_event, 1),
        target_bytes_per_event=MEMORY_TARGET_BYTES,
        rooms=MEMORY_ROOMS,
        items_loaded=loaded,
        loaded_rss_mb=round((app_kb - empty_kb) / 1024, 1),
        no_rooms_rss_mb=round(empty_kb / 1024, 1),
        tuichat_rss_mb=round(app_kb / 1024, 1),
        bare_rss_mb=round(bare_kb / 1024, 1),
        bare_app_ratio=round(app_kb / bare_kb, 2),
        widget_bytes_per_event=round(widget, 1),
        widget_target_bytes=100,
    )
    result["ok"] = result["ok"] and widget <= 100
    return result


# -- timeline figures (in-process, headless Textual) ---------------------------------------


def _items(count: int, prefix: str = "") -> Any:
    from tuichat.model.items import ItemKind, TimelineItem
    from tuichat.model.timeline import Timeline

    timeline = Timeline("!bench")
    timeline.append(
        TimelineItem(
            key=f"${prefix}{n}",
            event_id=f"${prefix}{n}",
            sender=PEER_USER,
            sender_name="Ada",
            timestamp=1_700_000_000_000 + n,
            kind=ItemKind.TEXT,
            body=f"message {n}: " + "lorem ipsum " * (n % 7),
        )
        for n in range(count)
    )
    return timeline


def _frame(view: Any) -> float:
    """Time to draw the view's visible lines once (what a frame costs it)."""
    from textual.geometry import Region

    started = time.perf_counter()
    view.render_lines(Region(0, 0, view.size.width, view.size.height))
    return time.perf_counter() - started


def widget_bytes_per_event() -> float:
    from textual.app import App, ComposeResult

    from tuichat.ui.widgets.timeline_view import TimelineView

    timeline = _items(100_000)
    measured: list[float] = []

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield TimelineView()

    async def run() -> None:
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.query_one(TimelineView)
            await pilot.pause()
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            view.set_items(timeline)
            _frame(view)
            after = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            measured.append((after - before) / len(timeline))

    asyncio.run(run())
    return measured[0]


async def room_switch(tmp: Path) -> Figure:
    from textual.app import App

    from tuichat.ui.app import TuichatApp
    from tuichat.ui.widgets.timeline_view import TimelineView

    profile = make_profile(tmp / "switch")
    fill_cache(profile, rooms=1, events_per_room=100_000)  # room 0: the big one
    small = make_profile(tmp / "small")
    fill_cache(small, rooms=2, events_per_room=100)
    # The small room goes into the same profile under another id.
    from benchmarks.synthetic import plain_event, state_events
    from tuichat.matrix.storage.cache import Cache, RoomWrite, SyncWrite

    cache = Cache(profile.cache_file)
    small_room = "!small:bench.test"
    cache.commit_sync(
        SyncWrite(
            "s2",
            rooms={
                small_room: RoomWrite(
                    "join",
                    state=state_events(small_room),
                    events=[plain_event(small_room, n) for n in range(100)],
                )
            },
        )
    )
    cache.close()
    app: App[Any] = TuichatApp(profile, connect=False)
    switches, pages = [], []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        view = app.query_one(TimelineView)
        big = room_id(0)
        for _ in range(7):
            app.chat.switch_room(small_room)  # type: ignore[attr-defined]
            await pilot.pause()
            for _ in range(3):
                view.scroll_page_up(animate=False)
                pages.append(_frame(view))
            app.reader.snapshot.timelines.pop(big, None)  # type: ignore[attr-defined]
            app.state.timelines.pop(big, None)  # type: ignore[attr-defined]
            gc.collect()
            started = time.perf_counter()
            app.chat.switch_room(big)  # type: ignore[attr-defined]
            view.render_lines(view.region.reset_offset)
            switches.append(time.perf_counter() - started)
            await pilot.pause()
            shown = [view.render_line(y).text for y in range(view.size.height)]
            assert any("#99999" in line for line in shown), shown[-3:]
    switch, page = statistics.median(switches), statistics.median(pages)
    result = figure(
        switch / page,
        3.0,
        True,
        cached_events=100_000,
        switch_ms=round(switch * 1000, 2),
        page_scroll_ms=round(page * 1000, 2),
        absolute_target_ms=33,
    )
    result["ok"] = result["ok"] and switch <= 0.033
    return result


async def scroll_depth(tmp: Path) -> Figure:
    from textual.app import App, ComposeResult

    from tuichat.ui.widgets.timeline_view import TimelineView

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield TimelineView()

    timings: dict[int, float] = {}
    for size in (1000, 100_000):
        app = Host()
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.query_one(TimelineView)
            view.set_items(_items(size))
            await pilot.pause()
            samples = []
            for _ in range(300):
                started = time.perf_counter()
                view.scroll_to(y=view.scroll_y - 1, animate=False, immediate=True)
                view.render_lines(view.region.reset_offset)
                samples.append(time.perf_counter() - started)
            timings[size] = statistics.median(samples)
    return figure(
        timings[100_000] / timings[1000],
        1.2,
        True,
        frame_ms_1k=round(timings[1000] * 1000, 3),
        frame_ms_100k=round(timings[100_000] * 1000, 3),
    )


async def frame_gap(tmp: Path) -> Figure:
    """The median, over three runs, of the worst gap of each run."""
    worst = [await _worst_frame_gap(tmp / f"run{n}") for n in range(3)]
    median = statistics.median(worst)
    return figure(
        median / (1 / 60),
        2.0,
        True,
        events=10_000,
        worst_gap_ms=round(median * 1000, 1),
        runs_ms=[round(w * 1000, 1) for w in worst],
        budget_ms=16.7,
    )


async def _worst_frame_gap(tmp: Path) -> float:
    from textual.app import App

    from tuichat.ui.app import TuichatApp

    rooms = [room_id(n) for n in range(200)]
    peer = PeerDevice()
    service, _sink = await offline_service(tmp / "gap", rooms, peer)
    per_room = {room: [peer.encrypt(room, n) for n in range(50)] for room in rooms}
    body = json.dumps(sync_response(per_room, "s_big")).encode()
    profile_app = make_profile(tmp / "gap-ui")
    fill_cache(profile_app, rooms=0, events_per_room=0)
    app: App[Any] = TuichatApp(profile_app, connect=False)
    gaps: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        service._sink = app.sink  # type: ignore[attr-defined]
        gc.collect()
        gc.freeze()
        done = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not done:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        await service.handle_sync(fastjson.loads(body))
        for _ in range(50):
            await pilot.pause()
        done = True
        await task
        gc.unfreeze()
    await service.stop()
    return max(gaps)


# -- 8. key_share --------------------------------------------------------------------------


KEY_SHARE_ROUNDS = 3


def _claimable_devices(
    olm: Any, round_number: int
) -> tuple[list[tuple[Any, str]], dict[str, Any], list[str]]:
    """200 peer devices (20 users) known to `olm`, each with one signed
    one-time key: their accounts, the claim response's body, the members."""
    from nio.crypto.device import OlmDevice

    accounts, claimed, members = [], {}, []  # type: ignore[var-annotated]
    for number in range(200):
        user = f"@peer{round_number}x{number // 10}:bench.test"
        device_id = f"PEER{round_number}X{number}"
        account = vodozemac.Account()
        account.generate_one_time_keys(1)
        otk = next(iter(account.one_time_keys.values())).to_base64()
        key_object: dict[str, Any] = {"key": otk}
        canonical = json.dumps(key_object, sort_keys=True, separators=(",", ":"))
        key_object["signatures"] = {
            user: {f"ed25519:{device_id}": account.sign(canonical.encode()).to_base64()}
        }
        claimed.setdefault(user, {})[device_id] = {f"signed_curve25519:{number}": key_object}
        olm.device_store.add(
            OlmDevice(
                user,
                device_id,
                {
                    "ed25519": account.ed25519_key.to_base64(),
                    "curve25519": account.curve25519_key.to_base64(),
                },
            )
        )
        accounts.append((account, otk))
        if user not in members:
            members.append(user)
    return accounts, {"one_time_keys": claimed, "failures": {}}, members


async def key_share(tmp: Path) -> Figure:
    from nio.responses import KeysClaimResponse

    from tuichat.matrix.crypto.group_sessions import RotationPolicy

    service, _sink = await offline_service(
        tmp / "share", [room_id(n) for n in range(KEY_SHARE_ROUNDS)], PeerDevice()
    )
    olm = service.client.tuichat_olm  # type: ignore[union-attr]
    client = service.client
    assert client is not None
    claim: list[Any] = []

    async def keys_claim(users: Any) -> Any:
        await client.receive_response(claim[0])
        return claim[0]

    async def send_to_device(event_type: str, messages: Any) -> bool:
        return True

    client.keys_claim = keys_claim  # type: ignore[method-assign]
    service.crypto.groups.send_to_device = send_to_device  # type: ignore[union-attr,method-assign]
    ours = vodozemac.Account()
    megolm = vodozemac.GroupSession()
    # The plaintext every device gets, in the shape the spec gives it.
    payload = json.dumps(
        {
            "sender": "@bench:bench.test",
            "sender_device": "BENCH",
            "keys": {"ed25519": ours.ed25519_key.to_base64()},
            "recipient": "@peer0x0:bench.test",
            "recipient_keys": {"ed25519": ours.ed25519_key.to_base64()},
            "type": "m.room_key",
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "room_id": room_id(0),
                "session_id": megolm.session_id,
                "session_key": megolm.session_key.to_base64(),
            },
        },
        separators=(",", ":"),
    )
    raws, shares = [], []
    # Rounds on fresh devices and rooms, the baseline and the share in turn;
    # the best of each (a noisy machine only ever adds time).
    for round_number in range(KEY_SHARE_ROUNDS):
        accounts, body, members = _claimable_devices(olm, round_number)
        claim[:] = [KeysClaimResponse.from_dict(body)]
        # Raw: one outbound Olm session and one encryption per device.
        gc.collect()
        started = time.perf_counter()
        for account, otk in accounts:
            session = ours.create_outbound_session(
                account.curve25519_key, vodozemac.Curve25519PublicKey.from_base64(otk)
            )
            session.encrypt(payload.encode())
        raws.append(time.perf_counter() - started)
        gc.collect()
        started = time.perf_counter()
        shared = await service.crypto.groups.ensure_shared(  # type: ignore[union-attr]
            room_id(round_number), members, RotationPolicy(), lambda device: True
        )
        shares.append(time.perf_counter() - started)
        assert len(shared.users_shared_with) == 200, len(shared.users_shared_with)
    await service.stop()
    raw, share = min(raws), min(shares)
    return figure(
        share / raw,
        1.5,
        True,
        devices=200,
        rounds=KEY_SHARE_ROUNDS,
        raw_ms=round(raw * 1000, 1),
        share_ms=round(share * 1000, 1),
    )


# -- first_login and catch_up: a real Synapse, sliding sync over /v3 (issue 25) ---------


def first_login(tmp: Path) -> Figure:
    from benchmarks import network

    numbers = network.first_login(tmp)
    return figure(numbers.pop("ratio"), 0.2, True, **numbers)


def catch_up(tmp: Path) -> Figure:
    from benchmarks import network

    numbers = network.catch_up(tmp)
    return figure(numbers.pop("ratio"), 0.5, True, **numbers)


FIGURES: list[tuple[str, Callable[[Path], Any]]] = [
    ("decrypt_pipeline", decrypt_pipeline),
    ("history_decrypt", history_decrypt),
    ("cold_start", cold_start),
    ("room_switch", room_switch),
    ("scroll_depth", scroll_depth),
    ("frame_gap", frame_gap),
    ("memory", memory),
    ("key_share", key_share),
    ("search", search_latency),  # issue 24
    ("first_login", first_login),  # issue 25
    ("catch_up", catch_up),  # issue 25
]


def main(argv: list[str]) -> int:
    wanted = set(argv) or {name for name, _ in FIGURES}
    results: dict[str, Figure] = {}
    if RESULTS.exists() and set(argv):
        results = json.loads(RESULTS.read_text())
    with tempfile.TemporaryDirectory(prefix="tuichat-bench-") as tmp:
        for name, run in FIGURES:
            if name not in wanted:
                continue
            directory = Path(tmp) / name
            directory.mkdir()
            started = time.perf_counter()
            outcome = run(directory)
            if asyncio.iscoroutine(outcome):
                outcome = asyncio.run(outcome)
            outcome["seconds"] = round(time.perf_counter() - started, 1)
            results[name] = outcome
            relation = "<=" if name not in ("decrypt_pipeline", "history_decrypt") else ">="
            numbers = ", ".join(
                f"{k}={v}" for k, v in outcome.items() if k not in ("ratio", "target", "ok")
            )
            mark = "ok  " if outcome["ok"] else "FAIL"
            print(
                f"{mark} {name:17} {outcome['ratio']:7.3f} (target {relation} "
                f"{outcome['target']})  {numbers}",
                flush=True,
            )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
