"""Timelines packed while unused (tuichat/model/packed_timeline.py): packing
gives back equal items, a packed timeline behaves exactly as an unpacked
twin under every change, and ChatState keeps the room shown unpacked."""

from __future__ import annotations

import gc
import random

import pytest

from tuichat.model import events as ev
from tuichat.model import packed_timeline
from tuichat.model.items import (
    Attachment,
    ItemKind,
    Reaction,
    Relation,
    RelationKind,
    SendState,
    TimelineItem,
)
from tuichat.model.packed_timeline import PackedItems, settle_packing
from tuichat.model.rooms import RoomSummary
from tuichat.model.state import ChatState
from tuichat.model.threads import RoomTimeline
from tuichat.model.timeline import Timeline

ME = "@sam:example.org"
ADA = "@ada:example.org"
BOB = "@bob:example.org"


def item(n: int, *, sender: str = ADA, **fields: object) -> TimelineItem:
    return TimelineItem(
        key=f"$e{n}",
        event_id=f"$e{n}",
        sender=sender,
        sender_name="Ada" if sender == ADA else "Bob",
        timestamp=1_700_000_000_000 + n,
        kind=ItemKind.TEXT,
        body=f"message {n}",
        **fields,  # type: ignore[arg-type]
    )


def relation(n: int, kind: RelationKind, target: int, **fields: object) -> TimelineItem:
    return item(n, relation=Relation(kind, f"$e{target}", **fields))  # type: ignore[arg-type]


def varied() -> list[TimelineItem]:
    """Items with what packing must keep: odd text, no event id, an event id
    other than the key, details shared or not (an unhashable attachment),
    versions, timestamps far apart."""
    return [
        item(1),
        item(2, sender=BOB, highlight=True),
        TimelineItem(
            key="notice:1", sender="", sender_name="", timestamp=5, kind=ItemKind.STATE, body="n"
        ),
        TimelineItem(
            key="$k",
            event_id="$other",
            sender=ADA,
            sender_name="Ada",
            timestamp=-3,
            kind=ItemKind.NOTICE,
            body="é ✓ 🦊 \ud800 end",
            version=7,
        ),
        item(3, reactions=(Reaction("👍", 2, True),), read_by=("Bob",)),
        item(
            4,
            attachment=Attachment("m.file", "f.txt", file={"key": {"k": "v"}}, url="mxc://s/a"),
        ),
        item(5, encrypted=True, send_state=SendState.SENT, utd_reason="missing_key"),
        TimelineItem(
            key="$long",
            event_id="$long",
            sender=ADA,
            sender_name="Ada",
            timestamp=4_000_000_000_000,
            kind=ItemKind.TEXT,
            body="x" * 70_000,
        ),
    ]


def test_packed_items_give_back_equal_items() -> None:
    items = varied()
    packed = PackedItems.of(items)
    assert packed is not None
    assert len(packed) == len(items)
    assert list(packed) == items
    assert packed.unpack() == items
    assert [packed[n] for n in range(len(items))] == items
    assert packed[-1] == items[-1] and packed[1:3] == items[1:3]
    for got, want in zip(packed, items, strict=True):
        assert got.details() == want.details()
        assert got._details is want._details  # shared, not copied
        assert repr(got) == repr(want)
    with pytest.raises(IndexError):
        packed[len(items)]
    assert PackedItems.of(items) == packed
    assert PackedItems.of(items[:-1]) != packed
    assert PackedItems.of([]) is not None and len(PackedItems.of([]) or ()) == 0


def test_what_packing_would_not_give_back_is_not_packed() -> None:
    class Text(str):
        pass

    odd_body = TimelineItem(
        key="$a", sender=ADA, sender_name="Ada", timestamp=1, kind=ItemKind.TEXT, body=Text("b")
    )
    huge_time = item(1).replace(timestamp=1 << 70)
    assert PackedItems.of([item(1), odd_body]) is None
    assert PackedItems.of([huge_time]) is None
    timeline = Timeline("!r")
    timeline.append([huge_time, item(2)])
    assert not timeline.pack() and not timeline.is_packed
    assert list(timeline) == [huge_time, item(2)]


