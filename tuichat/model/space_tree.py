"""The room list as a tree of spaces: which rooms sit under which space, in
what order, and the rows the list shows (collapsed spaces carrying their
rooms' unread counts).

Pure Python over room summaries, tested without a terminal. A space's
rooms are its `m.space.child` events (with `via`), ordered as the spec says:
by `order` (those with one first), then by when the child was added, then
by room id. A room whose space you have not joined still names it with
`m.space.parent`: such rooms gather under that space, marked not joined.
Rooms in no space are "Other rooms"; direct messages are on their own. A
room replaced by an upgrade is left out once you joined its successor.
Without any space the list is as it always was: invites, then rooms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from tuichat.model.rooms import Membership, RoomSummary

# The spec: an order is at most 50 characters of printable ASCII.
_ORDER_CHARS = frozenset(chr(c) for c in range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class SpaceChild:
    """One `m.space.child` event of a space (a valid one: it has `via`)."""

    room_id: str
    order: str = ""  # "" when absent or invalid
    suggested: bool = False
    via: tuple[str, ...] = ()
    added: int = 0  # the child event's origin_server_ts


def valid_order(order: object) -> str:
    if isinstance(order, str) and len(order) <= 50 and set(order) <= _ORDER_CHARS:
        return order
    return ""


def ordered_children(children: Iterable[SpaceChild]) -> list[SpaceChild]:
    """The spec's order: with `order` first (lexicographic), then by the
    child event's timestamp, then by room id."""
    return sorted(children, key=lambda c: (c.order == "", c.order, c.added, c.room_id))


class RowKind(StrEnum):
    HEADER = "header"  # a section title: "Invites", "People", "Other rooms"
    SPACE = "space"
    ROOM = "room"


@dataclass(frozen=True, slots=True)
class TreeRow:
    kind: RowKind
    depth: int = 0
    room: RoomSummary | None = None  # SPACE (when joined) and ROOM rows
    title: str = ""  # HEADER rows, and spaces not joined (their id)
    space_id: str = ""  # SPACE rows
    collapsed: bool = False
    unread: int = 0  # SPACE rows: their rooms' counts, when collapsed
    highlight: int = 0
    suggested: bool = False  # a room the space suggests


def _children_of(space: RoomSummary) -> list[SpaceChild]:
    return ordered_children(space.space_children)


