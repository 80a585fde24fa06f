"""The account's push rules, evaluated here, on decrypted events.

The server evaluates push rules for clear-text events only: in an encrypted
room it sees `m.room.encrypted` and can only say "notify" (or, with a
mentions-only rule, nothing). tuichat evaluates the same rules (the
`m.push_rules` account data, or the spec's server-default rules when the
account has none) on every event it shows, once decrypted, to decide what
counts as unread, what highlights and what rings.

Rules are checked kind by kind (override, content, room, sender, underride)
and, within a kind, user-defined rules before server-default ones (those
whose id starts with "."), `.m.rule.master` first of all. The first enabled
rule whose conditions all hold gives the actions. Remote input: a malformed
rule or condition never raises, it just does not match.

Plain Python; `tuichat.matrix` turns events and room state into the
arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
# The default rules that make every message in a group room notify.
GROUP_RULES = (".m.rule.message", ".m.rule.encrypted")
# Rules matching mentions in the body, kept by older servers: skipped for
# events with `m.mentions` (MSC3952), whose mentions are intentional.
LEGACY_MENTION_RULES = frozenset(
    {".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"}
)
_WORD = "A-Za-z0-9_"
_MAX_SAFE = 2**53 - 1


@dataclass(frozen=True)
class Actions:
    """What a matching rule says to do with an event."""

    notify: bool = False
    highlight: bool = False
    sound: str | None = None
    rule_id: str | None = field(default=None, compare=False)  # which rule matched

    @property
    def rings(self) -> bool:
        """Worth the bell: a highlight, or a rule that asks for a sound
        (direct messages, by the default rules)."""
        return self.notify and (self.highlight or self.sound is not None)


NOTHING = Actions()


@dataclass(frozen=True)
class RoomContext:
    """What conditions need to know of the room the event is in."""

    member_count: int = 0
    display_name: str = ""  # ours, in this room
    sender_level: int = 0  # the sender's power level
    # `notifications` of the power levels: level needed per kind ("room").
    notification_levels: Mapping[str, int] = field(default_factory=dict)


class RoomMode(StrEnum):
    """A room's setting as Element shows it."""

    DEFAULT = "default"  # no rule of its own: the account's rules apply
    ALL = "all"  # a room rule that notifies (with sound)
    MENTIONS = "mentions"  # a room rule that does nothing: mentions and keywords only
    MUTE = "mute"  # an override rule matching the room that does nothing


def split_path(key: str) -> list[str]:
    """A dot-separated property path (`content.m\\.relates_to`) to its parts;
    `\\.` is a literal dot, `\\\\` a backslash, other escapes stay as-is."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(key):
        char = key[index]
        if char == "\\" and index + 1 < len(key) and key[index + 1] in ".\\":
            current.append(key[index + 1])
            index += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


_MISSING = object()


def lookup(event: Mapping[str, Any], key: str) -> Any:
    """The event's property at `key`, or `_MISSING`."""
    value: Any = event
    for part in split_path(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=512)