def test_a_packed_timeline_reads_as_before_and_drops_empty_containers() -> None:
    timeline = RoomTimeline("!r", ME)
    timeline.append([item(n) for n in range(1, 6)])
    timeline.read_marker = "$e3"
    before = list(timeline)
    assert timeline.pack() and timeline.is_packed
    assert "_remote" not in vars(timeline) and "_edits" not in vars(timeline)
    assert "threads" not in vars(timeline) and "polls" not in vars(timeline)
    assert timeline.unread_counts(ME) == (2, 0)
    assert list(timeline) == before
    assert not timeline.is_packed
    assert timeline.index_of("$e4") == 3 and timeline.get("$e2") == before[1]
    assert timeline.threads == {} and not timeline.polls
    plain = Timeline("!p")
    plain.append([item(1)])
    plain.pack()
    assert list(plain) == [item(1)]
    with pytest.raises(AttributeError):
        plain.threads  # noqa: B018 (only a RoomTimeline has threads)


def test_repacking_an_unchanged_timeline_shares_what_the_cache_read() -> None:
    origin = PackedItems.of([item(n) for n in range(1, 4)])
    assert origin is not None
    timeline = Timeline("!r")
    timeline.append(origin)
    timeline.note_origin(origin)
    timeline.pack()
    assert timeline._packing[0] is origin
    timeline.append([item(4)])
    timeline.pack()
    assert timeline._packing[0] is not origin
    assert [i.key for i in timeline] == ["$e1", "$e2", "$e3", "$e4"]


OPERATIONS = (
    "append",
    "prepend",
    "edit",
    "react",
    "unreact",
    "redact",
    "receipts",
    "replace",
    "remove",
    "echo",
    "confirm",
    "context",
    "mark_read",
    "reset",
)


def _apply(timeline: Timeline, operation: str, rng: random.Random, step: int) -> object:
    n = 1000 + step
    chosen = rng.choice([i.key for i in timeline] or ["$e1"])
    target = int(chosen[2:]) if chosen[2:].lstrip("-").isdigit() else 1
    if operation == "append":
        return timeline.append([item(n, reply_to=f"$e{target}"), item(n + 500)])
    if operation == "prepend":
        return timeline.prepend([item(-n), item(-n + 1, sender=BOB)])
    if operation == "edit":
        return timeline.append([relation(n, RelationKind.EDIT, target)])
    if operation == "react":
        return timeline.append([relation(n, RelationKind.REACTION, target, key="👍")])
    if operation == "unreact":
        return timeline.append([relation(n, RelationKind.REDACTION, n - 1)])
    if operation == "redact":
        return timeline.append([relation(n, RelationKind.REDACTION, target)])
    if operation == "receipts":
        return timeline.set_receipts({BOB: (f"$e{target}", "Bob")})
    if operation == "replace":
        return timeline.replace([item(target).replace(body="decrypted")])
    if operation == "remove":
        return timeline.remove([f"$e{target}"])
    if operation == "echo":
        return timeline.add_local_echo(
            TimelineItem(
                key=f"txn:{n}",
                sender=ME,
                sender_name="Sam",
                timestamp=1,
                kind=ItemKind.TEXT,
                body="mine",
                txn_id=str(n),
                send_state=SendState.PENDING,
            )
        )
    if operation == "confirm":
        echoes = timeline.local_echoes
        if echoes and echoes[0].txn_id:
            return timeline.update_local_echo(echoes[0].txn_id, SendState.SENT, f"$x{n}")
        return None
    if operation == "context":
        return timeline.add_context([item(-5000 - n)])
    if operation == "mark_read":
        timeline.mark_read()
        return timeline.read_marker
    if operation == "reset":
        return timeline.reset([item(n)]) if rng.random() < 0.2 else None
    raise AssertionError(operation)


def _seen(timeline: Timeline) -> tuple[object, ...]:
    return (
        list(timeline),
        [timeline.index_of(i.key) for i in timeline],
        timeline.unread_counts(ME),
        timeline.read_marker,
        timeline.last_event_id,
        timeline.local_echoes,
        len(timeline),
    )


