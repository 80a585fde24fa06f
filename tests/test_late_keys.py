"""Placeholders fill in, in place, when their key arrives late: live and
across a restart (the nio peer holds its m.room_key back, deterministically)."""

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
from tuichat.ui.widgets.timeline_view import TimelineView


def _line_of(view: TimelineView, needle: str) -> int | None:
    for number, line in enumerate(view.line_texts()):
        if needle in line:
            return number
    return None


async def test_placeholder_becomes_the_message_when_the_key_arrives(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        await peer.send_text(room_id, "an ordinary message first")
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: _line_of(view, "an ordinary message first") is not None)

        held = await peer.send_withholding_key(room_id, "the late message")
        await peer.send_text(room_id, "a message after it")  # same session: also waits

        def waiting() -> list[Any]:
            return [i for i in app.timelines[room_id] if i.kind is ItemKind.UNDECRYPTABLE]

        await wait_ui(pilot, lambda: len(waiting()) == 2)
        assert all(i.session_id == held.session_id for i in waiting())
        placeholder = _line_of(view, "Unable to decrypt: waiting for the key")
        assert placeholder is not None
        assert "Bob" in view.line_texts()[placeholder]  # sender and time stay shown

        await peer.deliver_key(held, alice.user_id, device_id)
        await wait_ui(pilot, lambda: _line_of(view, "the late message") is not None)
        assert _line_of(view, "the late message") == placeholder, "not replaced in place"
        assert _line_of(view, "a message after it") is not None
        assert not [i for i in app.timelines[room_id] if i.kind is ItemKind.UNDECRYPTABLE]
        order = [i.body for i in app.timelines[room_id] if i.kind is ItemKind.TEXT]
        assert order[-3:] == [
            "an ordinary message first",
            "the late message",
            "a message after it",
        ]


async def test_placeholder_in_a_room_not_on_screen_updates_its_unread_count(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    peer: NioPeer = await peer_factory(bob)
    quiet = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Quiet")
    other = await peer.create_room(invite=[alice.user_id], encrypted=False, name="Other")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, peer, quiet, alice.user_id)
        await join_in_ui(pilot, app, peer, other, alice.user_id)
        assert app.current_room_id == other
        held = await peer.send_withholding_key(quiet, f"hey {alice.localpart}, read this")
        await wait_ui(pilot, lambda: app.rooms.get(quiet).unread == 1)  # type: ignore[union-attr]
        assert app.rooms.get(quiet).highlight == 0  # type: ignore[union-attr]
        await peer.deliver_key(held, alice.user_id, device_id)
        # Decrypted, the message turns out to mention us: it becomes a highlight.
        await wait_ui(pilot, lambda: app.rooms.get(quiet).highlight == 1)  # type: ignore[union-attr]
        item = next(i for i in app.timelines[quiet] if i.kind is ItemKind.TEXT)
        assert item.body.endswith("read this") and item.highlight


async def test_key_that_arrives_while_offline_fills_the_placeholder_after_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        held = await peer.send_withholding_key(room_id, "worth the wait")
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: _line_of(view, "Unable to decrypt") is not None)

    await peer.deliver_key(held, alice.user_id, device_id)  # we are offline now

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        view = app.query_one(TimelineView)
        await pilot.pause()
        # From the cache: the ciphertext came back as a placeholder...
        assert app.snapshot is not None
        assert [e["type"] for e in app.snapshot.encrypted.get(room_id, [])] or any(
            i.kind is ItemKind.UNDECRYPTABLE for i in app.snapshot.timelines[room_id]
        )
        # ...and the key that came while we were away fills it in.
        await wait_ui(pilot, lambda: _line_of(view, "worth the wait") is not None)
        assert _line_of(view, "Unable to decrypt") is None
