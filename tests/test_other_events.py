"""Polls, stickers, locations, pinned messages, room upgrades and unknown
events: converted and counted without a terminal, none dropped silently."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_convert import BOB, ME, member, state_with
from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.model.items import ItemKind, RelationKind, TimelineItem
from tuichat.model.polls import (
    PollAnswer,
    PollResponse,
    PollStart,
    poll_text,
    response_content,
    tally,
)
from tuichat.model.timeline import Timeline

CAROL = "@carol:example.org"
STATE = state_with(member(BOB, "Bob"), member(ME, "Me"), member(CAROL, "Carol"))
VIEWER = Viewer(ME, "Me")
LUNCH = PollStart(
    "Lunch?", (PollAnswer("a", "Pizza"), PollAnswer("b", "Soup"), PollAnswer("c", "Salad"))
)


def event(
    event_type: str,
    content: dict[str, Any],
    *,
    event_id: str = "$e",
    sender: str = BOB,
    ts: int = 1000,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "type": event_type,
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": ts,
        "content": content,
        **extra,
    }


def convert(raw: dict[str, Any]) -> TimelineItem:
    item = to_item(raw, STATE, VIEWER)
    assert item is not None, raw["type"]
    return item


# -- tallies ----------------------------------------------------------------------------------


def test_the_newest_vote_of_each_person_counts_until_the_poll_ends() -> None:
    responses = [
        PollResponse(BOB, 1, ("a",)),
        PollResponse(BOB, 5, ("b",)),  # Bob changed his mind
        PollResponse(CAROL, 2, ("a",)),
        PollResponse(ME, 3, ("b",)),
        PollResponse(CAROL, 9, ("c",)),  # after the end: not counted
    ]
    results = tally(LUNCH, responses, ME, ended_at=8)
    assert results.counts == (1, 2, 0) and results.voters == 3
    assert results.mine == ("b",) and results.ended
    live = tally(LUNCH, responses, ME)
    assert live.counts == (0, 2, 1) and not live.ended


def test_spoiled_and_too_many_answers_follow_the_msc() -> None:
    responses = [
        PollResponse(BOB, 1, ("a",)),
        PollResponse(BOB, 2, ("nope",)),  # spoiled: Bob's vote is withdrawn
        PollResponse(CAROL, 1, ("c", "a")),  # one answer allowed: the first counts
        PollResponse(ME, 1, ()),
    ]
    results = tally(LUNCH, responses, ME)
    assert results.counts == (0, 0, 1) and results.voters == 1 and results.mine == ()


def test_the_poll_text_numbers_answers_marks_mine_and_hides_undisclosed_counts() -> None:
    results = tally(LUNCH, [PollResponse(ME, 1, ("b",))], ME)
    text = poll_text(LUNCH, results)
    assert text.splitlines()[0] == "Poll: Lunch?"
    assert "● 2. Soup — 1 vote" in text and "○ 1. Pizza — 0 votes" in text
    secret = PollStart(LUNCH.question, LUNCH.answers, disclosed=False)
    assert "vote" not in poll_text(secret, results).splitlines()[1]
    ended = poll_text(secret, tally(secret, [PollResponse(ME, 1, ("b",))], ME, ended_at=5))
    assert "Poll ended" in ended and "Soup — 1 vote (winner)" in ended


def test_a_vote_is_sent_in_the_polls_own_namespace() -> None:
    event_type, content = response_content(LUNCH, "$poll", ["b"])
    assert event_type == "org.matrix.msc3381.poll.response"
    assert content["org.matrix.msc3381.poll.response"] == {"answers": ["b"]}
    assert content["m.relates_to"] == {"rel_type": "m.reference", "event_id": "$poll"}
    stable = PollStart(LUNCH.question, LUNCH.answers, unstable=False)
    event_type, content = response_content(stable, "$poll", ["a"])
    assert event_type == "m.poll.response" and content["m.selections"] == ["a"]


# -- polls in the timeline ----------------------------------------------------------------------

UNSTABLE_POLL = event(
    "org.matrix.msc3381.poll.start",
    {
        "org.matrix.msc3381.poll.start": {
            "question": {"org.matrix.msc1767.text": "Lunch?\x1b[2J"},
            "kind": "org.matrix.msc3381.poll.disclosed",
            "max_selections": 1,
            "answers": [
                {"id": "a", "org.matrix.msc1767.text": "Pizza"},
                {"id": "b", "org.matrix.msc1767.text": "Soup"},
            ],
        },
        "org.matrix.msc1767.text": "Lunch?\n1. Pizza\n2. Soup",
    },
    event_id="$poll",
)
STABLE_POLL = event(
    "m.poll.start",
    {
        "m.poll": {
            "question": {"m.text": [{"body": "Tea?"}]},
            "kind": "m.poll.undisclosed",
            "max_selections": 2,
            "answers": [
                {"m.id": "y", "m.text": [{"body": "Yes"}]},
                {"m.id": "n", "m.text": [{"body": "No"}]},
            ],
        },
        "m.text": [{"body": "Tea?"}],
    },
    event_id="$tea",
)


def _vote(poll_id: str, answers: list[str], sender: str, ts: int, event_id: str) -> dict:
    return event(
        "org.matrix.msc3381.poll.response",
        {
            "org.matrix.msc3381.poll.response": {"answers": answers},
            "m.relates_to": {"rel_type": "m.reference", "event_id": poll_id},
        },
        event_id=event_id,
        sender=sender,
        ts=ts,
    )


def test_both_poll_namespaces_convert_with_their_answers_and_sanitised_text() -> None:
    unstable = convert(UNSTABLE_POLL)
    assert unstable.poll is not None and unstable.poll.unstable
    assert unstable.poll.question.startswith("Lunch?") and "\x1b" not in unstable.body
    assert [a.text for a in unstable.poll.answers] == ["Pizza", "Soup"]
    stable = convert(STABLE_POLL)
    assert stable.poll is not None and not stable.poll.unstable
    assert stable.poll.question == "Tea?" and not stable.poll.disclosed
    assert stable.poll.max_selections == 2
    assert [a.answer_id for a in stable.poll.answers] == ["y", "n"]
    # A poll start tuichat cannot read shows its fallback text, not nothing.
    broken = convert(event("m.poll.start", {"m.poll": {}, "body": "A poll about tea"}))
    assert broken.poll is None and broken.body == "A poll about tea"


def test_votes_and_the_end_update_the_poll_live_in_the_timeline() -> None:
    timeline = Timeline("!room:example.org", ME)
    timeline.append([convert(UNSTABLE_POLL)])
    assert "0 votes" in timeline[0].body
    response = convert(_vote("$poll", ["a"], CAROL, 2000, "$v1"))
    assert response.relation is not None
    assert response.relation.kind is RelationKind.POLL_RESPONSE
    timeline.append([response, convert(_vote("$poll", ["b"], ME, 2100, "$v2"))])
    assert "Pizza — 1 vote" in timeline[0].body and "● 2. Soup — 1 vote" in timeline[0].body
    # Only the poll's creator can end it; then later votes do not count.
    fake_end = event(
        "org.matrix.msc3381.poll.end",
        {"m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"}},
        event_id="$x",
        sender=CAROL,
        ts=2200,
    )
    timeline.append([convert(fake_end)])
    assert "Poll ended" not in timeline[0].body
    end = {**fake_end, "event_id": "$end", "sender": BOB, "ts": 2300}
    late = _vote("$poll", ["a"], ME, 9000, "$v3")
    timeline.append([convert(end), convert(late)])
    assert "Poll ended" in timeline[0].body and "Soup — 1 vote" in timeline[0].body
    # A redacted vote is no longer counted.
    redaction = event("m.room.redaction", {"redacts": "$v1"}, event_id="$r", sender=CAROL)
    timeline.append([convert(redaction)])
    assert "Pizza — 0 votes" in timeline[0].body


# -- other events -----------------------------------------------------------------------------


def test_a_sticker_is_an_image_and_a_location_shows_its_geo_uri() -> None:
    sticker = convert(
        event(
            "m.sticker",
            {"body": "A cat", "url": "mxc://example.org/cat", "info": {"mimetype": "image/png"}},
        )
    )
    assert sticker.body == "[sticker] A cat"
    assert sticker.attachment is not None and sticker.attachment.is_image
    location = convert(
        event(
            "m.room.message",
            {"msgtype": "m.location", "body": "Office", "geo_uri": "geo:51.5,-0.12;u=35"},
        )
    )
    assert location.body == "[location] Office — geo:51.5,-0.12;u=35"
    odd = convert(
        event("m.room.message", {"msgtype": "m.location", "body": "x", "geo_uri": "http://x"})
    )
    assert "no usable geo: URI" in odd.body


def test_a_voice_message_shows_its_duration_and_waveform() -> None:
    voice = convert(
        event(
            "m.room.message",
            {
                "msgtype": "m.audio",
                "body": "Voice message",
                "url": "mxc://example.org/v",
                "info": {"mimetype": "audio/ogg", "duration": 12_345},
                "org.matrix.msc1767.audio": {"duration": 12_345, "waveform": [0, 512, 1024, 256]},
                "org.matrix.msc3245.voice": {},
            },
        )
    )
    assert voice.body.startswith("[voice message] 0:12 ▁▄█▂")
    assert voice.attachment is not None and voice.attachment.msgtype == "m.audio"
    odd = convert(
        event(
            "m.room.message",
            {
                "msgtype": "m.audio",
                "body": "v",
                "url": "mxc://example.org/v",
                "org.matrix.msc3245.voice": {},
                "org.matrix.msc1767.audio": {"duration": "long", "waveform": ["x", True, 9999]},
            },
        )
    )
    assert odd.body.startswith("[voice message] █")


def test_pins_tombstones_and_predecessors_read_as_sentences() -> None:
    pinned = convert(
        event(
            "m.room.pinned_events",
            {"pinned": ["$a", "$b"]},
            state_key="",
            unsigned={"prev_content": {"pinned": ["$a"]}},
        )
    )
    assert pinned.body == "Bob pinned a message"
    tombstone = convert(
        event(
            "m.room.tombstone",
            {"body": "Upgraded", "replacement_room": "!new:example.org"},
            state_key="",
        )
    )
    assert tombstone.body.startswith("This room has been replaced (Upgraded)")
    assert "continues in !new:example.org" in tombstone.body
    assert tombstone.link_room == "!new:example.org"
    create = convert(
        event(
            "m.room.create",
            {"predecessor": {"room_id": "!old:example.org", "event_id": "$t"}},
            state_key="",
        )
    )
    assert "continues the room !old:example.org" in create.body
    assert create.link_room == "!old:example.org"


# Every room event type the spec lists (client-server API, Matrix 1.x).
SPEC_EVENT_TYPES = [
    "m.room.message", "m.room.member", "m.room.name", "m.room.topic", "m.room.avatar",
    "m.room.pinned_events", "m.room.create", "m.room.join_rules", "m.room.power_levels",
    "m.room.canonical_alias", "m.room.history_visibility", "m.room.guest_access",
    "m.room.encryption", "m.room.server_acl", "m.room.third_party_invite", "m.room.tombstone",
    "m.room.redaction", "m.reaction", "m.sticker", "m.call.invite", "m.call.candidates",
    "m.call.answer", "m.call.hangup", "m.call.negotiate", "m.call.reject",
    "m.call.select_answer", "m.call.sdp_stream_metadata_changed", "m.space.child",
    "m.space.parent", "m.poll.start", "m.poll.response", "m.poll.end", "m.policy.rule.user",
    "m.policy.rule.room", "m.policy.rule.server",
]  # fmt: skip
_CONTENT: dict[str, dict[str, Any]] = {
    "m.room.message": {"msgtype": "m.text", "body": "hi"},
    "m.room.member": {"membership": "join"},
    "m.room.name": {"name": "N"},
    "m.room.canonical_alias": {"alias": "#a:example.org"},
    "m.room.redaction": {"redacts": "$other"},
    "m.reaction": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$o", "key": "x"}},
    "m.poll.start": STABLE_POLL["content"],
    "m.poll.response": {
        "m.selections": ["y"],
        "m.relates_to": {"rel_type": "m.reference", "event_id": "$tea"},
    },
    "m.poll.end": {"m.relates_to": {"rel_type": "m.reference", "event_id": "$tea"}},
}


@pytest.mark.parametrize("event_type", SPEC_EVENT_TYPES)
def test_every_spec_event_type_has_a_rendering(event_type: str) -> None:
    state_types = {t for t in SPEC_EVENT_TYPES if t.startswith(("m.room.", "m.space.", "m.policy"))}
    state_types -= {"m.room.message", "m.room.redaction"}
    extra = {"state_key": BOB if event_type == "m.room.member" else ""}
    raw = event(
        event_type, _CONTENT.get(event_type, {}), **(extra if event_type in state_types else {})
    )
    item = convert(raw)
    assert item.body or item.relation is not None


def test_unknown_types_show_a_sanitised_line_and_bodies_show() -> None:
    custom = convert(event("org.example.\x1b[31mthing", {}))
    assert custom.kind is ItemKind.STATE and "\x1b" not in custom.body
    assert custom.body.startswith("Bob sent an event of type org.example.")
    state = convert(event("org.example.setting", {}, state_key=""))
    assert state.body == "Bob changed org.example.setting"
    with_body = convert(event("org.example.note", {"body": "a note"}))
    assert with_body.kind is ItemKind.TEXT and with_body.body == "a note"
    # Type-only lines are marked for `show_hidden_events`; bodies are not.
    assert custom.type_only and state.type_only and not with_body.type_only
    # Relations and in-room verification steps stay with what they relate to.
    relation = {"m.relates_to": {"rel_type": "m.reference", "event_id": "$x"}}
    assert to_item(event("m.key.verification.start", relation), STATE, VIEWER) is None
    assert to_item(event("org.example.ref", relation), STATE, VIEWER) is None


def test_a_digit_votes_on_single_choice_and_toggles_within_the_limit_on_multi_choice() -> None:
    from tuichat.model.poll_choice import choose
    from tuichat.model.polls import PollResults

    none = PollResults((0, 0, 0), 0, ())
    assert choose(LUNCH, none, 2).answers == ("b",)
    assert choose(LUNCH, none, 4).error and choose(LUNCH, none, 4).answers is None
    two = PollStart(LUNCH.question, LUNCH.answers, max_selections=2)
    assert choose(two, PollResults((0, 0, 0), 1, ("c",)), 1).answers == ("a", "c")
    assert choose(two, PollResults((0, 0, 0), 1, ("a", "c")), 1).answers == ("c",)
    full = choose(two, PollResults((0, 0, 0), 1, ("a", "c")), 2)
    assert full.answers is None and full.error and "at most 2" in full.message
    withdrawn = choose(two, PollResults((0, 0, 0), 1, ("a",)), 1)
    assert withdrawn.answers == () and withdrawn.message == "Vote withdrawn."
    ended = choose(LUNCH, PollResults((1, 0, 0), 1, ("a",), ended=True), 2)
    assert ended.answers is None and ended.error
