"""A sync that fails for a reason no one foresaw is reported and tried
again, never the silent end of syncing (real Synapse, nio peer)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.connection import ConnectionState
from tuichat.ui.app import TuichatApp


async def test_a_crypto_store_locked_by_another_program_does_not_end_syncing(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another program holds the crypto store locked (a backup, an SQLite
    browser): storing the new room key fails. Syncing used to end there,
    unseen, with "synced" on screen; now the failure is logged and shown,
    and the sync tried again until it succeeds."""
    caplog.set_level(logging.ERROR, logger="tuichat")
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    session = profile.load_session()
    assert session is not None
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        store = profile.store_dir / f"{session.user_id}_{session.device_id}.db"
        other = sqlite3.connect(store, isolation_level=None, timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        try:
            locked = await peer.send_text(room_id, "while the store is locked")
            await wait_ui(pilot, lambda: app.state.connection is ConnectionState.RECONNECTING, 60)
            assert "database is locked" in app.state.connection_detail
            assert "database is locked" in str(app.main.status.render())
        finally:
            other.execute("COMMIT")
            other.close()
        # The same sync is tried again, and syncing goes on. (The room key
        # that came in the failed sync was used up by then: the message may
        # wait for its key, but it is there, with that reason.)
        timeline = app.state.timelines[room_id]
        await wait_ui(pilot, lambda: timeline.get(locked) is not None, 60)
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        assert timeline.get(locked).utd_reason != "decrypting"  # type: ignore[union-attr]
        after = await peer.send_text(room_id, "and after")
        await wait_ui(pilot, lambda: timeline.get(after) is not None, 30)
    failures = [r for r in caplog.records if r.getMessage() == "handling a sync failed"]
    assert failures and failures[0].exc_info is not None
