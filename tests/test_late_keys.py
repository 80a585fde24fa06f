"""Placeholders fill in, in place, when their key arrives late: live and
across a restart (the nio peer holds its m.room_key back, deterministically)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
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
            return [i for i in app.state.timelines[room_id] if i.kind is ItemKind.UNDECRYPTABLE]

        await wait_ui(pilot, lambda: len(waiting()) == 2)
        assert all(i.session_id == held.session_id for i in waiting())
        placeholder = _line_of(view, "Unable to decrypt: waiting for the key")
        assert placeholder is not None
        assert "Bob" in view.line_texts()[placeholder]  # sender and time stay shown

        await peer.deliver_key(held, alice.user_id, device_id)
        await wait_ui(pilot, lambda: _line_of(view, "the late message") is not None)
        assert _line_of(view, "the late message") == placeholder, "not replaced in place"
        assert _line_of(view, "a message after it") is not None
        assert not [i for i in app.state.timelines[room_id] if i.kind is ItemKind.UNDECRYPTABLE]
        order = [i.body for i in app.state.timelines[room_id] if i.kind is ItemKind.TEXT]
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
        assert app.state.current_room_id == other
        held = await peer.send_withholding_key(quiet, f"hey {alice.localpart}, read this")
        await wait_ui(pilot, lambda: app.state.rooms.get(quiet).unread == 1)  # type: ignore[union-attr]
        assert app.state.rooms.get(quiet).highlight == 0  # type: ignore[union-attr]
        await peer.deliver_key(held, alice.user_id, device_id)
        # Decrypted, the message turns out to mention us: it becomes a highlight.
        await wait_ui(pilot, lambda: app.state.rooms.get(quiet).highlight == 1)  # type: ignore[union-attr]
        item = next(i for i in app.state.timelines[quiet] if i.kind is ItemKind.TEXT)
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
        assert app.reader.snapshot is not None
        assert [e["type"] for e in app.reader.snapshot.encrypted.get(room_id, [])] or any(
            i.kind is ItemKind.UNDECRYPTABLE for i in app.reader.snapshot.timelines[room_id]
        )
        # ...and the key that came while we were away fills it in.
        await wait_ui(pilot, lambda: _line_of(view, "worth the wait") is not None)
        assert _line_of(view, "Unable to decrypt") is None


def _event_ids(app: TuichatApp, room_id: str) -> list[str]:
    """The events a room's timeline shows (local notices and echoes aside)."""
    return [
        i.event_id
        for i in app.state.timelines.get(room_id, ())
        if i.event_id is not None and not i.key.startswith("notice:")
    ]


def _decrypting(app: TuichatApp, room_id: str) -> list[Any]:
    return [i for i in app.state.timelines.get(room_id, ()) if i.utd_reason == "decrypting"]


