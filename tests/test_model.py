"""The plain-Python model: timelines, room list, room names, commands."""

from __future__ import annotations

import pytest

from tuichat.model import commands
from tuichat.model.items import ItemKind, SendState, TimelineItem
from tuichat.model.room_names import room_display_name
from tuichat.model.rooms import Membership, RoomList, RoomSummary
from tuichat.model.timeline import ChangeKind, Timeline

ME = "@me:example.org"


def item(event_id: str, sender: str = "@bob:example.org", **kw: object) -> TimelineItem:
    defaults: dict[str, object] = {
        "key": event_id,
        "event_id": event_id,
        "sender": sender,
        "sender_name": "Bob",
        "timestamp": 1000,
        "kind": ItemKind.TEXT,
        "body": f"body {event_id}",
    }
    defaults.update(kw)
    return TimelineItem(**defaults)  # type: ignore[arg-type]


def echo(txn: str) -> TimelineItem:
    return TimelineItem(
        key=f"txn:{txn}",
        sender=ME,
        sender_name="Me",
        timestamp=2000,
        kind=ItemKind.TEXT,
        body="hi",
        txn_id=txn,
        send_state=SendState.PENDING,
    )


def test_append_dedupes_by_event_id_and_bumps_the_version() -> None:
    timeline = Timeline("!r")
    timeline.append([item("$1"), item("$2")])
    change = timeline.append([item("$2", body="edited"), item("$3")])
    assert [i.event_id for i in timeline] == ["$1", "$2", "$3"]
    assert timeline[1].body == "edited" and timeline[1].version == 1
    assert change.kind is ChangeKind.APPENDED and change.index == 2 and change.indices == (1,)


def test_local_echo_stays_below_remote_items_until_its_remote_echo_arrives() -> None:
    timeline = Timeline("!r")
    timeline.append([item("$1")])
    timeline.add_local_echo(echo("t1"))
    timeline.append([item("$2")])
    assert [i.key for i in timeline] == ["$1", "$2", "txn:t1"]
    timeline.update_local_echo("t1", SendState.SENT, "$3")
    assert timeline[2].send_state is SendState.SENT and timeline[2].event_id == "$3"
    timeline.append([item("$3", sender=ME, txn_id="t1")])
    assert [i.key for i in timeline] == ["$1", "$2", "$3"]
    assert timeline.local_echoes == []


def test_send_confirmation_after_a_remote_echo_without_txn_id_drops_the_echo() -> None:
    timeline = Timeline("!r")
    timeline.add_local_echo(echo("t1"))
    # The server's echo came down sync first and without unsigned.transaction_id.
    timeline.append([item("$5", sender=ME)])
    assert len(timeline.local_echoes) == 1
    timeline.update_local_echo("t1", SendState.SENT, "$5")
    assert timeline.local_echoes == []
    assert [i.key for i in timeline] == ["$5"]


def test_failed_echo_can_be_marked_pending_again() -> None:
    timeline = Timeline("!r")
    timeline.add_local_echo(echo("t1"))
    timeline.update_local_echo("t1", SendState.FAILED)
    assert timeline.local_echo("t1").send_state is SendState.FAILED  # type: ignore[union-attr]
    timeline.update_local_echo("t1", SendState.PENDING)
    assert timeline.local_echo("t1").send_state is SendState.PENDING  # type: ignore[union-attr]


def test_prepend_keeps_indices_consistent() -> None:
    timeline = Timeline("!r")
    timeline.append([item("$3"), item("$4")])
    change = timeline.prepend([item("$1"), item("$2"), item("$3")])
    assert change.kind is ChangeKind.PREPENDED and change.count == 2
    assert [i.event_id for i in timeline] == ["$1", "$2", "$3", "$4"]
    assert timeline.index_of("$4") == 3 and timeline.index_of("$1") == 0


def test_unread_counts_follow_the_read_marker_and_skip_own_and_state_items() -> None:
    timeline = Timeline("!r")
    timeline.append([item("$1")])
    timeline.mark_read()
    timeline.append(
        [
            item("$2"),
            item("$3", highlight=True),
            item("$4", sender=ME),
            item("$5", kind=ItemKind.STATE),
            item("$6", kind=ItemKind.UNDECRYPTABLE),
        ]
    )
    assert timeline.unread_counts(ME) == (3, 1)
    timeline.mark_read()
    assert timeline.unread_counts(ME) == (0, 0)


