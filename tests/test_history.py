"""Scrolling back: older encrypted history comes from /messages with a
loading marker, decrypts, and stays in order (real Synapse, nio peer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in, service_and_peer_in_room
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_ui_chat import join_in_ui, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.events import TimelineAppended, TimelinePrepended
from tuichat.matrix.service import MatrixService
from tuichat.matrix.session import Profile
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

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(100, 30)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)

    # Sent while tuichat is closed: the next sync is limited to the newest
    # page, and the rest is a gap only /messages can fill.
    for body in sent:
        await peer.send_text(room_id, body)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_ui(pilot, lambda: app.current_room_id == room_id)
        await wait_ui(pilot, lambda: any(i.body == sent[-1] for i in app.timelines[room_id]))
        timeline = app.timelines[room_id]
        assert not any(i.body == sent[0] for i in timeline)
        view = app.query_one(TimelineView)
        markers: list[str] = []
        set_history = view.set_history

        def recording(state: HistoryState) -> None:
            set_history(state)
            markers.append(view.render_line(0).text)

        view.set_history = recording  # type: ignore[method-assign]
        for _ in range(20):
            view.scroll_to(y=0, animate=False, immediate=True, force=True)
            await pilot.pause()
            await wait_ui(pilot, lambda: view.history is not HistoryState.LOADING)
            if view.history is HistoryState.START:
                break
        assert any("Loading older messages" in m for m in markers)
        assert view.history is HistoryState.START
        bodies = [i.body for i in timeline if i.kind is ItemKind.TEXT and i.sender == bob.user_id]
        assert bodies == sent
        assert not [i for i in timeline if i.kind is ItemKind.UNDECRYPTABLE]
        view.scroll_home(animate=False)
        await pilot.pause()
        assert "beginning of the room" in view.render_line(0).text


async def test_a_history_load_that_waited_across_a_gap_is_dropped_and_asked_again(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    """A load asked for before a limited sync, which waited for the cache
    while the sync was handled, must not answer for the new timeline: it
    would read the old gap's token (the sync's write is still queued) and
    report the room's beginning above a gap, or splice old events on."""
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=False
    )
    await peer.send_text(room_id, "before the gap")
    await wait_until(lambda: recorder.text_from(room_id, "before the gap"))
    await service.stop()
    away = [f"while away {n}" for n in range(60)]  # more than one sync's timeline
    for body in away:
        await peer.send_text(room_id, body)

    second = Recorder()
    service = MatrixService(profile, second, sync_timeout_ms=1000)
    await service.open()
    oldest = next(item.event_id for item in service.snapshot.timelines[room_id])

    def gap_handled() -> bool:
        return any(
            isinstance(e, TimelineAppended) and e.room_id == room_id and e.limited
            for e in second.events
        )

    flushed = service.cache.flushed

    async def flushed_across_the_gap() -> None:
        await flushed()
        await wait_until(gap_handled)

    service.cache.flushed = flushed_across_the_gap  # type: ignore[method-assign]
    load = asyncio.create_task(service.load_older(room_id, oldest))
    await asyncio.sleep(0)  # the load counts the gaps, then waits
    await service.start()
    try:
        assert await asyncio.wait_for(load, 20) is True
        answers = [e for e in second.events if isinstance(e, TimelinePrepended)]
        assert [(a.items, a.has_more) for a in answers] == [([], True)]

        # Asked again, from the new timeline's oldest event: the page before
        # the gap, with the messages the limited sync left out.
        service.cache.flushed = flushed  # type: ignore[method-assign]
        newest = [i for i in second.items(room_id) if i.event_id]
        assert newest[0].body == away[10]
        assert await service.load_older(room_id, newest[0].event_id) is True
        page = [e for e in second.events if isinstance(e, TimelinePrepended)][-1]
        bodies = [i.body for i in page.items if i.body.startswith(("while away", "before"))]
        assert bodies == ["before the gap", *away[:10]]
    finally:
        await service.stop()