@requires_js_peer
async def test_in_room_verification_leaves_no_placeholders_after_a_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
) -> None:
    """The steps of an emoji verification in an encrypted DM are encrypted
    room events that are not shown. After a restart they come back from the
    cache as ciphertext: they must stay hidden (on the first frame, from the
    cache alone, and once decrypted), and no "decrypting…" may stay."""
    from tuichat.model.verification import Phase
    from tuichat.ui.screens.verification import VerificationDialog

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    await js.bootstrap_recovery()

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        service = app.service
        assert service is not None
        await service.setup_recovery(password=alice.password)
        room_id = await service.create_dm([bob.user_id])
        assert room_id is not None
        await js.join(room_id)
        await wait_ui(
            pilot,
            lambda: (
                app.state.current_room_id == room_id
                and service.states[room_id].membership_of(bob.user_id) == "join"
            ),
            30,
        )
        await type_text(pilot, "hi bob")
        await js.wait_for_message(room_id, "hi bob")

        txn = await js.request_verification_dm(alice.user_id, room_id)
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, VerificationDialog) and app.screen, 30
        )
        # The dialog may be on the stack a moment before its widgets exist.
        await wait_ui(
            pilot,
            lambda: any("wants to verify" in str(w.render()) for w in dialog.query("#state")),
        )
        await pilot.click("#accept")
        await js.start_sas(txn)
        await js.wait_sas(txn)
        await wait_ui(pilot, lambda: dialog.view.phase is Phase.SHOW_SAS, 30)
        await js.confirm_sas(txn)
        await pilot.click("#match")
        await wait_ui(pilot, lambda: dialog.view.phase is Phase.DONE, 30)
        await js.verification_state(txn, wait_for="done")
        await pilot.click("#close")
        await type_text(pilot, "verified now")
        await js.wait_for_message(room_id, "verified now")
        await wait_ui(
            pilot, lambda: "verified now" in [i.body for i in app.state.timelines[room_id]]
        )
        await pilot.pause(1.0)  # the last sync's events reach the cache
        shown_before = _event_ids(app, room_id)
        assert not _decrypting(app, room_id)
        assert not any("Unable to decrypt" in line for line in app.main.timeline.line_texts())

    # The first frame, from the cache alone: what was hidden stays hidden.
    app = TuichatApp(profile, connect=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await pilot.pause()
        assert set(_event_ids(app, room_id)) <= set(shown_before)

    # Connected: every placeholder ends, as what was shown before.
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        await wait_ui(pilot, lambda: not _decrypting(app, room_id), 20)
        assert _event_ids(app, room_id) == shown_before
        assert not any("Unable to decrypt" in line for line in app.main.timeline.line_texts())


async def test_placeholders_that_decrypt_to_events_not_shown_go_live_and_after_a_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """An encrypted event of a type no timeline shows (and no relation in
    the clear to tell) can only be hidden once decrypted: its placeholder,
    live while the key is late or from the cache after a restart, must then
    go, never stay "Unable to decrypt" or "decrypting…"."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)
    # Any other type now shows (its body, or a line naming it): in-room
    # verification steps are what a timeline still never shows by itself.
    hidden_type = "m.key.verification.not_shown"

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        view = app.query_one(TimelineView)
        live_hidden = await peer.send_event(room_id, hidden_type, {"body": "not shown"})
        await peer.send_text(room_id, "shown first")
        await wait_ui(pilot, lambda: _line_of(view, "shown first") is not None)
        assert live_hidden not in _event_ids(app, room_id)

        held = await peer.send_withholding_key(room_id, "the late message")
        late_hidden = await peer.send_event(room_id, hidden_type, {"body": "not shown either"})
        await wait_ui(pilot, lambda: late_hidden in _event_ids(app, room_id))
        assert _line_of(view, "Unable to decrypt: waiting for the key") is not None

        await peer.deliver_key(held, alice.user_id, device_id)
        await wait_ui(pilot, lambda: _line_of(view, "the late message") is not None)
        await wait_ui(pilot, lambda: late_hidden not in _event_ids(app, room_id), 5)
        assert _line_of(view, "Unable to decrypt") is None
        await pilot.pause(1.0)  # the last sync's events reach the cache
        shown_before = _event_ids(app, room_id)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        await wait_ui(pilot, lambda: not _decrypting(app, room_id), 20)
        assert _event_ids(app, room_id) == shown_before
        assert _line_of(view, "the late message") is not None
        assert _line_of(view, "Unable to decrypt") is None


async def test_a_reaction_taken_back_stays_hidden_after_a_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """Reacting and taking it back leaves the message as it was. The cache
    then keeps the reaction as the server serves it, redacted (no
    ciphertext): after a restart it must not come back as "message
    deleted", a line that was never there."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True)

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        view = app.query_one(TimelineView)
        target = await peer.send_text(room_id, "react to me")
        await wait_ui(pilot, lambda: _line_of(view, "react to me") is not None)
        service = app.service
        assert service is not None
        timeline = app.state.timelines[room_id]
        service.react(room_id, target, "👍")
        await wait_ui(pilot, lambda: timeline.own_reaction(target, "👍") is not None)
        reaction = timeline.own_reaction(target, "👍")
        assert reaction is not None
        assert await service.redact(room_id, reaction)
        await wait_ui(pilot, lambda: not timeline.get(target).reactions)  # type: ignore[union-attr]
        await peer.send_text(room_id, "after taking it back")
        await wait_ui(pilot, lambda: _line_of(view, "after taking it back") is not None)
        await pilot.pause(1.0)  # the last sync's events reach the cache
        shown_before = _event_ids(app, room_id)
        assert reaction not in shown_before

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        view = app.query_one(TimelineView)
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once, 30)
        await wait_ui(pilot, lambda: not _decrypting(app, room_id), 20)
        assert _event_ids(app, room_id) == shown_before
        assert _line_of(view, "message deleted") is None
