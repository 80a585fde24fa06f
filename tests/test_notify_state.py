"""Notifications in the model, without a terminal: counts and the bell
follow the push rules' verdict on each item, muted rooms count nothing,
marked-unread flags, the next room with activity, the Mentions view, the
commands, `@room` in outgoing messages, and the cached rules evaluated
again after a restart."""

from __future__ import annotations

from pathlib import Path

from tests.test_chat_state import ADA, ME, item, two_rooms
from tuichat.matrix.account.session import Profile
from tuichat.matrix.content.compose import message_content
from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.storage.cache import Cache, RoomWrite, SyncWrite
from tuichat.matrix.storage.startup_reader import StartupReader
from tuichat.model import events as ev
from tuichat.model.activity import mentions, next_activity
from tuichat.model.commands import Command, CommandError, parse
from tuichat.model.connection import ConnectionState
from tuichat.model.items import ItemKind
from tuichat.model.push_rules import PushRules, RoomMode, mute_rule, room_rule
from tuichat.model.rooms import RoomSummary
from tuichat.model.state import ChatState


def synced(state: ChatState) -> ChatState:
    state.apply(ev.ConnectionChanged(ConnectionState.SYNCED))
    return state


def test_counts_follow_the_rules_verdict() -> None:
    state = two_rooms()
    state.apply(
        ev.TimelineAppended(
            "!b",
            [
                item(1, notify=True),
                item(2, notify=False),  # e.g. a mentions-only room's chatter
                item(3, notify=True, highlight=True),
                item(4),  # not evaluated: a message counts
            ],
        )
    )
    summary = state.rooms.get("!b")
    assert summary is not None and (summary.unread, summary.highlight) == (3, 1)


def test_server_counts_fill_in_for_clear_text_rooms_with_a_gap() -> None:
    state = two_rooms()
    state.apply(ev.RoomsChanged([RoomSummary("!e", "E", encrypted=True)]))
    state.apply(ev.TimelineAppended("!b", [item(1, notify=True)]))
    state.timeline("!b").read_marker = "$e1"  # here: the local count is complete
    state.apply(ev.ServerCounts("!b", 7, 2))
    assert (state.rooms.get("!b").unread, state.rooms.get("!b").highlight) == (0, 0)  # type: ignore[union-attr]
    state.timeline("!b").read_marker = "$gone"  # not here (a gap): the server counted
    state.apply(ev.ServerCounts("!b", 7, 2))
    assert (state.rooms.get("!b").unread, state.rooms.get("!b").highlight) == (7, 2)  # type: ignore[union-attr]
    state.apply(ev.ServerCounts("!e", 9, 9))  # encrypted: our own evaluation only
    assert (state.rooms.get("!e").unread, state.rooms.get("!e").highlight) == (0, 0)  # type: ignore[union-attr]
    state.select_room("!b")
    state.mark_read("!b")
    assert "!b" not in state.server_counts


def test_a_muted_room_counts_nothing_and_does_not_ring() -> None:
    state = synced(two_rooms())
    state.apply(ev.TimelineAppended("!b", [item(1, notify=True, highlight=True, loud=True)]))
    assert state.rooms.get("!b").highlight == 1  # type: ignore[union-attr]
    changes = state.apply(ev.PushSettingsChanged({"!b": "mute"}))
    assert changes.rooms and changes.push_settings
    summary = state.rooms.get("!b")
    assert summary is not None and (summary.unread, summary.highlight) == (0, 0)
    assert summary.notify_mode == "mute"
    # What the rules say of a muted room's new messages: nothing.
    changes = state.apply(ev.TimelineAppended("!b", [item(2, notify=False)]))
    assert not changes.new_messages
    assert (state.rooms.get("!b").unread, state.rooms.get("!b").highlight) == (0, 0)  # type: ignore[union-attr]
    # Unmuted: counted again.
    state.apply(ev.PushSettingsChanged({}))
    assert state.rooms.get("!b").highlight == 1  # type: ignore[union-attr]


def test_the_bell_follows_the_actions() -> None:
    state = synced(two_rooms())
    quiet = state.apply(ev.TimelineAppended("!b", [item(1, notify=True)]))
    assert not quiet.new_messages
    loud = state.apply(ev.TimelineAppended("!b", [item(2, notify=True, loud=True)]))
    assert [m.item.event_id for m in loud.new_messages] == ["$e2"]
    mention = state.apply(ev.TimelineAppended("!b", [item(3, notify=True, highlight=True)]))
    assert [m.item.event_id for m in mention.new_messages] == ["$e3"]
    silent = state.apply(ev.TimelineAppended("!b", [item(4, notify=False, loud=True)]))
    assert not silent.new_messages


