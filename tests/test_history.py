"""Scrolling back: older encrypted history comes from /messages with a
loading marker, decrypts, and stays in order (real Synapse, nio peer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, wait_ui
from tuichat.demo.synapse import LocalSynapse
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
