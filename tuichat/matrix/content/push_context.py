"""What the push-rule evaluator needs of a room, read from its state, and
the evaluation of one (decrypted) event for `convert.to_item`.

The rules themselves are evaluated by `tuichat.model.push_rules`; this
module builds its `RoomContext` from `RoomState`: the joined member count,
our display name in the room, the sender's power level and the levels the
room asks for notifications such as `@room`.
"""

from __future__ import annotations

from typing import Any

from tuichat.matrix.content.room_state import RoomState
from tuichat.model.push_rules import Actions, PushRules, RoomContext

# Creators in rooms whose power levels cannot lower them (room version 12).
_CREATOR_LEVEL = 2**53 - 1


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def sender_level(state: RoomState, sender: str) -> int:
    """The sender's power level: from `m.room.power_levels`, or, without
    one, 100 for the room's creator and 0 for everyone else (spec)."""
    create_event = state.events.get(("m.room.create", ""))
    create = create_event.get("content") if isinstance(create_event, dict) else None
    create = create if isinstance(create, dict) else {}
    creator = create_event.get("sender") if isinstance(create_event, dict) else None
    if create.get("room_version") in ("12",) or isinstance(create.get("additional_creators"), list):
        creators = {
            creator,
            *[c for c in create.get("additional_creators") or [] if isinstance(c, str)],
        }
        if sender in creators:
            return _CREATOR_LEVEL
    if ("m.room.power_levels", "") not in state.events:
        legacy_creator = create.get("creator", creator)
        return 100 if sender == legacy_creator else 0
    levels = state.content("m.room.power_levels")
    users = levels.get("users")
    default = _int(levels.get("users_default"), 0)
    if isinstance(users, dict) and sender in users:
        return _int(users[sender], default)
    return default


def room_context(
    state: RoomState, sender: str, own_user_id: str, fallback_name: str
) -> RoomContext:
    joined, _invited = state.member_counts()
    own = state.content("m.room.member", own_user_id).get("displayname")
    notifications = state.content("m.room.power_levels").get("notifications")
    levels = (
        {k: v for k, v in notifications.items() if isinstance(v, int) and not isinstance(v, bool)}
        if isinstance(notifications, dict)
        else {}
    )
    return RoomContext(
        member_count=joined,
        display_name=own if isinstance(own, str) and own else fallback_name,
        sender_level=sender_level(state, sender),
        notification_levels=levels,
    )


def evaluate(
    rules: PushRules,
    event: dict[str, Any],
    event_type: str,
    content: dict[str, Any],
    state: RoomState,
    fallback_name: str,
) -> Actions:
    """The actions for `event` as shown: of its decrypted type and content
    when it was decrypted (`event_type`, `content`), else as it came."""
    sender = event.get("sender")
    if not isinstance(sender, str):
        return Actions()
    shown: dict[str, Any] = {
        "type": event_type,
        "content": content,
        "sender": sender,
        "room_id": state.room_id,
        "event_id": event.get("event_id"),
    }
    if "state_key" in event:
        shown["state_key"] = event["state_key"]
    return rules.evaluate(shown, room_context(state, sender, rules.user_id, fallback_name))