def test_a_placeholder_that_decrypts_to_a_mention_rings() -> None:
    state = synced(two_rooms())
    placeholder = item(1, utd_reason="missing_key", notify=True).evolve(kind=ItemKind.UNDECRYPTABLE)
    changes = state.apply(ev.TimelineAppended("!b", [placeholder]))
    assert not changes.new_messages
    decrypted = item(1, notify=True, highlight=True, loud=True)
    changes = state.apply(ev.ItemsReplaced("!b", [decrypted]))
    assert [m.item.event_id for m in changes.new_messages] == ["$e1"]
    assert state.rooms.get("!b").highlight == 1  # type: ignore[union-attr]
    # Decrypted to chatter the rules do not ring for: counted, silent.
    waiting = item(2, utd_reason="x").evolve(kind=ItemKind.UNDECRYPTABLE)
    state.apply(ev.TimelineAppended("!b", [waiting]))
    changes = state.apply(ev.ItemsReplaced("!b", [item(2, notify=True)]))
    assert not changes.new_messages


def test_marked_unread_shows_and_reading_clears_it() -> None:
    state = two_rooms()
    state.apply(ev.MarkedUnread("!b", True))
    assert state.rooms.get("!b").marked_unread  # type: ignore[union-attr]
    # Kept when the room's summary changes.
    state.apply(ev.RoomsChanged([RoomSummary("!b", "B renamed")]))
    assert state.rooms.get("!b").marked_unread  # type: ignore[union-attr]
    assert next_activity(state) == "!b"
    state.select_room("!b")
    state.mark_read("!b")
    assert not state.rooms.get("!b").marked_unread  # type: ignore[union-attr]
    assert state.unmarked == ["!b"]  # for the server


def test_next_activity_prefers_highlights_and_skips_muted_rooms() -> None:
    state = ChatState(ME)
    state.apply(
        ev.RoomsChanged(
            [RoomSummary(f"!{n}", n, last_activity=10 - i) for i, n in enumerate("abcd")]
        )
    )
    state.select_room("!a")
    state.apply(ev.TimelineAppended("!b", [item(1, notify=True)]))
    state.apply(ev.TimelineAppended("!c", [item(2, notify=True, highlight=True)]))
    state.apply(ev.TimelineAppended("!d", [item(3, notify=True, highlight=True)]))
    state.apply(ev.PushSettingsChanged({"!c": "mute"}))
    assert next_activity(state) == "!d"
    state.apply(ev.PushSettingsChanged({"!c": "mute", "!d": "mute"}))
    assert next_activity(state) == "!b"


def test_mentions_across_rooms_newest_first() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!a", [item(1, highlight=True), item(2)]))
    state.apply(
        ev.TimelineAppended("!b", [item(3, highlight=True), item(4, sender=ME, highlight=True)])
    )
    assert [(m.room_id, m.item.event_id) for m in mentions(state)] == [("!b", "$e3"), ("!a", "$e1")]


def test_commands_parse() -> None:
    assert parse("/notify mute") == Command("notify", "mute")
    assert parse("/notify").args == ()  # type: ignore[union-attr]
    assert isinstance(parse("/notify loud"), CommandError)
    assert parse("/keyword add tea").args == ("add", "tea")  # type: ignore[union-attr]
    assert isinstance(parse("/keyword add two words"), CommandError)
    assert isinstance(parse("/keyword drop tea"), CommandError)
    assert parse("/notify global mentions").args == ("global", "mentions")  # type: ignore[union-attr]
    assert isinstance(parse("/notify global mute"), CommandError)
    assert isinstance(parse("/notify mute now"), CommandError)
    assert parse("/unread") == Command("unread", "")
    assert parse("/mentions") == Command("mentions", "")


def test_outgoing_messages_mention_the_room_when_at_room_is_typed() -> None:
    assert message_content("@room lunch?", markdown=False)["m.mentions"] == {"room": True}
    both = message_content("@room ask Ada", markdown=False, mentions={"Ada": ADA})
    assert both["m.mentions"] == {"user_ids": [ADA], "room": True}
    for text in ("@roomba", "mail@room", "@room:example.org", "plain"):
        assert "room" not in message_content(text, markdown=False)["m.mentions"]


def _room(encrypted_members: int = 3) -> RoomState:
    state = RoomState("!r:x")
    state.apply(
        {"type": "m.room.create", "state_key": "", "sender": ADA, "content": {"room_version": "10"}}
    )
    for n in range(encrypted_members):
        user = [ME, ADA, "@cy:x"][n]
        state.apply(
            {
                "type": "m.room.member",
                "state_key": user,
                "sender": user,
                "content": {"membership": "join"},
            }
        )
    return state


