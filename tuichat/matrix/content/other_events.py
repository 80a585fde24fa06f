"""Events beyond messages and the common state: polls (stable and MSC3381's
unstable names), stickers, locations, pinned messages, room upgrades
(tombstone and predecessor), and a one-line placeholder naming the type of
any event tuichat has no rendering for, so none is dropped silently.

Converters in the shape of `convert.CONVERTERS`' (which lists these in its
table); every string shown is cleaned here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tuichat.matrix.content.room_state import RoomState
from tuichat.model.items import ItemKind, Relation, RelationKind
from tuichat.model.polls import MAX_ANSWERS, UNSTABLE_PREFIX, PollAnswer, PollStart
from tuichat.model.sanitize import clean_line, clean_text

Fields = dict[str, Any]
# (event, content, state, viewer) -> fields; the viewer is not needed here.
Converter = Callable[[dict[str, Any], dict[str, Any], RoomState, Any], Fields | None]

POLL_START_TYPES = ("m.poll.start", f"{UNSTABLE_PREFIX}poll.start")
POLL_RESPONSE_TYPES = ("m.poll.response", f"{UNSTABLE_PREFIX}poll.response")
POLL_END_TYPES = ("m.poll.end", f"{UNSTABLE_PREFIX}poll.end")
# In-room verification steps are shown by the request they answer.
_QUIET_PREFIXES = ("m.key.verification.",)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_of(block: object) -> str:
    """Text from an extensible-events block: a string under `m.text` (or
    MSC1767's unstable name), or a list of `{body, mimetype}`."""
    if isinstance(block, str):
        return block
    block = _dict(block)
    for key in ("m.text", "org.matrix.msc1767.text", "body"):
        value = block.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            for part in value:
                part = _dict(part)
                if _str(part.get("mimetype") or "text/plain") == "text/plain":
                    return _str(part.get("body"))
    return ""


def _reference(content: dict[str, Any]) -> str | None:
    relates = _dict(content.get("m.relates_to"))
    target = relates.get("event_id")
    return target if relates.get("rel_type") == "m.reference" and isinstance(target, str) else None


# -- polls ---------------------------------------------------------------------------------


def parse_poll_start(event_type: str, content: dict[str, Any]) -> PollStart | None:
    unstable = event_type.startswith(UNSTABLE_PREFIX)
    block = _dict(
        content.get(f"{UNSTABLE_PREFIX}poll.start")
        or content.get("m.poll")
        or content.get("m.poll.start")
    )
    question = clean_line(_text_of(block.get("question")), max_length=500)
    answers: list[PollAnswer] = []
    seen: set[str] = set()
    raw_answers = block.get("answers")
    for raw in raw_answers[:MAX_ANSWERS] if isinstance(raw_answers, list) else []:
        raw = _dict(raw)
        answer_id = _str(raw.get("id") or raw.get("m.id"))
        if not answer_id or answer_id in seen:
            continue
        seen.add(answer_id)
        answers.append(PollAnswer(answer_id, clean_line(_text_of(raw), max_length=200) or "?"))
    if not question or not answers:
        return None
    kind = _str(block.get("kind"))
    limit = block.get("max_selections")
    max_selections = (
        limit if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1 else 1
    )
    return PollStart(
        question=question,
        answers=tuple(answers),
        disclosed=not kind.endswith("undisclosed"),
        max_selections=min(max_selections, len(answers)),
        unstable=unstable,
    )


def _poll_start(event_type: str) -> Converter:
    def convert(
        event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Any
    ) -> Fields | None:
        poll = parse_poll_start(event_type, content)
        if poll is None:
            fallback = clean_text(content.get("body") or content.get(f"{UNSTABLE_PREFIX}text"))
            return {"kind": ItemKind.TEXT, "body": fallback or "a poll tuichat cannot read"}
        lines = [f"Poll: {poll.question}"]
        lines += [f"  ○ {n}. {a.text}" for n, a in enumerate(poll.answers, 1)]
        return {"kind": ItemKind.TEXT, "body": "\n".join(lines), "poll": poll}

    return convert


def _poll_response(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Any
) -> Fields | None:
    target = _reference(content)
    if target is None:
        return None
    block = content.get(f"{UNSTABLE_PREFIX}poll.response") or content.get("m.poll.response")
    selections = content.get("m.selections")
    if isinstance(block, dict):
        selections = block.get("answers")
    if isinstance(selections, dict):  # an older draft nested the list
        selections = selections.get("m.selections")
    answers = (
        tuple(a for a in selections if isinstance(a, str))[:MAX_ANSWERS]
        if isinstance(selections, list)
        else ()
    )
    return {
        "kind": ItemKind.STATE,
        "body": "",
        "relation": Relation(RelationKind.POLL_RESPONSE, target, answers=answers),
    }


def _poll_end(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Any
) -> Fields | None:
    target = _reference(content)
    if target is None:
        return None
    return {"kind": ItemKind.STATE, "body": "", "relation": Relation(RelationKind.POLL_END, target)}


# -- stickers, locations ----------------------------------------------------------------------


def _sticker(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Any
) -> Fields | None:
    """A sticker is an image without a msgtype: shown as an image is."""
    from tuichat.matrix.content.convert import _attachment

    body = clean_text(content.get("body"))
    attachment = _attachment("m.image", content, body or "sticker")
    text = f"[sticker] {clean_line(body) or 'sticker'}"
    if attachment.url is None:
        text += " — unavailable"
    return {"kind": ItemKind.TEXT, "body": text, "attachment": attachment}


def location_body(content: dict[str, Any]) -> str:
    """An m.location message: its description and its geo: URI."""
    geo = clean_line(content.get("geo_uri"), max_length=200)
    location = _dict(content.get("m.location"))
    geo = geo or clean_line(location.get("uri"), max_length=200)
    description = clean_line(location.get("description")) or clean_line(content.get("body"))
    if not geo.startswith("geo:"):
        return f"[location] {description or 'a location'} (no usable geo: URI)"
    return f"[location] {description or 'a location'} — {geo}"


_BARS = "▁▂▃▄▅▆▇█"
_WAVEFORM_WIDTH = 24


def voice_body(content: dict[str, Any]) -> str | None:
    """A voice message (MSC3245): its duration and its waveform drawn in
    text; None for audio that is not one."""
    if "org.matrix.msc3245.voice" not in content:
        return None
    audio = _dict(content.get("org.matrix.msc1767.audio"))
    info = _dict(content.get("info"))
    duration = audio.get("duration", info.get("duration"))
    seconds = duration // 1000 if isinstance(duration, int) and duration >= 0 else None
    length = f" {seconds // 60}:{seconds % 60:02d}" if seconds is not None else ""
    raw = audio.get("waveform")
    samples = (
        [v for v in raw if isinstance(v, int) and not isinstance(v, bool)]
        if isinstance(raw, list)
        else []
    )
    wave = ""
    if samples:
        # Spec'd as 0..1024; draw at most a line's worth, averaged.
        step = max(1, len(samples) // _WAVEFORM_WIDTH)
        buckets = [samples[i : i + step] for i in range(0, len(samples), step)][:_WAVEFORM_WIDTH]
        for bucket in buckets:
            level = max(0, min(1024, sum(bucket) // len(bucket)))
            wave += _BARS[min(len(_BARS) - 1, level * len(_BARS) // 1025)]
        wave = f" {wave}"
    return f"[voice message]{length}{wave} (Enter: save, then play it)"


# -- pinned messages, room upgrades -----------------------------------------------------------


def _actor(event: dict[str, Any], state: RoomState) -> str:
    return state.member_name(_str(event.get("sender")) or "someone")


def _pinned(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Any
) -> Fields | None:
    pinned = content.get("pinned")
    pinned = [p for p in pinned if isinstance(p, str)] if isinstance(pinned, list) else []
    unsigned = _dict(event.get("unsigned"))
    before = _dict(unsigned.get("prev_content")).get("pinned")
    before = [p for p in before if isinstance(p, str)] if isinstance(before, list) else []
    added, removed = len(set(pinned) - set(before)), len(set(before) - set(pinned))
    actor = _actor(event, state)
    if added and not removed:
        text = f"{actor} pinned {'a message' if added == 1 else f'{added} messages'}"
    elif removed and not added:
        text = f"{actor} unpinned {'a message' if removed == 1 else f'{removed} messages'}"
    else:
        text = f"{actor} changed the pinned messages ({len(pinned)} pinned)"
    return {"kind": ItemKind.STATE, "body": text}


def _tombstone(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Any
) -> Fields | None:
    successor = clean_line(content.get("replacement_room"))
    reason = clean_line(content.get("body"))
    text = "This room has been replaced"
    if reason:
        text += f" ({reason})"
    if not successor.startswith("!"):
        return {"kind": ItemKind.STATE, "body": text}
    text += f". The conversation continues in {successor} (select this line, Enter: go there)"
    return {"kind": ItemKind.STATE, "body": text, "link_room": successor}


def predecessor_of(content: dict[str, Any]) -> str | None:
    """The room a create event's room replaces, if it names one."""
    predecessor = clean_line(_dict(content.get("predecessor")).get("room_id"))
    return predecessor if predecessor.startswith("!") else None


def readable_predecessor(states: Mapping[str, RoomState], room_id: str) -> str | None:
    """The room `room_id` replaces, if its state is known here (you are or
    were in it), else None."""
    state = states.get(room_id)
    if state is None:
        return None
    predecessor = predecessor_of(state.content("m.room.create"))
    if predecessor is None or predecessor == room_id or predecessor not in states:
        return None
    return predecessor


def create_suffix(content: dict[str, Any]) -> str:
    """What a room's create event adds when the room replaces another."""
    predecessor = predecessor_of(content)
    if not predecessor:
        return ""
    return f". It continues the room {predecessor} (select this line, Enter: its older history)"


# -- anything else ----------------------------------------------------------------------------

# State events without a sentence of their own, as people say them.
_STATE_WORDS = {
    "m.room.power_levels": "changed the power levels",
    "m.room.avatar": "changed the room avatar",
    "m.room.guest_access": "changed guest access",
    "m.room.server_acl": "changed the server access list",
    "m.room.third_party_invite": "invited someone by email",
    "m.space.child": "changed the rooms of this space",
    "m.space.parent": "changed the spaces this room is in",
    "m.room.related_groups": "changed the related groups",
}


def unknown_event(
    event_type: str, event: dict[str, Any], content: dict[str, Any], state: RoomState
) -> Fields | None:
    """An event with no converter: its body if it has one, else a line
    naming its type (`type_only`: the timeline shows it only when
    `show_hidden_events` is on). Relations and verification steps stay applied to what
    they relate to, not shown."""
    relates = _dict(content.get("m.relates_to"))
    if relates.get("rel_type") in ("m.replace", "m.annotation", "m.reference"):
        return None
    if event_type.startswith(_QUIET_PREFIXES):
        return None
    actor = _actor(event, state)
    if event_type in _STATE_WORDS:
        return {"kind": ItemKind.STATE, "body": f"{actor} {_STATE_WORDS[event_type]}"}
    body = content.get("body")
    if isinstance(body, str) and clean_text(body):
        return {"kind": ItemKind.TEXT, "body": clean_text(body)}
    shown = clean_line(event_type, max_length=80) or "(no type)"
    if isinstance(event.get("state_key"), str):
        return {"kind": ItemKind.STATE, "body": f"{actor} changed {shown}", "type_only": True}
    return {
        "kind": ItemKind.STATE,
        "body": f"{actor} sent an event of type {shown}",
        "type_only": True,
    }


OTHER_CONVERTERS: dict[str, Converter] = {
    **{name: _poll_start(name) for name in POLL_START_TYPES},
    **dict.fromkeys(POLL_RESPONSE_TYPES, _poll_response),
    **dict.fromkeys(POLL_END_TYPES, _poll_end),
    "m.sticker": _sticker,
    "m.room.pinned_events": _pinned,
    "m.room.tombstone": _tombstone,
}