@pytest.mark.parametrize("seed", range(12))
def test_a_timeline_packed_between_changes_matches_one_never_packed(seed: int) -> None:
    rng = random.Random(seed)
    plain, packed = RoomTimeline("!r", ME), RoomTimeline("!r", ME)
    start = [item(n, sender=rng.choice((ADA, BOB))) for n in range(1, 30)]
    plain.append(start)
    packed.append(start)
    for step in range(60):
        operation = rng.choice(OPERATIONS)
        state = rng.getstate()
        want = _apply(plain, operation, rng, step)
        assert packed.pack() or not len(packed)
        rng.setstate(state)
        got = _apply(packed, operation, rng, step)
        assert got == want, (operation, step)
        # Counted packed, as unpacked (the thread baseline too).
        assert packed.pack() or not len(packed)
        assert packed.unread_counts(ME) == plain.unread_counts(ME), (operation, step)
        assert packed.is_packed  # counted without unpacking
        assert packed._baseline == plain._baseline
        assert _seen(packed) == _seen(plain), (operation, step)


def _rooms(state: ChatState, count: int) -> list[str]:
    ids = [f"!r{n}" for n in range(count)]
    state.apply(ev.RoomsChanged([RoomSummary(room, room) for room in ids]))
    return ids


def test_chat_state_keeps_the_room_shown_and_recent_rooms_unpacked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gc.collect()  # other tests' timelines are gone
    monkeypatch.setattr(packed_timeline, "UNPACKED_LIMIT", 2)
    state = ChatState(ME)
    rooms = _rooms(state, 6)
    state.select_room(rooms[0])
    for number, room in enumerate(rooms):
        state.apply(ev.TimelineAppended(room, [item(10 * number + n) for n in range(3)]))
    timelines = [state.timelines[room] for room in rooms]
    assert not timelines[0].is_packed  # shown
    # Two unpacked in all: the room shown and the one changed last.
    assert [t.is_packed for t in timelines[1:]] == [True, True, True, True, False]
    # Unread counts of packed rooms were counted before packing and stay.
    assert state.rooms.get(rooms[2]).unread == 3  # type: ignore[union-attr]


def test_changes_to_packed_rooms_apply_as_to_unpacked_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(packed_timeline, "UNPACKED_LIMIT", 0)
    state = ChatState(ME)
    shown, other = _rooms(state, 2)
    state.select_room(shown)
    placeholder = item(2, encrypted=True, utd_reason="missing_key").replace(
        kind=ItemKind.UNDECRYPTABLE
    )
    state.apply(ev.TimelineAppended(other, [item(1), placeholder, item(3)]))
    timeline = state.timelines[other]
    assert timeline.is_packed
    state.apply(ev.TimelineAppended(other, [relation(4, RelationKind.EDIT, 1)]))
    state.apply(ev.TimelineAppended(other, [relation(5, RelationKind.REACTION, 3, key="x")]))
    state.apply(ev.TimelineAppended(other, [relation(6, RelationKind.REDACTION, 3)]))
    # A late key: the placeholder of a packed room is replaced.
    state.apply(ev.ItemsReplaced(other, [item(2, encrypted=True).replace(body="late")]))
    assert timeline.is_packed
    shown_items = list(timeline)
    assert [i.body for i in shown_items] == ["message 4", "late", "message deleted"]
    assert shown_items[0].edited and shown_items[2].kind is ItemKind.REDACTED
    assert state.rooms.get(other).unread == 2  # type: ignore[union-attr]
    # Threads of a packed room.
    state.apply(ev.TimelineAppended(other, [item(7, thread_root="$e1")]))
    assert timeline.is_packed
    assert [i.key for i in timeline.thread("$e1").timeline] == ["$e7"]


def test_settling_packs_only_what_is_beyond_the_limit_and_never_what_is_kept() -> None:
    gc.collect()
    timelines = [Timeline(f"!s{n}") for n in range(3)]
    for timeline in timelines:
        timeline.append([item(1)])
    assert settle_packing(keep=timelines[:1], limit=0) >= 2
    assert [t.is_packed for t in timelines] == [False, True, True]
    list(timelines[2])  # read: unpacked, and used last
    assert settle_packing(limit=1) >= 1
    assert [t.is_packed for t in timelines] == [True, True, False]


def test_many_different_items_pack_with_wide_indices() -> None:
    items = [item(n).replace(version=n, sender_name=f"Ada {n}") for n in range(300)]
    packed = PackedItems.of(items)
    assert packed is not None and packed.unpack() == items
