"""The room list's tree of spaces, without a terminal: nesting, the spec's
child order, suggested rooms, parents not joined, people and other rooms,
counts rolled up into a collapsed space; and the state it is read from."""

from __future__ import annotations

from typing import Any

from tuichat.matrix.content.room_state import RoomState
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.space_tree import (
    RowKind,
    SpaceChild,
    TreeRow,
    build_tree,
    ordered_children,
    space_rooms,
    valid_order,
)


def room(room_id: str, **fields: Any) -> RoomSummary:
    return RoomSummary(room_id=room_id, name=fields.pop("name", room_id.strip("!")), **fields)


def space(room_id: str, *children: SpaceChild, **fields: Any) -> RoomSummary:
    return room(room_id, is_space=True, space_children=children, **fields)


def shown(rows: list[TreeRow]) -> list[str]:
    out = []
    for row in rows:
        if row.kind is RowKind.HEADER:
            out.append(f"[{row.title}]")
            continue
        name = row.room.name if row.room is not None else f"{row.title} (not joined)"
        mark = {RowKind.SPACE: "▸" if row.collapsed else "▾", RowKind.ROOM: "-"}[row.kind]
        counts = f" ({row.unread})" if row.unread else ""
        out.append(f"{'  ' * row.depth}{mark} {name}{counts}{' *' if row.suggested else ''}")
    return out


def test_without_spaces_the_list_is_as_before() -> None:
    rows = build_tree([room("!i", membership=Membership.INVITE), room("!a"), room("!b")])
    assert shown(rows) == ["[Invites]", "- i", "[Rooms]", "- a", "- b"]
    assert shown(build_tree([room("!a")])) == ["- a"]


def test_nested_spaces_follow_the_spec_order_with_people_and_other_rooms_apart() -> None:
    rooms = [
        room("!news"),
        room("!dm", is_direct=True),
        room("!lone"),
        room("!chat"),
        room("!dev"),
        space(
            "!club",
            SpaceChild("!news", added=5),
            SpaceChild("!chat", order="b", added=9),
            SpaceChild("!teams", order="a", added=1),
            SpaceChild("!unjoined", added=2),
            name="Club",
        ),
        space("!teams", SpaceChild("!dev", suggested=True), name="Teams"),
    ]
    assert shown(build_tree(rooms)) == [
        "▾ Club",
        "  ▾ Teams",  # order "a" before "b", ordered before unordered
        "    - dev *",
        "  - chat",
        "  - news",
        "[People]",
        "- dm",
        "[Other rooms]",
        "- lone",
    ]


def test_a_collapsed_space_carries_its_rooms_counts_once() -> None:
    rooms = [
        room("!a", unread=2, highlight=1),
        room("!b", unread=3),
        space("!inner", SpaceChild("!b"), name="Inner"),
        space("!top", SpaceChild("!a"), SpaceChild("!inner"), SpaceChild("!b"), name="Top"),
    ]
    rows = build_tree(rooms, frozenset({"!top"}))
    assert shown(rows) == ["▸ Top (5)"]
    assert rows[0].highlight == 1
    # Collapsing the inner one only.
    assert shown(build_tree(rooms, frozenset({"!inner"}))) == [
        "▾ Top",
        "  - a",
        "  - b",  # no order, same time: by room id
        "  ▸ Inner (3)",
    ]


def test_rooms_naming_a_space_you_have_not_joined_gather_under_it() -> None:
    rooms = [room("!x", space_parents=("!far:example.org",)), room("!y")]
    assert shown(build_tree(rooms)) == [
        "▾ !far:example.org (not joined)",
        "  - x",
        "[Other rooms]",
        "- y",
    ]


def test_a_cycle_of_spaces_ends() -> None:
    rooms = [
        space("!a", SpaceChild("!b"), name="A"),
        space("!b", SpaceChild("!a"), SpaceChild("!r"), name="B"),
        room("!r"),
    ]
    rows = shown(build_tree(rooms))
    assert rows[:2] == ["▾ A", "  ▾ B"] and "    - r" in rows
    assert space_rooms(rooms, "!a") == {"!a", "!b", "!r"}


def test_orders_are_checked_and_ties_go_by_time_then_id() -> None:
    assert (
        valid_order("a" * 51) == "" and valid_order("z\x7f") == "" and valid_order(" a~") == " a~"
    )
    children = [
        SpaceChild("!c", added=1),
        SpaceChild("!b", added=1),
        SpaceChild("!a", order="zz", added=9),
        SpaceChild("!d", added=0),
    ]
    assert [c.room_id for c in ordered_children(children)] == ["!a", "!d", "!b", "!c"]


def _state(event_type: str, state_key: str, content: dict[str, Any], ts: int = 0) -> dict:
    return {
        "type": event_type,
        "state_key": state_key,
        "content": content,
        "sender": "@a:x",
        "event_id": f"${event_type}{state_key}",
        "origin_server_ts": ts,
    }


def test_room_state_reads_children_and_parents_with_via_only() -> None:
    state = RoomState("!s:x")
    state.apply(_state("m.room.create", "", {"type": "m.space"}))
    state.apply(_state("m.space.child", "!a:x", {"via": ["x"], "order": "1", "suggested": True}, 7))
    state.apply(_state("m.space.child", "!gone:x", {}))  # removed: no via
    summary = state.summary("@me:x")
    assert summary.is_space
    assert summary.space_children == (SpaceChild("!a:x", "1", True, ("x",), 7),)
    plain = RoomState("!r:x")
    plain.apply(_state("m.space.parent", "!s:x", {"via": ["x"]}))
    plain.apply(_state("m.space.child", "!ignored:x", {"via": ["x"]}))  # not a space
    assert plain.summary("@me:x").space_parents == ("!s:x",)
    assert plain.summary("@me:x").space_children == ()
    # A later change is seen (the links are found again when they change).
    plain.apply(_state("m.space.parent", "!s:x", {}))
    assert plain.summary("@me:x").space_parents == ()


def test_a_replaced_room_leaves_the_list_once_its_successor_is_joined() -> None:
    rooms = [room("!old", successor="!new"), room("!new"), room("!other", successor="!far")]
    assert shown(build_tree(rooms)) == ["- new", "- other"]