def test_room_list_puts_invites_first_then_recent_activity() -> None:
    rooms = RoomList()
    rooms.upsert(
        [
            RoomSummary("!a", "Alpha", last_activity=10),
            RoomSummary("!b", "Beta", last_activity=30),
            RoomSummary("!i", "Invite", membership=Membership.INVITE),
        ]
    )
    assert [r.room_id for r in rooms.ordered()] == ["!i", "!b", "!a"]
    rooms.touch("!a", 40)
    assert [r.room_id for r in rooms.ordered()] == ["!i", "!a", "!b"]
    rooms.set_counts("!a", 2, 1)
    rooms.upsert([RoomSummary("!a", "Alpha renamed")])
    assert rooms.get("!a").unread == 2 and rooms.get("!a").name == "Alpha renamed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "Room"}, "Room"),
        ({"canonical_alias": "#a:b"}, "#a:b"),
        ({"heroes": ["@x"], "hero_names": {"@x": "X"}, "joined_count": 2}, "X"),
        (
            {"heroes": ["@x", "@y"], "hero_names": {"@x": "X", "@y": "Y"}, "joined_count": 3},
            "X and Y",
        ),
        (
            {"heroes": ["@x", "@y"], "hero_names": {"@x": "X", "@y": "Y"}, "joined_count": 6},
            "X, Y and 3 others",
        ),
        ({"heroes": ["@x"], "hero_names": {"@x": "X"}, "joined_count": 1}, "Empty Room (was X)"),
        ({"joined_count": 1}, "Empty Room"),
    ],
)
def test_room_display_name_follows_the_spec(kwargs: dict[str, object], expected: str) -> None:
    args: dict[str, object] = {
        "name": None,
        "canonical_alias": None,
        "heroes": [],
        "hero_names": {},
        "joined_count": 0,
        "invited_count": 0,
        "own_user_id": ME,
    }
    args.update(kwargs)
    assert room_display_name(**args) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", commands.Message("hello")),
        ("//not a command", commands.Message("/not a command")),
        ("/join #room:example.org", commands.Command("join", "#room:example.org")),
        ("/join !abc:example.org", commands.Command("join", "!abc:example.org")),
        ("/join !opaqueV12id", commands.Command("join", "!opaqueV12id")),
        ("/leave", commands.Command("leave", "")),
        ("/me waves", commands.Command("me", "waves")),
        ("/HELP", commands.Command("help", "")),
    ],
)
def test_commands_parse(text: str, expected: commands.Parsed) -> None:
    assert commands.parse(text) == expected


@pytest.mark.parametrize("text", ["/join", "/join room", "/leave now", "/me", "/nope"])
def test_bad_commands_are_errors(text: str) -> None:
    assert isinstance(commands.parse(text), commands.CommandError)


def test_a_placeholder_that_decrypts_to_nothing_shown_leaves_as_if_never_shown() -> None:
    """Its receipt and the read marker move to the item before; the items
    after it keep their places, and a later one is found by its id."""
    timeline = Timeline("!r", ME)
    placeholder = item("$hidden", kind=ItemKind.UNDECRYPTABLE, utd_reason="decrypting")
    timeline.append([item("$a"), placeholder, item("$b")])
    timeline.set_receipts({"@carol:example.org": ("$hidden", "Carol")})
    timeline.read_marker = "$hidden"

    change = timeline.replace([item("$b", body="edited b")], hidden=["$hidden"])

    assert change.kind is ChangeKind.RESET
    assert [i.key for i in timeline] == ["$a", "$b"]
    assert timeline.index_of("$b") == 1 and timeline[1].body == "edited b"
    assert timeline.index_of("$hidden") is None
    assert timeline.read_marker == "$a"
    assert timeline[0].read_by == ("Carol",)
    assert timeline.unread_counts(ME) == (1, 0)
    timeline.append([item("$c")])
    assert timeline.index_of("$c") == 2


def test_a_placeholder_that_decrypts_to_a_reaction_becomes_the_reaction() -> None:
    """A relation that was not in the clear (only inside the ciphertext):
    once decrypted it decorates its target, and its placeholder goes."""
    from tuichat.model.items import Relation, RelationKind

    timeline = Timeline("!r", ME)
    placeholder = item("$r", kind=ItemKind.UNDECRYPTABLE, utd_reason="missing_key")
    timeline.append([item("$a"), placeholder])
    reaction = item("$r", relation=Relation(RelationKind.REACTION, "$a", "👍"))

    change = timeline.replace([reaction])

    assert change.kind is ChangeKind.RESET
    assert [i.key for i in timeline] == ["$a"]
    assert [(r.key, r.count) for r in timeline[0].reactions] == [("👍", 1)]