def _glob(pattern: str, words: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    # Word boundaries: the ends of the value, or a character not in [A-Za-z0-9_].
    body = rf"(?:^|(?<=[^{_WORD}])){body}(?:$|(?=[^{_WORD}]))" if words else rf"\A{body}\Z"
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def glob_match(pattern: str, value: str, *, words: bool = False) -> bool:
    """Glob (`*`, `?`) match, case-insensitive: of the whole value, or with
    `words`, of any substring that starts and ends at a word boundary."""
    return _glob(pattern, words).search(value) is not None


def _plain_value(value: object) -> bool:
    """A value `event_property_is` compares: string, safe integer, boolean
    or null (no floats, no compounds)."""
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -_MAX_SAFE <= value <= _MAX_SAFE


def _same(a: object, b: object) -> bool:
    """Exact equality that does not take True for 1."""
    return type(a) is type(b) and a == b


_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")


def member_count_matches(spec: object, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    match = _COUNT.match(spec)
    if match is None:
        return False
    op, number = match.group(1) or "==", int(match.group(2))
    return {
        "==": count == number,
        "<": count < number,
        ">": count > number,
        "<=": count <= number,
        ">=": count >= number,
    }[op]


def parse_actions(actions: object, rule_id: str | None = None) -> Actions:
    notify = highlight = False
    sound: str | None = None
    for action in actions if isinstance(actions, list) else []:
        if action == "notify":
            notify = True
        elif isinstance(action, dict):
            tweak = action.get("set_tweak")
            if tweak == "highlight":
                highlight = action.get("value", True) is True
            elif tweak == "sound" and isinstance(action.get("value"), str):
                sound = action["value"]
        # "dont_notify", "coalesce": historical, ignored (spec).
    return Actions(notify=notify, highlight=highlight, sound=sound, rule_id=rule_id)


class PushRules:
    """One account's rule set (the `global` scope), ready to evaluate."""

    def __init__(self, user_id: str, ruleset: Mapping[str, Any] | None = None) -> None:
        self.user_id = user_id
        given = ruleset if isinstance(ruleset, Mapping) and ruleset else None
        self.is_default = given is None
        source = given if given is not None else default_ruleset(user_id)
        self.ruleset: dict[str, list[dict[str, Any]]] = {
            kind: _ordered(kind, source.get(kind)) for kind in KINDS
        }

    @classmethod
    def from_account_data(cls, user_id: str, content: object) -> PushRules:
        """From `m.push_rules` content (`{"global": {...}}`); the spec's
        defaults when there is none."""
        scope = content.get("global") if isinstance(content, Mapping) else None
        return cls(user_id, scope if isinstance(scope, Mapping) else None)

    def rules(self, kind: str) -> list[dict[str, Any]]:
        return self.ruleset.get(kind, [])

    def find(self, kind: str, rule_id: str) -> dict[str, Any] | None:
        return next((r for r in self.rules(kind) if r.get("rule_id") == rule_id), None)

    def evaluate(self, event: Mapping[str, Any], room: RoomContext) -> Actions:
        """The actions of the first rule that matches `event` (a decrypted
        event: type, content, sender, room_id, state_key…); nothing for our
        own events."""
        if event.get("sender") == self.user_id:
            return NOTHING
        content = event.get("content")
        has_mentions = isinstance(content, Mapping) and "m.mentions" in content
        for kind in KINDS:
            for rule in self.rules(kind):
                if rule.get("enabled", True) is not True:
                    continue
                rule_id = rule.get("rule_id")
                if has_mentions and rule_id in LEGACY_MENTION_RULES:
                    continue
                if self._matches(kind, rule, event, room):
                    return parse_actions(rule.get("actions"), rule_id)
        return NOTHING

    def _matches(
        self, kind: str, rule: Mapping[str, Any], event: Mapping[str, Any], room: RoomContext
    ) -> bool:
        if kind == "content":
            body = lookup(event, "content.body")
            pattern = rule.get("pattern")
            return (
                isinstance(pattern, str)
                and isinstance(body, str)
                and glob_match(pattern, body, words=True)
            )
        if kind == "room":
            return rule.get("rule_id") == event.get("room_id")
        if kind == "sender":
            return rule.get("rule_id") == event.get("sender")
        conditions = rule.get("conditions", [])
        if not isinstance(conditions, list):
            return False
        return all(self._condition(c, event, room) for c in conditions)

    def _condition(self, condition: object, event: Mapping[str, Any], room: RoomContext) -> bool:
        if not isinstance(condition, Mapping):
            return False
        kind = condition.get("kind")
        key = condition.get("key")
        if kind == "event_match":
            pattern = condition.get("pattern")
            if not isinstance(key, str) or not isinstance(pattern, str):
                return False
            value = lookup(event, key)
            return isinstance(value, str) and glob_match(
                pattern, value, words=key == "content.body"
            )
        if kind == "event_property_is":
            if not isinstance(key, str) or "value" not in condition:
                return False
            wanted, value = condition["value"], lookup(event, key)
            return _plain_value(wanted) and _plain_value(value) and _same(value, wanted)
        if kind == "event_property_contains":
            if not isinstance(key, str) or "value" not in condition:
                return False
            wanted, values = condition["value"], lookup(event, key)
            return (
                _plain_value(wanted)
                and isinstance(values, list)
                and any(_plain_value(v) and _same(v, wanted) for v in values)
            )
        if kind == "contains_display_name":
            body = lookup(event, "content.body")
            name = room.display_name
            return bool(name) and isinstance(body, str) and _has_word(name, body)
        if kind == "room_member_count":
            return member_count_matches(condition.get("is"), room.member_count)
        if kind == "sender_notification_permission":
            if not isinstance(key, str):
                return False
            needed = room.notification_levels.get(key, 50)
            return room.sender_level >= needed
        return False  # unrecognised: never matches (spec)

    # -- a room's setting, as Element reads and writes it -----------------------------

    def room_mode(self, room_id: str) -> RoomMode:
        override = self.find("override", room_id)
        enabled = override is not None and override.get("enabled", True) is True
        if enabled and override is not None and is_mute_rule(override, room_id):
            return RoomMode.MUTE
        rule = self.find("room", room_id)
        if rule is None or rule.get("enabled", True) is not True:
            return RoomMode.DEFAULT
        return RoomMode.ALL if parse_actions(rule.get("actions")).notify else RoomMode.MENTIONS

    def room_settings(self) -> dict[str, str]:
        """Every room with a setting of its own: room id -> `RoomMode` value."""
        rooms = {r.get("rule_id") for r in self.rules("override") + self.rules("room")}
        modes = {}
        for room_id in rooms:
            if isinstance(room_id, str) and room_id.startswith("!"):
                mode = self.room_mode(room_id)
                if mode is not RoomMode.DEFAULT:
                    modes[room_id] = mode.value
        return modes

    def group_default(self) -> str:
        """The account's default for group rooms, as Element's "Messages
        in group chats" shows it: "all" if `.m.rule.message` or
        `.m.rule.encrypted` notify, else "mentions"."""
        for rule_id in GROUP_RULES:
            rule = self.find("underride", rule_id)
            if (
                rule is not None
                and rule.get("enabled", True) is True
                and parse_actions(rule.get("actions")).notify
            ):
                return "all"
        return "mentions"

    def keywords(self) -> list[str]:
        """The patterns of the user's own content rules."""
        return [
            r["pattern"]
            for r in self.rules("content")
            if isinstance(r.get("pattern"), str) and not str(r.get("rule_id", "")).startswith(".")
        ]


def is_mute_rule(rule: Mapping[str, Any], room_id: str) -> bool:
    """An override rule that silences exactly one room: one `event_match`
    on `room_id`, no notify."""
    conditions = rule.get("conditions")
    return (
        not parse_actions(rule.get("actions")).notify
        and isinstance(conditions, list)
        and len(conditions) == 1
        and isinstance(conditions[0], Mapping)
        and conditions[0].get("kind") == "event_match"
        and conditions[0].get("key") == "room_id"
        and conditions[0].get("pattern") == room_id
    )


def _has_word(text: str, body: str) -> bool:
    """Whether `text` (taken literally) is in `body`, case-insensitively,
    between word boundaries."""
    pattern = rf"(?:^|(?<=[^{_WORD}])){re.escape(text)}(?:$|(?=[^{_WORD}]))"
    return re.search(pattern, body, re.IGNORECASE) is not None


def _ordered(kind: str, rules: object) -> list[dict[str, Any]]:
    """Valid rules of one kind in priority order: `.m.rule.master` first,
    then user-defined rules, then server-default ones, each in given order."""
    valid = [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []
    if kind not in ("override", "underride"):
        return valid

    def rank(rule: dict[str, Any]) -> int:
        rule_id = str(rule.get("rule_id", ""))
        if rule_id == ".m.rule.master":
            return 0
        return 2 if rule_id.startswith(".") else 1

    return sorted(valid, key=rank)  # stable: keeps the given order within a rank


def _rule(
    rule_id: str, conditions: Iterable[dict[str, Any]], actions: list[Any], *, enabled: bool = True
) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": enabled,
        "conditions": list(conditions),
        "actions": actions,
    }


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


_SOUND = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def default_ruleset(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The spec's server-default rules for `user_id` (with the legacy body
    mention rules that servers still send, which MSC3952 skips for events
    carrying `m.mentions`)."""
    localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
    room_mention_allowed = {"kind": "sender_notification_permission", "key": "room"}
    override = [
        _rule(".m.rule.master", [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", user_id),
            ],
            ["notify", _SOUND],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": user_id,
                }
            ],
            ["notify", _SOUND, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.contains_display_name",
            [{"kind": "contains_display_name"}],
            ["notify", _SOUND, _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                room_mention_allowed,
            ],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.roomnotif",
            [room_mention_allowed, _match("content.body", "@room")],
            ["notify", _HIGHLIGHT],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", _HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ]
    content = [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": localpart,
            "actions": ["notify", _SOUND, _HIGHLIGHT],
        }
    ]
    two = {"kind": "room_member_count", "is": "2"}
    underride = [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [two, _match("type", "m.room.encrypted")],
            ["notify", _SOUND],
        ),
        _rule(
            ".m.rule.room_one_to_one", [two, _match("type", "m.room.message")], ["notify", _SOUND]
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ]
    return {
        "override": override,
        "content": content,
        "room": [],
        "sender": [],
        "underride": underride,
    }


# -- rules tuichat writes, as Element writes them --------------------------------------

KEYWORD_ACTIONS: list[Any] = ["notify", dict(_SOUND), dict(_HIGHLIGHT)]


def mute_rule(room_id: str) -> dict[str, Any]:
    """The override rule that mutes a room (body for `PUT .../override/<room id>`)."""
    return {"conditions": [_match("room_id", room_id)], "actions": []}


def room_rule(mode: RoomMode) -> dict[str, Any]:
    """The room rule (`PUT .../room/<room id>`) for ALL or MENTIONS."""
    if mode is RoomMode.ALL:
        return {"actions": ["notify", dict(_SOUND)]}
    return {"actions": []}


def keyword_rule(word: str) -> dict[str, Any]:
    """The content rule (`PUT .../content/<word>`) for a keyword."""
    return {"pattern": word, "actions": list(KEYWORD_ACTIONS)}
