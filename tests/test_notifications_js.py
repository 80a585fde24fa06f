"""Notifications that follow push rules, with Element's stack (the
matrix-js-sdk peer) on the other side, against the real Synapse: room
settings written by one are read by the other, keywords and `@room` in
encrypted rooms, marked-unread flags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.model.events import MarkedUnread, PushSettingsChanged
from tuichat.model.items import TimelineItem

pytestmark = requires_js_peer

JsPeers = Callable[..., Any]


def _settings(recorder: Recorder) -> PushSettingsChanged | None:
    found = [e for e in recorder.events if isinstance(e, PushSettingsChanged)]
    return found[-1] if found else None


def _mode(recorder: Recorder, room_id: str) -> str:
    settings = _settings(recorder)
    return settings.room_modes.get(room_id, "default") if settings else "default"


def _marked(recorder: Recorder, room_id: str) -> bool | None:
    found = [e for e in recorder.events if isinstance(e, MarkedUnread) and e.room_id == room_id]
    return found[-1].unread if found else None


async def _room_with(
    service: MatrixService, recorder: Recorder, creator: JsPeer, *others: JsPeer
) -> str:
    """An encrypted room `creator` made, with tuichat's user and `others` in it."""
    room_id = await creator.create_room(
        invite=[service.user_id, *(o.user_id for o in others)], name="Notify"
    )
    await wait_until(lambda: room_id in recorder.rooms(), 30)
    await service.join(room_id)
    for other in others:
        await other.join(room_id)
    await creator.wait_for_member(room_id, service.user_id)
    for other in others:
        await creator.wait_for_member(room_id, other.user_id)
    await wait_until(
        lambda: all(
            service.states[room_id].membership_of(u) == "join"
            for u in (creator.user_id, *(o.user_id for o in others))
        ),
        30,
    )
    return room_id


async def _message(recorder: Recorder, room_id: str, body: str) -> TimelineItem:
    item = await wait_until(lambda: recorder.text_from(room_id, body), 30)
    assert item.encrypted and item.utd_reason is None
    return item


def _text(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


async def test_room_settings_are_shared_with_element_and_followed(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    element: JsPeer = await js_peer_factory(alice, "element")  # Alice's other client
    bob_js: JsPeer = await js_peer_factory(bob)
    room_id = await _room_with(service, recorder, bob_js)

    # By default every message notifies; two members: with a sound, as a DM.
    await bob_js.send(room_id, "plain chatter")
    item = await _message(recorder, room_id, "plain chatter")
    assert (item.notify, item.highlight, item.rings) == (True, False, True)

    # Element sets "mentions and keywords": tuichat shows it and follows it.
    await element.set_room_notif_state(room_id, "mentions")
    await wait_until(lambda: _mode(recorder, room_id) == "mentions", 30)
    await bob_js.send(room_id, "more chatter")
    item = await _message(recorder, room_id, "more chatter")
    assert (item.notify, item.highlight, item.rings) == (False, False, False)
    await bob_js.send_event(
        room_id,
        "m.room.message",
        _text("Alice: look", **{"m.mentions": {"user_ids": [alice.user_id]}}),
    )
    item = await _message(recorder, room_id, "Alice: look")
    assert (item.notify, item.highlight, item.rings) == (True, True, True)

    # tuichat mutes the room: Element reads it as muted, and mentions go quiet.
    assert await service.set_room_notifications(room_id, "mute")
    assert await element.room_notif_state(room_id, wait_for="mute") == "mute"
    await wait_until(lambda: _mode(recorder, room_id) == "mute", 30)
    await bob_js.send_event(
        room_id,
        "m.room.message",
        _text("Alice: again", **{"m.mentions": {"user_ids": [alice.user_id]}}),
    )
    item = await _message(recorder, room_id, "Alice: again")
    assert (item.notify, item.highlight, item.rings) == (False, False, False)

    # tuichat's "mentions": Element reads "mentions and keywords".
    assert await service.set_room_notifications(room_id, "mentions")
    assert await element.room_notif_state(room_id, wait_for="mentions") == "mentions"
    # tuichat's "all": Element's "all messages (loud)"; back to the default.
    assert await service.set_room_notifications(room_id, "all")
    assert await element.room_notif_state(room_id, wait_for="all_loud") == "all_loud"
    await wait_until(lambda: _mode(recorder, room_id) == "all", 30)
    assert await service.set_room_notifications(room_id, "default")
    assert await element.room_notif_state(room_id, wait_for="all") == "all"
    await wait_until(lambda: _mode(recorder, room_id) == "default", 30)

    # The group rooms' default, as Element's "Messages in group chats".
    assert await service.set_group_default("mentions")
    for rule_id in (".m.rule.message", ".m.rule.encrypted"):
        assert await element.rule_notifies("underride", rule_id, wait_for=False) is False
    await wait_until(lambda: (s := _settings(recorder)) and s.group_default == "mentions", 30)
    assert await service.set_group_default("all")
    assert await element.rule_notifies("underride", ".m.rule.message", wait_for=True)
    await wait_until(lambda: (s := _settings(recorder)) and s.group_default == "all", 30)

    # Marked unread, both ways (MSC2867).
    await element.set_marked_unread(room_id, True)
    await wait_until(lambda: _marked(recorder, room_id) is True, 30)
    assert await service.set_marked_unread(room_id, False)
    assert await element.marked_unread(room_id, wait_for=False) is False


async def test_keywords_and_room_mentions_in_an_encrypted_room(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: JsPeers,
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = (
        new_user("alice", "Alice"),
        new_user("bob", "Bob"),
        new_user("carol", "Carol"),
    )
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    bob_js: JsPeer = await js_peer_factory(bob)
    carol_js: JsPeer = await js_peer_factory(carol)
    room_id = await _room_with(service, recorder, bob_js, carol_js)

    assert await service.set_keyword("pineapple", True)
    await wait_until(
        lambda: (s := _settings(recorder)) is not None and "pineapple" in s.keywords, 30
    )
    await carol_js.send(room_id, "who wants PINEAPPLE pizza?")
    item = await _message(recorder, room_id, "who wants PINEAPPLE pizza?")
    assert (item.notify, item.highlight, item.rings) == (True, True, True)
    await carol_js.send(room_id, "pineapples are not the keyword")
    item = await _message(recorder, room_id, "pineapples are not the keyword")
    assert (item.notify, item.highlight) == (True, False)

    # @room: Bob made the room (power level 100), Carol has 0 (50 needed).
    await bob_js.send_event(
        room_id, "m.room.message", _text("@room meeting", **{"m.mentions": {"room": True}})
    )
    item = await _message(recorder, room_id, "@room meeting")
    assert (item.notify, item.highlight) == (True, True)
    event_id = await carol_js.send_event(
        room_id, "m.room.message", _text("@room party", **{"m.mentions": {"room": True}})
    )
    item = await _message(recorder, room_id, "@room party")
    assert (item.notify, item.highlight) == (True, False)
    # The same verdict as Element's push processor on its side (for Bob).
    assert await bob_js.push_actions(room_id, event_id) == {"notify": True, "highlight": False}

    assert await service.set_keyword("pineapple", False)
    await wait_until(
        lambda: (s := _settings(recorder)) is not None and "pineapple" not in s.keywords, 30
    )
