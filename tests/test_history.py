"""Scrolling back: older encrypted history comes from /messages with a
loading marker, decrypts, and stays in order (real Synapse, nio peer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import (
    UserFactory,
    log_in,
    service_and_peer_in_room,
    sync_timeline_limit,
)
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_ui_chat import join_in_ui, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService, sync_loop
from tuichat.model.events import TimelineAppended, TimelinePrepended
from tuichat.model.items import ItemKind
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.timeline_view import HistoryState, TimelineView


async def test_scrolling_up_loads_and_decrypts_older_history(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    sent = [f"history message {n}" for n in range(150)]
    before = [f"before the gap {n}" for n in range(3)]

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(100, 30)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        # issue 25: what was shown before the gap comes back too, once.
        for body in before:
            await peer.send_text(room_id, body)
        await wait_ui(
            pilot, lambda: any(i.body == before[-1] for i in app.state.timelines[room_id])
        )

    # Sent while tuichat is closed: the next sync is limited to the newest
    # page, and the rest is a gap only /messages can fill.
    for body in sent:
        await peer.send_text(room_id, body)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(100, 30)) as pilot:
        # Every page is held until the marker has been seen at the top.
        service = await wait_ui(pilot, lambda: app.service)
        release = asyncio.Event()
        load_older = service.load_older

        async def held(*args: Any, **kwargs: Any) -> bool:
            await release.wait()
            return await load_older(*args, **kwargs)

        service.load_older = held  # type: ignore[method-assign]
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await wait_ui(pilot, lambda: any(i.body == sent[-1] for i in app.state.timelines[room_id]))
        timeline = app.state.timelines[room_id]
        assert not any(i.body == sent[0] for i in timeline)
        view = app.query_one(TimelineView)
        view.scroll_to(y=0, animate=False, immediate=True, force=True)
        await wait_ui(pilot, lambda: view.history is HistoryState.LOADING)
        view.scroll_to(y=0, animate=False, immediate=True, force=True)
        await pilot.pause()
        assert "Loading older messages" in view.render_line(0).text
        release.set()

        for _ in range(20):
            await wait_ui(pilot, lambda: view.history is not HistoryState.LOADING)
            if view.history is HistoryState.START:
                break
            view.scroll_to(y=0, animate=False, immediate=True, force=True)
            await pilot.pause()
        assert view.history is HistoryState.START
        bodies = [i.body for i in timeline if i.kind is ItemKind.TEXT and i.sender == bob.user_id]
        assert bodies == before + sent
        event_ids = [i.event_id for i in timeline]
        assert len(set(event_ids)) == len(event_ids)
        assert not [i for i in timeline if i.kind is ItemKind.UNDECRYPTABLE]
        view.scroll_home(animate=False)
        await pilot.pause()
        assert "beginning of the room" in view.render_line(0).text


async def _restart_after_a_gap(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    sink: Callable[[Any], None],
    sync_mode: str,
) -> tuple[MatrixService, str, list[str], str]:
    """Alice's service stopped after "before the gap", Bob sent ten more
    than one sync's timeline (in `sync_mode`) while she was away, and her
    service is opened again (not yet syncing) with `sink`. Returns the
    service, the room, what was sent while away, and the oldest cached
    event (the UI's oldest item)."""
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=False
    )
    await peer.send_text(room_id, "before the gap")
    await wait_until(lambda: recorder.text_from(room_id, "before the gap"))
    await service.stop()
    # The limited sync brings away[10:]; away[:10] is the gap.
    away = [f"while away {n}" for n in range(sync_timeline_limit(sync_mode) + 10)]
    for body in away:
        await peer.send_text(room_id, body)
    service = MatrixService(profile, sink, sync_timeout_ms=1000)
    await service.open()
    oldest = next(item.event_id for item in service.snapshot.timelines[room_id])
    assert oldest is not None
    return service, room_id, away, oldest


def _is_gap(event: Any, room_id: str) -> bool:
    return isinstance(event, TimelineAppended) and event.room_id == room_id and event.limited


def _pages(recorder: Recorder, room_id: str) -> list[TimelinePrepended]:
    """The answers to loads of older history, in order."""
    return [e for e in recorder.events if isinstance(e, TimelinePrepended) and e.room_id == room_id]


async def _asked_again_from_the_gap(
    service: MatrixService, recorder: Recorder, room_id: str, away: list[str]
) -> None:
    """Asked from the new timeline's oldest event: the page before the gap,
    with the messages the limited sync left out."""
    newest = [i for i in recorder.items(room_id) if i.event_id]
    assert newest[0].body == away[10]
    assert await service.load_older(room_id, newest[0].event_id) is True
    _assert_before_the_gap(_pages(recorder, room_id)[-1], away)


