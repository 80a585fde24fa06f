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

from tuichat.matrix.content.other_events import (
    OTHER_CONVERTERS,
    create_suffix,
    location_body,
    predecessor_of,
    unknown_event,
    voice_body,
)
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.content.thread_relations import thread_fields
from tuichat.matrix.crypto.types import Decryption
from tuichat.matrix.transport.media import parse_mxc
from tuichat.model.items import Attachment, ItemKind, Relation, RelationKind, TimelineItem
from tuichat.model.push_rules import PushRules
from tuichat.model.sanitize import clean_line, clean_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: used for highlights (mentions of us) and, with the
    account's push rules, for what notifies."""

    user_id: str
    display_name: str = ""
    push_rules: PushRules | None = None

    def pushed(
        self, event: dict[str, Any], event_type: str, content: dict[str, Any], state: RoomState
    ) -> Fields:
        """The push rules' verdict on an event as shown, as item fields
        (none without rules)."""
        if self.push_rules is None:
            return {}
        from tuichat.matrix.content.push_context import evaluate

        actions = evaluate(self.push_rules, event, event_type, content, state, self.display_name)
        return {
            "notify": actions.notify,
            "loud": actions.sound is not None,
            "highlight": actions.notify and actions.highlight,
        }

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


Fields = dict[str, Any]
Converter = Callable[[dict[str, Any], dict[str, Any], RoomState, Viewer], Fields | None]

HTML_FORMAT = "org.matrix.custom.html"
_ATTACHMENTS = {"m.image": "image", "m.file": "file", "m.video": "video", "m.audio": "audio"}


def human_size(size: object) -> str:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def _relates_to(content: dict[str, Any]) -> dict[str, Any]:
    relates = content.get("m.relates_to")
    return relates if isinstance(relates, dict) else {}


def strip_reply_fallback(body: str) -> str:
    """A reply's body may start with a quote of its parent ("> <@a:b> …"
    lines, then an empty line); the parent is shown from the event."""
    if not body.startswith("> "):
        return body
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and not lines[index].strip():
        index += 1
    return "\n".join(lines[index:])


