"""Edits, reactions, redactions, replies and receipts in the timeline model,
whatever order they arrive in."""

from __future__ import annotations

import time

from tuichat.model.items import ItemKind, Reaction, Relation, RelationKind, TimelineItem
from tuichat.model.timeline import ChangeKind, Timeline

ME, BOB, EVE = "@me:x", "@bob:x", "@eve:x"


def message(n: int, body: str, sender: str = BOB, **extra: object) -> TimelineItem:
    fields: dict[str, object] = {
        "key": f"$m{n}",
        "event_id": f"$m{n}",
        "sender": sender,
        "sender_name": sender[1:4],
        "timestamp": 1_700_000_000_000 + n * 1000,
        "kind": ItemKind.TEXT,
        "body": body,
    }
    fields.update(extra)
    return TimelineItem(**fields)  # type: ignore[arg-type]


def relation(
    n: int, kind: RelationKind, target: str, sender: str = BOB, **extra: object
) -> TimelineItem:
    return message(n, extra.pop("body", ""), sender, relation=Relation(kind, target, **extra))  # type: ignore[arg-type]


def edit(n: int, target: str, body: str, sender: str = BOB) -> TimelineItem:
    return relation(n, RelationKind.EDIT, target, sender, body=body)


def test_an_edit_shows_the_latest_text_and_an_edited_marker() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "helo")])
    change = timeline.append([edit(2, "$m1", "hello"), edit(3, "$m1", "hello!")])
    assert len(timeline) == 1
    assert change.indices == (0,) or change.kind is ChangeKind.REPLACED
    assert timeline[0].body == "hello!" and timeline[0].edited
    # An older edit arriving late does not win.
    timeline.append([edit(0, "$m1", "stale")])
    assert timeline[0].body == "hello!"


def test_edits_from_someone_else_are_ignored() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "bob's words")])
    timeline.append([edit(2, "$m1", "eve's words", sender=EVE)])
    assert timeline[0].body == "bob's words" and not timeline[0].edited


def test_an_edit_that_came_before_its_original_applies_when_it_arrives() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(5, "latest")])
    # A /messages page, oldest first, holding the original and its edit.
    timeline.prepend([message(1, "first"), edit(2, "$m1", "first, fixed")])
    assert [item.body for item in timeline] == ["first, fixed", "latest"]


def test_an_edited_message_that_decrypts_later_shows_its_edit() -> None:
    timeline = Timeline("!r", ME)
    placeholder = message(
        1, "", kind=ItemKind.UNDECRYPTABLE, encrypted=True, utd_reason="missing_key"
    )
    timeline.append([placeholder])
    encrypted_edit = message(2, "new", encrypted=True, relation=Relation(RelationKind.EDIT, "$m1"))
    timeline.append([encrypted_edit])
    assert timeline[0].kind is ItemKind.UNDECRYPTABLE
    timeline.replace([message(1, "old", encrypted=True)])
    assert timeline[0].body == "new" and timeline[0].edited


def test_reactions_aggregate_and_a_redacted_reaction_goes_away() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "party?")])
    timeline.append(
        [
            relation(2, RelationKind.REACTION, "$m1", BOB, key="🎉"),
            relation(3, RelationKind.REACTION, "$m1", ME, key="🎉"),
            relation(4, RelationKind.REACTION, "$m1", EVE, key="👍"),
            relation(4, RelationKind.REACTION, "$m1", EVE, key="👍"),  # the same event twice
        ]
    )
    assert timeline[0].reactions == (Reaction("🎉", 2, True), Reaction("👍", 1, False))
    assert timeline.own_reaction("$m1", "🎉") == "$m3"
    timeline.append([relation(5, RelationKind.REDACTION, "$m3", ME)])
    assert timeline[0].reactions == (Reaction("🎉", 1, False), Reaction("👍", 1, False))
    assert timeline.own_reaction("$m1", "🎉") is None


def test_a_redaction_deletes_the_message_and_its_reactions() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "oops"), relation(2, RelationKind.REACTION, "$m1", key="😮")])
    version = timeline[0].version
    change = timeline.append([relation(3, RelationKind.REDACTION, "$m1")])
    assert change.indices == (0,)
    assert timeline[0].kind is ItemKind.REDACTED and timeline[0].body == "message deleted"
    assert timeline[0].reactions == () and timeline[0].version > version
    # A later edit of a deleted message does not bring it back.
    timeline.append([edit(4, "$m1", "resurrected")])
    assert timeline[0].kind is ItemKind.REDACTED