def _assert_before_the_gap(page: TimelinePrepended, away: list[str]) -> None:
    """The page holds what lay between the cached timeline and the gap."""
    bodies = [i.body for i in page.items if i.body.startswith(("while away", "before"))]
    assert bodies == ["before the gap", *away[:10]]
    assert page.has_more


async def test_a_history_load_that_waited_across_a_gap_is_dropped_and_asked_again(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    sync_mode: str,
) -> None:
    """A load asked for before a limited sync, which waited for the cache
    while the sync was handled, must not answer for the new timeline: it
    would read the old gap's token (the sync's write is still queued) and
    report the room's beginning above a gap, or splice old events on."""
    recorder = Recorder()
    service, room_id, away, oldest = await _restart_after_a_gap(
        synapse, new_user, profile, peer_factory, start_service, recorder, sync_mode
    )
    flushed = service.cache.flushed

    async def flushed_across_the_gap() -> None:
        await flushed()
        await wait_until(lambda: any(_is_gap(e, room_id) for e in recorder.events))

    service.cache.flushed = flushed_across_the_gap  # type: ignore[method-assign]
    load = asyncio.create_task(service.load_older(room_id, oldest))
    await asyncio.sleep(0)  # the load counts the gaps, then waits
    await service.start()
    try:
        assert await asyncio.wait_for(load, 20) is True
        assert [(a.items, a.has_more) for a in _pages(recorder, room_id)] == [([], True)]
        service.cache.flushed = flushed  # type: ignore[method-assign]
        await _asked_again_from_the_gap(service, recorder, room_id, away)
    finally:
        await service.stop()


async def test_a_history_load_asked_while_a_gap_is_being_handled_reads_the_new_timeline(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
    sync_mode: str,
) -> None:
    """The UI may ask for older history right after it showed a limited
    sync's newest events and before that sync's writes are queued (a large
    sync yields between rooms so frames are drawn). The load must read the
    cache as that sync leaves it, not the old gap's token: that page would
    end at the room's beginning and the UI would say so above the gap."""
    monkeypatch.setattr(sync_loop, "SLICE_SECONDS", 0.0)  # every room its own slice
    recorder = Recorder()
    loads: list[asyncio.Task[bool]] = []

    def sink(event: Any) -> None:
        recorder(event)
        if isinstance(event, TimelineAppended) and event.limited:
            loads.append(asyncio.create_task(service.load_older(event.room_id, oldest)))

    service, room_id, away, oldest = await _restart_after_a_gap(
        synapse, new_user, profile, peer_factory, start_service, sink, sync_mode
    )
    await service.start()
    try:
        await wait_until(lambda: loads)
        assert await asyncio.wait_for(loads[0], 20) is True
        answers = _pages(recorder, room_id)
        assert len(answers) == 1
        _assert_before_the_gap(answers[0], away)
    finally:
        await service.stop()


async def test_older_history_read_before_the_crypto_store_opens_is_decrypted_when_it_does(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    """The App hands the service over before its store is open (the first
    frame came from the cache): a page of older cached history asked for
    then comes as "decrypting…" placeholders, and each must end, decrypted
    once the store opens."""
    from tuichat.matrix.storage.snapshot import EVENTS_PER_ROOM
    from tuichat.model.events import ItemsReplaced

    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=True
    )
    sent = [f"older message {n}" for n in range(EVENTS_PER_ROOM + 10)]
    for body in sent:
        await peer.send_text(room_id, body)
    await wait_until(lambda: recorder.text_from(room_id, sent[-1]), 60)
    await service.stop()

    recorder = Recorder()
    service = MatrixService(profile, recorder, sync_timeout_ms=1000)
    try:
        oldest = service.snapshot.timelines[room_id][0].event_id
        assert oldest is not None
        await service.load_older(room_id, oldest)
        page = _pages(recorder, room_id)[-1]
        waiting = {i.event_id for i in page.items if i.utd_reason == "decrypting"}
        assert waiting, "the page should hold encrypted events read before the store opened"

        await service.open()
        replaced = {
            i.event_id: i
            for e in recorder.events
            if isinstance(e, ItemsReplaced) and e.room_id == room_id
            for i in e.items
        }
        assert waiting <= set(replaced)
        assert all(replaced[e].utd_reason is None for e in waiting)
        assert {replaced[e].body for e in waiting} <= set(sent)
    finally:
        await service.stop()