def build_tree(
    rooms: Sequence[RoomSummary], collapsed: frozenset[str] = frozenset()
) -> list[TreeRow]:
    """The rows of the room list. `rooms` in display order (recent first);
    within a space, rooms follow the space's own order."""
    # A replaced room leaves the list once you are in its successor.
    joined_ids = {r.room_id for r in rooms if r.membership is Membership.JOIN}
    rooms = [r for r in rooms if not (r.successor and r.successor in joined_ids)]
    by_id = {room.room_id: room for room in rooms}
    invites = [r for r in rooms if r.membership is Membership.INVITE]
    joined = [r for r in rooms if r.membership is Membership.JOIN]
    spaces = {r.room_id: r for r in joined if r.is_space}
    # Parents named by the rooms for spaces not joined (m.space.parent).
    claimed: dict[str, list[str]] = {}
    for room in joined:
        for parent in room.space_parents:
            if parent not in spaces:
                claimed.setdefault(parent, []).append(room.room_id)
    if not spaces and not claimed:
        rows = []
        if invites:
            rows.append(TreeRow(RowKind.HEADER, title="Invites"))
            rows += [TreeRow(RowKind.ROOM, room=r) for r in invites]
            rows.append(TreeRow(RowKind.HEADER, title="Rooms"))
        return rows + [TreeRow(RowKind.ROOM, room=r) for r in joined]

    child_ids = {c.room_id for s in spaces.values() for c in s.space_children}
    placed: set[str] = set()
    rows: list[TreeRow] = []
    if invites:
        rows.append(TreeRow(RowKind.HEADER, title="Invites"))
        rows += [TreeRow(RowKind.ROOM, room=r) for r in invites]
        placed |= {r.room_id for r in invites}

    def descendants(space_id: str, seen: frozenset[str]) -> set[str]:
        space = spaces.get(space_id)
        found: set[str] = set(claimed.get(space_id, ()))
        if space is None:
            return found
        for child in space.space_children:
            if child.room_id in by_id and child.room_id not in seen:
                found.add(child.room_id)
                found |= descendants(child.room_id, seen | {child.room_id})
        return found

    def counts(ids: Iterable[str]) -> tuple[int, int]:
        members = [by_id[i] for i in ids if i in by_id and not by_id[i].is_space]
        return sum(r.unread for r in members), sum(r.highlight for r in members)

    def add_space(space_id: str, depth: int, seen: frozenset[str]) -> None:
        space = spaces.get(space_id)
        shut = space_id in collapsed
        unread, highlight = counts(descendants(space_id, seen)) if shut else (0, 0)
        rows.append(
            TreeRow(
                RowKind.SPACE,
                depth=depth,
                room=space,
                title="" if space is not None else space_id,
                space_id=space_id,
                collapsed=shut,
                unread=unread,
                highlight=highlight,
            )
        )
        placed.add(space_id)
        children = _children_of(space) if space is not None else []
        listed = [c.room_id for c in children]
        listed += [r for r in claimed.get(space_id, ()) if r not in listed]
        suggested = {c.room_id for c in children if c.suggested}
        for child_id in listed:
            child = by_id.get(child_id)
            if child is None or child.membership is not Membership.JOIN or child_id in seen:
                continue  # not joined (the hierarchy browser shows those)
            placed.add(child_id)
            if shut:
                if child.is_space:
                    placed.update(descendants(child_id, seen | {child_id}))
                continue
            if child.is_space:
                add_space(child_id, depth + 1, seen | {child_id})
            else:
                rows.append(
                    TreeRow(
                        RowKind.ROOM, depth=depth + 1, room=child, suggested=child_id in suggested
                    )
                )

    roots = [s for s in spaces if s not in child_ids]
    roots.sort(key=lambda s: spaces[s].name.casefold())
    for space_id in roots:
        add_space(space_id, 0, frozenset({space_id}))
    for space_id in sorted(set(spaces) - placed, key=lambda s: spaces[s].name.casefold()):
        add_space(space_id, 0, frozenset({space_id}))  # only in a cycle of spaces
    for parent in sorted(claimed):
        if parent not in placed:
            add_space(parent, 0, frozenset({parent}))

    people = [r for r in joined if r.is_direct and r.room_id not in placed]
    others = [r for r in joined if r.room_id not in placed and not r.is_direct]
    if people:
        rows.append(TreeRow(RowKind.HEADER, title="People"))
        rows += [TreeRow(RowKind.ROOM, room=r) for r in people]
    if others:
        rows.append(TreeRow(RowKind.HEADER, title="Other rooms"))
        rows += [TreeRow(RowKind.ROOM, room=r) for r in others]
    return rows


def space_rooms(rooms: Sequence[RoomSummary], space_id: str) -> set[str]:
    """Every room under `space_id`, nested spaces included (for scoping the
    room switcher)."""
    by_id: Mapping[str, RoomSummary] = {r.room_id: r for r in rooms}
    found: set[str] = set()
    todo = [space_id]
    while todo:
        current = by_id.get(todo.pop())
        if current is None:
            continue
        for child in current.space_children:
            if child.room_id not in found:
                found.add(child.room_id)
                todo.append(child.room_id)
    found |= {r.room_id for r in rooms if space_id in r.space_parents}
    return found


@dataclass(frozen=True, slots=True)
class HierarchyRoom:
    """One room of a space's hierarchy as the server describes it (every
    string sanitised), with the servers to join it through."""

    room_id: str
    name: str
    topic: str = ""
    members: int = 0
    joined: bool = False
    is_space: bool = False
    via: tuple[str, ...] = ()
    suggested: bool = False