def _message_fields(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields:
    body = clean_text(content.get("body"))
    msgtype = _str(content.get("msgtype"))
    formatted = None
    if content.get("format") == HTML_FORMAT:
        # Imported on the first formatted message, not at start-up.
        from tuichat.matrix.content.formatted_body import parse_formatted_body

        formatted = parse_formatted_body(content.get("formatted_body"), state.member_name)
    highlight = event.get("sender") != viewer.user_id and viewer.mentioned_in(content, body)
    kind = ItemKind.TEXT
    if msgtype == "m.emote":
        kind = ItemKind.EMOTE
    elif msgtype == "m.notice":
        kind, highlight = ItemKind.NOTICE, False
    elif msgtype == "m.location":  # issue 22
        body, formatted = location_body(content), None
    attachment = None
    if msgtype in _ATTACHMENTS:
        attachment = _attachment(msgtype, content, body)
        size = human_size(attachment.size)
        detail = ", ".join(part for part in (attachment.mimetype, size) if part)
        body = f"[{_ATTACHMENTS[msgtype]}] {attachment.name}" + (f" ({detail})" if detail else "")
        voice = voice_body(content) if msgtype == "m.audio" else None  # issue 22
        if voice is not None:
            body = voice
        if attachment.url is None:
            body += " — unavailable"
        formatted = None
    fields: Fields = {"kind": kind, "body": body, "highlight": highlight}
    if attachment is not None:
        fields["attachment"] = attachment
    if formatted is not None:
        fields["formatted"] = formatted
    return fields


def _media(url: object, file: object) -> tuple[str | None, dict[str, Any] | None]:
    """A validated (url, encrypted file) pair from `url` or `file`."""
    if isinstance(file, dict):
        file_url = file.get("url")
        return (file_url, file) if parse_mxc(file_url) else (None, None)
    return (url, None) if parse_mxc(url) else (None, None)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _attachment(msgtype: str, content: dict[str, Any], body: str) -> Attachment:
    info = content.get("info")
    info = info if isinstance(info, dict) else {}
    url, file = _media(content.get("url"), content.get("file"))
    thumbnail_url, thumbnail_file = _media(info.get("thumbnail_url"), info.get("thumbnail_file"))
    name = clean_line(content.get("filename"), max_length=200) or clean_line(body, max_length=200)
    return Attachment(
        msgtype=msgtype,
        name=name or "attachment",
        mimetype=clean_line(info.get("mimetype"), max_length=100),
        size=_int(info.get("size")),
        url=url,
        file=file,
        thumbnail_url=thumbnail_url,
        thumbnail_file=thumbnail_file,
        width=_int(info.get("w")),
        height=_int(info.get("h")),
    )


def _message(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields | None:
    if not content:
        return {"kind": ItemKind.REDACTED, "body": "message deleted"}
    if content.get("msgtype") == "m.key.verification.request":
        return _verification_request(event, content, state, viewer)
    relates = _relates_to(content)
    target = relates.get("event_id")
    if relates.get("rel_type") == "m.replace" and isinstance(target, str):
        new_content = content.get("m.new_content")
        if not isinstance(new_content, dict):
            return None  # an edit without its new content: nothing to apply
        fields = _message_fields(event, new_content, state, viewer)
        fields["relation"] = Relation(RelationKind.EDIT, target)
        return fields
    fields = _message_fields(event, content, state, viewer)
    reply = relates.get("m.in_reply_to")
    parent = reply.get("event_id") if isinstance(reply, dict) else None
    if isinstance(parent, str):
        fields["reply_to"] = parent
        fields["body"] = strip_reply_fallback(fields["body"])
    return fields


def _verification_request(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields:
    """An in-room verification request is shown as Element shows it: who
    asked whom, in one line. Its body is a fallback for clients without
    in-room verification, which the sender's own client must not show."""
    sender, to = event.get("sender"), content.get("to")
    target = state.member_name(to) if isinstance(to, str) else "someone"
    if sender == viewer.user_id:
        body = f"You sent a verification request to {target}"
    elif to == viewer.user_id:
        body = f"{state.member_name(_str(sender))} wants to verify"
    else:
        body = f"{state.member_name(_str(sender))} asked {target} to verify"
    return {"kind": ItemKind.STATE, "body": body}


def _reaction(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields | None:
    relates = _relates_to(content)
    target, key = relates.get("event_id"), relates.get("key")
    if relates.get("rel_type") != "m.annotation" or not isinstance(target, str):
        return None
    key = clean_line(key, max_length=64)
    if not key:
        return None
    return {
        "kind": ItemKind.STATE,
        "body": "",
        "relation": Relation(RelationKind.REACTION, target, key),
    }


def _redaction(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields | None:
    # Room versions up to 10 put `redacts` at the top level, 11 in content.
    target = content.get("redacts") or event.get("redacts")
    if not isinstance(target, str):
        return None
    return {
        "kind": ItemKind.STATE,
        "body": "",
        "relation": Relation(RelationKind.REDACTION, target),
    }


def _member(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields | None:
    target = _str(event.get("state_key"))
    sender = _str(event.get("sender"))
    membership = _str(content.get("membership"))
    unsigned = event.get("unsigned")
    prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
    prev = prev if isinstance(prev, dict) else {}
    prev_membership = _str(prev.get("membership"))
    name = clean_line(content.get("displayname")) or clean_line(target)
    actor = state.member_name(sender) if sender else "someone"
    subject = name
    if membership == "join" and prev_membership == "join":
        old = clean_line(prev.get("displayname"))
        if old and old != name:
            text, action, subject = f"{old} changed their name to {name}", "changed their name", old
        elif not old:
            text, action = f"{clean_line(target)} set their name to {name}", "changed their name"
        else:
            text, action = f"{name} changed their avatar", "changed their avatar"
    elif membership == "join":
        text, action = f"{name} joined", "joined"
    elif membership == "invite":
        text, action = f"{actor} invited {name}", "were invited"
    elif membership == "leave":
        subject = clean_line(prev.get("displayname")) or clean_line(target)
        if sender and sender != target:
            verb = "withdrew the invite for" if prev_membership == "invite" else "removed"
            text = f"{actor} {verb} {subject}"
            action = "had their invite withdrawn" if prev_membership == "invite" else "were removed"
        elif prev_membership == "invite":
            text, action = f"{subject} declined the invite", "declined the invite"
        else:
            text, action = f"{subject} left", "left"
    elif membership == "ban":
        text, action = f"{actor} banned {name}", "were banned"
    elif membership == "knock":
        text, action = f"{name} asked to join", "asked to join"
    else:
        return None
    reason = clean_line(content.get("reason"))
    if reason:
        text += f": {reason}"
    return {"kind": ItemKind.STATE, "body": text, "membership": (action, subject)}


def _state_change(
    describe: Callable[[str, dict[str, Any]], str | None],
) -> Converter:
    def convert(
        event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
    ) -> Fields | None:
        actor = state.member_name(_str(event.get("sender"), "someone"))
        text = describe(actor, content)
        return None if text is None else {"kind": ItemKind.STATE, "body": text}

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
    return f"{actor} created the room{create_suffix(content)}"


def _create(
    event: dict[str, Any], content: dict[str, Any], state: RoomState, viewer: Viewer
) -> Fields | None:
    """The room's creation; an upgraded room's leads to its predecessor."""
    actor = state.member_name(_str(event.get("sender"), "someone"))
    fields: Fields = {"kind": ItemKind.STATE, "body": _describe_create(actor, content)}
    predecessor = predecessor_of(content)
    if predecessor:
        fields["link_room"] = predecessor
    return fields


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
    "m.reaction": _reaction,
    "m.room.redaction": _redaction,
    "m.room.name": _state_change(_describe_name),
    "m.room.topic": _state_change(_describe_topic),
    "m.room.encryption": _state_change(_describe_encryption),
    "m.room.create": _create,
    "m.room.canonical_alias": _state_change(_describe_alias),
    "m.room.history_visibility": _state_change(_describe_history),
    "m.room.join_rules": _state_change(_describe_join_rules),
    # issue 22: polls, stickers, pinned messages, room upgrades
    **OTHER_CONVERTERS,
}


# Relations (in the clear on an encrypted event) whose events never show as
# items of their own: an undecrypted one is no placeholder either, so the
# cached ciphertext of one is hidden after a restart as it was live.
HIDDEN_RELATIONS = frozenset({"m.replace", "m.annotation", "m.reference"})


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
            relates = _relates_to(content)
            target = relates.get("event_id")
            if relates.get("rel_type") in HIDDEN_RELATIONS and isinstance(target, str):
                # An edit, a reaction, or a reference (the steps of an
                # in-room verification, poll answers): not shown on its
                # own, decrypted or not. Nothing to show until it decrypts.
                return TimelineItem(
                    kind=ItemKind.UNDECRYPTABLE,
                    body="",
                    relation=Relation(RelationKind.HIDDEN, target),
                    utd_reason=decryption.reason if decryption else "missing_key",
                    session_id=session_id,
                    **common,
                )
            return TimelineItem(
                kind=ItemKind.UNDECRYPTABLE,
                body="",
                utd_reason=decryption.reason if decryption else "missing_key",
                session_id=session_id,
                # Threads: the relation is in the clear (issue 21).
                **thread_fields(event, content, viewer.user_id, state.member_name),
                **common,
                **viewer.pushed(event, event_type, content, state),
            )
        payload = decryption.payload
        event_type = _str(payload.get("type"))
        inner = payload.get("content")
        outer_relation = content.get("m.relates_to")
        content = inner if isinstance(inner, dict) else {}
        if isinstance(outer_relation, dict) and "m.relates_to" not in content:
            # Relations of encrypted events sit in the clear (spec).
            content = {**content, "m.relates_to": outer_relation}
        common["session_id"] = session_id
        common["trust"] = decryption.trust
        common["key_source"] = decryption.key_source
    converter = CONVERTERS.get(event_type)
    if converter is None:
        fields = unknown_event(event_type, event, content, state)  # issue 22: never dropped
    else:
        fields = converter(event, content, state, viewer)
    if fields is None:
        return None
    fields.update(viewer.pushed(event, event_type, content, state))
    if "relation" not in fields:  # threads (issue 21)
        fields.update(thread_fields(event, content, viewer.user_id, state.member_name))
    return TimelineItem(**common, **fields)