def _event(n: int, body: str, sender: str = ADA, **content: object) -> dict[str, object]:
    return {
        "type": "m.room.message",
        "event_id": f"$m{n}",
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000 + n,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def test_to_item_evaluates_the_rules_as_shown() -> None:
    state = _room()
    rules = PushRules(ME)
    viewer = Viewer(ME, "Sam", rules)
    chatter = to_item(_event(1, "hello"), state, viewer)
    assert chatter is not None and (chatter.notify, chatter.highlight, chatter.loud) == (
        True,
        False,
        False,
    )
    named = to_item(_event(2, "hi sam"), state, viewer)
    assert named is not None and (named.notify, named.highlight, named.loud) == (True, True, True)
    # @room from the creator without power levels (100): a highlight.
    at_room = to_item(_event(3, "@room", **{"m.mentions": {"room": True}}), state, viewer)
    assert at_room is not None and at_room.highlight
    from_cy = to_item(
        _event(4, "@room", sender="@cy:x", **{"m.mentions": {"room": True}}), state, viewer
    )
    assert from_cy is not None and not from_cy.highlight
    # A mentions-only room rule.
    ruleset = rules.ruleset
    ruleset["room"] = [{"rule_id": "!r:x", **room_rule(RoomMode.MENTIONS)}]
    quiet = Viewer(ME, "Sam", PushRules(ME, ruleset))
    assert to_item(_event(5, "hello"), state, quiet).notify is False  # type: ignore[union-attr]
    placeholder = {
        **_event(6, ""),
        "type": "m.room.encrypted",
        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
    }
    waiting = to_item(placeholder, state, quiet)
    assert (
        waiting is not None and waiting.kind is ItemKind.UNDECRYPTABLE and waiting.notify is False
    )


def test_counts_survive_a_restart_with_the_cached_rules(tmp_path: Path) -> None:
    """The rules and events are cached; after a restart the start-up reader
    evaluates the same events with the cached rules, and tells the rooms'
    settings first: the room list shows the same counts, a muted room none."""
    profile = Profile(tmp_path / "profile")
    profile.root.mkdir(parents=True)
    ruleset = PushRules(ME).ruleset
    ruleset["override"] = [{"rule_id": "!m:x", **mute_rule("!m:x")}, *ruleset["override"]]
    cache = Cache(profile.cache_file)
    write = SyncWrite(next_batch="s1")
    write.account_data["m.push_rules"] = {"global": ruleset}
    for room_id in ("!q:x", "!m:x"):
        state_events = [
            {"type": "m.room.create", "state_key": "", "sender": ADA, "content": {}},
            *[
                {
                    "type": "m.room.member",
                    "state_key": u,
                    "sender": u,
                    "content": {"membership": "join"},
                }
                for u in (ME, ADA, "@cy:x")
            ],
        ]
        write.rooms[room_id] = RoomWrite(
            membership="join",
            state=[
                {**e, "event_id": f"$s{n}{room_id}", "room_id": room_id}
                for n, e in enumerate(state_events)
            ],
            events=[
                {**e, "room_id": room_id}
                for e in (
                    _event(0, "read before"),
                    _event(1, "hi"),
                    _event(2, "sam, look"),
                    _event(3, "mine", sender=ME),
                )
            ],
        )
    cache.queue_sync(write).result()
    for room_id in ("!q:x", "!m:x"):
        cache.set_read_marker(room_id, "$m0")
    cache.close()

    state = ChatState(ME)
    reader = StartupReader(profile, ME, state.apply)
    try:
        reader.read_start()
        for room_id in ("!q:x", "!m:x"):
            reader.read_room(room_id)
    finally:
        reader.close()
    state.select_room("!elsewhere")
    assert state.room_modes == {"!m:x": "mute"}
    counted = state.rooms.get("!q:x")
    muted = state.rooms.get("!m:x")
    assert counted is not None and (counted.unread, counted.highlight) == (2, 1)
    assert muted is not None and (muted.unread, muted.highlight, muted.notify_mode) == (
        0,
        0,
        "mute",
    )


async def test_private_read_receipts_when_set() -> None:
    """With `private_receipts`, the receipt sent is `m.read.private`."""
    import asyncio
    from types import SimpleNamespace
    from typing import Any

    from tuichat.matrix.service.read_state import ReadState

    sent: list[dict[str, Any]] = []

    class Client:
        async def room_read_markers(self, room_id: str, **kwargs: Any) -> object:
            sent.append({"room_id": room_id, **kwargs})
            return SimpleNamespace()

    context: Any = SimpleNamespace(
        client=Client(),
        crypto=None,  # before the store opens: receipts go with /read_markers
        cache=SimpleNamespace(set_read_marker=lambda room, event: None),
    )
    reading = ReadState(context)
    reading.set_read_marker("!r:x", "$public")
    await asyncio.sleep(0.01)
    reading.private_receipts = True
    reading.set_read_marker("!r:x", "$private")
    await asyncio.sleep(0.01)
    assert sent == [
        {"room_id": "!r:x", "fully_read_event": "$public", "read_event": "$public"},
        {"room_id": "!r:x", "fully_read_event": "$private", "private_read_event": "$private"},
    ]

    # Once the store is open the receipt is threaded (`main`), and private still.
    posted: list[tuple[str, str, object]] = []

    class Http:
        async def request(self, method: str, path: str, body: object) -> object:
            posted.append((method, path, body))
            return {}

    context.crypto = SimpleNamespace(http=Http())
    reading.set_read_marker("!r:x", "$threaded")
    await asyncio.sleep(0.01)
    assert sent[-1] == {"room_id": "!r:x", "fully_read_event": "$threaded"}
    assert posted == [
        ("POST", "/rooms/%21r%3Ax/receipt/m.read.private/%24threaded", {"thread_id": "main"})
    ]
