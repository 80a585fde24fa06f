"""Who may do what in a room, read from its `m.room.power_levels` content.

Plain Python over the event content, so a room command is checked here
before it is sent: the person is told in a sentence why it would be refused,
and the server's own refusal is told the same way. The defaults are the
spec's: without a power-levels event the room's creator has 100 and everyone
else 0, and every action is open to level 0 except as the spec lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What the spec says when the key is missing from a power-levels event.
_ACTION_DEFAULTS = {"invite": 0, "kick": 50, "ban": 50, "redact": 50}
_STATE_DEFAULT = 50
_EVENTS_DEFAULT = 0
_USERS_DEFAULT = 0
# What a level can be (canonical JSON's integer range).
MAX_LEVEL = 2**53 - 1
# A privileged creator's level: above any level an event can give.
CREATOR_LEVEL = MAX_LEVEL + 1


def creators_are_privileged(room_version: str) -> bool:
    """Whether the room's creators have infinite power (room version 12 and
    later, and its unstable name)."""
    if room_version == "org.matrix.hydra.11":
        return True
    return room_version.isdigit() and int(room_version) >= 12


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


@dataclass(frozen=True)
class PowerLevels:
    """A room's power levels; `content` None means the room has no
    power-levels event (then `creator` has 100)."""

    content: dict[str, Any] | None
    creator: str = ""
    # Room version 12 on (MSC4289): the creators outrank every level.
    privileged_creators: frozenset[str] = frozenset()

    def user_level(self, user_id: str) -> int:
        if user_id in self.privileged_creators:
            return CREATOR_LEVEL
        if self.content is None:
            return 100 if user_id == self.creator else 0
        users = self.content.get("users")
        default = _int(self.content.get("users_default"), _USERS_DEFAULT)
        if isinstance(users, dict) and user_id in users:
            return _int(users[user_id], default)
        return default

    def action_level(self, action: str) -> int:
        """invite, kick, ban or redact."""
        if self.content is None:
            return 0
        return _int(self.content.get(action), _ACTION_DEFAULTS[action])

    def state_level(self, event_type: str) -> int:
        if self.content is None:
            return 0
        events = self.content.get("events")
        default = _int(self.content.get("state_default"), _STATE_DEFAULT)
        if isinstance(events, dict) and event_type in events:
            return _int(events[event_type], default)
        return default

    def event_level(self, event_type: str) -> int:
        if self.content is None:
            return 0
        events = self.content.get("events")
        default = _int(self.content.get("events_default"), _EVENTS_DEFAULT)
        if isinstance(events, dict) and event_type in events:
            return _int(events[event_type], default)
        return default

    def members_with_levels(self) -> dict[str, int]:
        """Users named in the event with their levels (creator alone when
        there is no event)."""
        if self.content is None:
            return {self.creator: 100} if self.creator else {}
        users = self.content.get("users")
        if not isinstance(users, dict):
            return {}
        return {u: _int(v, 0) for u, v in users.items() if isinstance(u, str)}


# -- the checks: None when allowed, else the sentence that says why not ------------------

_STATE_WHAT = {
    "m.room.name": "change the room's name",
    "m.room.topic": "change the topic",
    "m.room.encryption": "turn on encryption",
    "m.room.power_levels": "change power levels",
    "m.room.history_visibility": "change who can read the history",
    "m.room.join_rules": "change who can join",
    "m.space.child": "add rooms to this space",
    "m.room.pinned_events": "pin messages",
}


def _shown(level: int) -> str:
    return "creator" if level == CREATOR_LEVEL else str(level)


def _need(what: str, needed: int, have: int) -> str:
    return f"You cannot {what} here: that needs power level {needed}, you have {_shown(have)}."


def check_state(levels: PowerLevels, user_id: str, event_type: str) -> str | None:
    have, needed = levels.user_level(user_id), levels.state_level(event_type)
    if have >= needed:
        return None
    return _need(_STATE_WHAT.get(event_type, f"send {event_type}"), needed, have)


def check_member_action(levels: PowerLevels, user_id: str, action: str, target: str) -> str | None:
    """invite, kick, ban or unban (unban needs the ban level) of `target`."""
    have = levels.user_level(user_id)
    needed = levels.action_level("ban" if action == "unban" else action)
    if have < needed:
        return _need(f"{action} people", needed, have)
    if action in ("kick", "ban", "unban") and target != user_id:
        theirs = levels.user_level(target)
        if theirs >= have:
            return (
                f"You cannot {action} {target}: their power level ({_shown(theirs)}) "
                f"is not below yours ({_shown(have)})."
            )
    return None


def check_set_level(levels: PowerLevels, user_id: str, target: str, level: int) -> str | None:
    """Setting `target`'s power level to `level`."""
    problem = check_state(levels, user_id, "m.room.power_levels")
    if problem is not None:
        return problem
    have = levels.user_level(user_id)
    if level > have:
        return f"You cannot give power level {level}: it is above your own ({have})."
    theirs = levels.user_level(target)
    if target in levels.privileged_creators:
        return f"{target} created the room: their power cannot be changed."
    if target != user_id and theirs >= have:
        return (
            f"You cannot change {target}'s power level: theirs ({_shown(theirs)}) "
            f"is not below yours ({_shown(have)})."
        )
    return None


def with_user_level(content: dict[str, Any] | None, target: str, level: int) -> dict[str, Any]:
    """The power-levels content to send to give `target` `level` (the
    users_default removes the entry)."""
    new = dict(content or {})
    users = dict(new.get("users") or {}) if isinstance(new.get("users"), dict) else {}
    if level == _int(new.get("users_default"), _USERS_DEFAULT):
        users.pop(target, None)
    else:
        users[target] = level
    new["users"] = users
    return new