def test_redacting_an_edit_falls_back_to_the_previous_text() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "one"), edit(2, "$m1", "two")])
    assert timeline[0].body == "two"
    timeline.append([relation(3, RelationKind.REDACTION, "$m2")])
    assert timeline[0].body == "one" and not timeline[0].edited


def test_replies_redraw_when_their_parent_changes() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "question"), message(2, "answer", reply_to="$m1")])
    before = timeline[1].version
    change = timeline.append([edit(3, "$m1", "better question")])
    assert 1 in change.indices and timeline[1].version > before
    # A parent fetched from the server (not in the timeline) redraws too.
    timeline.append([message(4, "late answer", reply_to="$old")])
    assert timeline.lookup("$old") is None
    change = timeline.add_context([message(0, "ancient", event_id="$old", key="$old")])
    assert change.indices == (2,)
    lookup = timeline.lookup("$old")
    assert lookup is not None and lookup.body == "ancient"


def test_receipts_move_forward_and_land_on_shown_items() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "a"), message(2, "b")])
    timeline.append([relation(3, RelationKind.REACTION, "$m1", key="👍")])
    timeline.set_receipts({EVE: ("$m1", "Eve"), ME: ("$m2", "me")})
    assert timeline[0].read_by == ("Eve",) and timeline[1].read_by == ()
    # A receipt on the (hidden) reaction shows on the item shown before it.
    timeline.set_receipts({EVE: ("$m3", "Eve")})
    assert timeline[0].read_by == () and timeline[1].read_by == ("Eve",)
    # It never moves back up.
    timeline.set_receipts({EVE: ("$m1", "Eve")})
    assert timeline[1].read_by == ("Eve",) and timeline[0].read_by == ()


def test_a_reader_is_shown_only_at_their_latest_receipt() -> None:
    """Bob reads five messages one after another: "✓ Bob" is under the last
    one only, not under each message he read on the way."""
    timeline = Timeline("!r", ME)
    timeline.append([message(n, f"m{n}", ME) for n in range(1, 6)])
    for n in range(1, 6):
        timeline.set_receipts({BOB: (f"$m{n}", "Bob")})
    assert [item.read_by for item in timeline] == [(), (), (), (), ("Bob",)]
    # Eve reading the same message does not bring Bob back elsewhere.
    timeline.set_receipts({EVE: ("$m3", "Eve")})
    assert [item.read_by for item in timeline] == [(), (), ("Eve",), (), ("Bob",)]


def test_a_flood_of_reactions_and_readers_is_shown_bounded() -> None:
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "popular")])
    flood = [
        relation(100 + n, RelationKind.REACTION, "$m1", f"@u{n}:x", key=f"k{n % 30}")
        for n in range(3000)
    ]
    timeline.append(flood)
    reactions = timeline[0].reactions
    assert len(reactions) == 24 and reactions[0] == Reaction("k0", 100, False)
    # Taking one back is counted without recounting the rest.
    timeline.append([relation(9999, RelationKind.REDACTION, "$m100")])
    assert timeline[0].reactions[0] == Reaction("k0", 99, False)
    timeline.set_receipts({f"@u{n}:x": ("$m1", f"U{n}") for n in range(10)})
    assert timeline[0].read_by == ("U0", "U1", "U2", "U3", "U4", "U5", "4 more")


def test_a_flood_of_edits_to_one_message_costs_linear_time() -> None:
    # 20,000 edits took 9.5 s when every edit rescanned all the earlier ones.
    timeline = Timeline("!r", ME)
    timeline.append([message(1, "v0")])
    flood = [edit(10 + n, "$m1", f"v{n}") for n in range(20_000)]
    started = time.process_time()
    for chunk in range(0, len(flood), 100):  # as syncs bring them
        timeline.append(flood[chunk : chunk + 100])
    took = time.process_time() - started
    assert timeline[0].body == "v19999" and timeline[0].edited
    assert took < 2, f"20,000 edits took {took:.1f} s"
    # An edit from someone else, or an older one, does not win; redacting
    # the latest falls back to the one before.
    timeline.append([edit(5, "$m1", "old"), edit(99_999, "$m1", "eve's", sender=EVE)])
    assert timeline[0].body == "v19999"
    timeline.append([relation(100_000, RelationKind.REDACTION, f"$m{10 + 19_999}")])
    assert timeline[0].body == "v19998"
