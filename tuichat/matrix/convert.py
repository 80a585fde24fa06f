"""Raw Matrix events (dicts as they come from the server) to timeline items.

A dispatch table keyed by event type picks the converter. Every converter is
defensive: events are remote input, so a wrong type or a missing field yields
something sensible (or `None`: not shown) and never raises.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tuichat.matrix.room_state import RoomState
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.sanitize import clean_line, clean_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: used for highlights (mentions of us)."""

    user_id: str
    display_name: str = ""

    def mentioned_in(self, content: dict[str, Any], body: str) -> bool:
        mentions = content.get("m.mentions")
        if isinstance(mentions, dict):
            user_ids = mentions.get("user_ids")
            # With m.mentions present, the body is not searched (spec).
            return isinstance(user_ids, list) and self.user_id in user_ids
        return self._mention_pattern.search(body) is not None

    @cached_property
    def _mention_pattern(self) -> re.Pattern[str]:
        """One pattern for every way we can be named: compiled once per
        viewer, not once per event."""
        needles = [self.user_id]
        if self.display_name:
            needles.append(self.display_name)
        localpart = self.user_id[1:].split(":", 1)[0]
        if localpart:
            needles.append(localpart)
        alternatives = "|".join(re.escape(n) for n in needles)
        return re.compile(rf"(?<![\w@])(?:{alternatives})(?![\w])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Decryption:
    """The outcome of decrypting an `m.room.encrypted` event."""

    payload: dict[str, Any] | None  # the decrypted {"type", "content"} or None
    reason: str | None = None  # UTD reason when payload is None
    session_id: str | None = None
    trust: str | None = None  # "own", "verified", "unverified", "unknown_device"
    key_source: str | None = None  # "forwarded", "imported", "backup" or None


def _str(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _ts(event: dict[str, Any]) -> int:
    value = event.get("origin_server_ts")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _txn_id(event: dict[str, Any]) -> str | None:
    unsigned = event.get("unsigned")
    if isinstance(unsigned, dict):
        txn = unsigned.get("transaction_id")
        if isinstance(txn, str):
            return txn
    return None


Converter = Callable[
    [dict[str, Any], dict[str, Any], RoomState, Viewer], tuple[ItemKind, str, bool] | None
]


def _message(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> tuple[ItemKind, str, bool] | None:
    if not content:
        return ItemKind.REDACTED, "message deleted", False
    body = clean_text(content.get("body"))
    msgtype = _str(content.get("msgtype"))
    highlight = event.get("sender") != viewer.user_id and viewer.mentioned_in(content, body)
    if msgtype == "m.emote":
        return ItemKind.EMOTE, body, highlight
    if msgtype == "m.notice":
        return ItemKind.NOTICE, body, False
    if msgtype in ("m.image", "m.file", "m.video", "m.audio"):
        label = msgtype.removeprefix("m.")
        return ItemKind.TEXT, f"[{label}] {body}", highlight
    return ItemKind.TEXT, body, highlight


def _member(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> tuple[ItemKind, str, bool] | None:
    target = _str(event.get("state_key"))
    sender = _str(event.get("sender"))
    membership = _str(content.get("membership"))
    unsigned = event.get("unsigned")
    prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    prev = prev if isinstance(prev, dict) else {}
    prev_membership = _str(prev.get("membership"))
    name = clean_line(content.get("displayname")) or clean_line(target)
    actor = state.member_name(sender) if sender else "someone"
    if membership == "join" and prev_membership == "join":
        old = clean_line(prev.get("displayname"))
        if old and old != name:
            text = f"{old} changed their name to {name}"
        elif not old:
            text = f"{target} set their name to {name}"
        else:
            text = f"{name} changed their avatar"
    elif membership == "join":
        text = f"{name} joined"
    elif membership == "invite":
        text = f"{actor} invited {name}"
    elif membership == "leave":
        old_name = clean_line(prev.get("displayname")) or clean_line(target)
        if sender and sender != target:
            verb = "withdrew the invite for" if prev_membership == "invite" else "removed"
            text = f"{actor} {verb} {old_name}"
        elif prev_membership == "invite":
            text = f"{old_name} declined the invite"
        else:
            text = f"{old_name} left"
    elif membership == "ban":
        text = f"{actor} banned {name}"
    elif membership == "knock":
        text = f"{name} asked to join"
    else:
        return None
    reason = clean_line(content.get("reason"))
    if reason:
        text += f": {reason}"
    return ItemKind.STATE, text, False


def _state_change(
    describe: Callable[[str, dict[str, Any]], str | None],
) -> Converter:
    def convert(
        event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
    ) -> tuple[ItemKind, str, bool] | None:
        actor = state.member_name(_str(event.get("sender"), "someone"))
        text = describe(actor, content)
        return None if text is None else (ItemKind.STATE, text, False)

    return convert


def _describe_name(actor: str, content: dict[str, Any]) -> str:
    name = clean_line(content.get("name"))
    return f"{actor} renamed the room to {name}" if name else f"{actor} removed the room name"


def _describe_topic(actor: str, content: dict[str, Any]) -> str:
    topic = clean_line(content.get("topic"), max_length=1024)
    return f"{actor} changed the topic to {topic}" if topic else f"{actor} removed the topic"


def _describe_encryption(actor: str, content: dict[str, Any]) -> str:
    algorithm = clean_line(content.get("algorithm"))
    return f"{actor} turned on end-to-end encryption ({algorithm})"


def _describe_create(actor: str, content: dict[str, Any]) -> str:
    return f"{actor} created the room"


def _describe_alias(actor: str, content: dict[str, Any]) -> str | None:
    alias = clean_line(content.get("alias"))
    return f"{actor} set the address to {alias}" if alias else None


def _describe_history(actor: str, content: dict[str, Any]) -> str:
    visibility = clean_line(content.get("history_visibility"))
    return f"{actor} made history visible to: {visibility}"


def _describe_join_rules(actor: str, content: dict[str, Any]) -> str:
    return f"{actor} set the join rule to {clean_line(content.get('join_rule'))}"


CONVERTERS: dict[str, Converter] = {
    "m.room.message": _message,
    "m.room.member": _member,
    "m.room.name": _state_change(_describe_name),
    "m.room.topic": _state_change(_describe_topic),
    "m.room.encryption": _state_change(_describe_encryption),
    "m.room.create": _state_change(_describe_create),
    "m.room.canonical_alias": _state_change(_describe_alias),
    "m.room.history_visibility": _state_change(_describe_history),
    "m.room.join_rules": _state_change(_describe_join_rules),
}


def to_item(
    event: dict[str, Any],
    state: RoomState,
    viewer: Viewer,
    decryption: Decryption | None = None,
) -> TimelineItem | None:
    """Convert one timeline event; `None` means it is not shown.

    For `m.room.encrypted` events `decryption` carries the decrypted payload or
    the reason it could not be decrypted; without it the event is shown as a
    placeholder waiting for its key.
    """
    try:
        return _to_item(event, state, viewer, decryption)
    except Exception:  # remote input must never crash the timeline
        log.warning("could not convert event %s", event.get("event_id"), exc_info=True)
        return None


def _to_item(
    event: dict[str, Any],
    state: RoomState,
    viewer: Viewer,
    decryption: Decryption | None,
) -> TimelineItem | None:
    event_id = event.get("event_id")
    sender = event.get("sender")
    if not isinstance(event_id, str) or not isinstance(sender, str):
        return None
    event_type = _str(event.get("type"))
    encrypted = event_type == "m.room.encrypted"
    common = {
        "key": event_id,
        "event_id": event_id,
        # Interned: thousands of items share a few senders' strings.
        "sender": sys.intern(clean_line(sender)),
        "sender_name": sys.intern(state.member_name(sender)),
        "timestamp": _ts(event),
        "txn_id": _txn_id(event),
        "encrypted": encrypted,
    }
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    if encrypted:
        if not content:
            return TimelineItem(kind=ItemKind.REDACTED, body="message deleted", **common)
        session_id = _str(content.get("session_id")) or None
        if decryption is None or decryption.payload is None:
            return TimelineItem(
                kind=ItemKind.UNDECRYPTABLE,
                body="",
                utd_reason=decryption.reason if decryption else "missing_key",
                session_id=session_id,
                **common,
            )
        payload = decryption.payload
        event_type = _str(payload.get("type"))
        inner = payload.get("content")
        content = inner if isinstance(inner, dict) else {}
        common["session_id"] = session_id
        common["trust"] = decryption.trust
        common["key_source"] = decryption.key_source
    converter = CONVERTERS.get(event_type)
    if converter is None:
        return None
    converted = converter(event, content, state, viewer)
    if converted is None:
        return None
    kind, body, highlight = converted
    return TimelineItem(kind=kind, body=body, highlight=highlight, **common)
