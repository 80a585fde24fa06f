"""The push-rule evaluator against the spec's examples and default rules."""

from __future__ import annotations

from typing import Any

import pytest

from tuichat.model.push_rules import (
    NOTHING,
    PushRules,
    RoomContext,
    RoomMode,
    glob_match,
    keyword_rule,
    lookup,
    member_count_matches,
    mute_rule,
    room_rule,
    split_path,
)

ME = "@alice:example.org"
ROOM = "!room:example.org"
GROUP = RoomContext(member_count=5, display_name="Alice Liddell", sender_level=0)
DM = RoomContext(member_count=2, display_name="Alice Liddell", sender_level=0)
ADMIN = RoomContext(member_count=5, display_name="Alice", sender_level=100)


def message(body: str, sender: str = "@bob:example.org", **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": sender,
        "room_id": ROOM,
        "event_id": "$e",
        "content": {"msgtype": "m.text", "body": body, **content},
    }


# -- the spec's examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "matches"),
    [("Lunch plans", True), ("LUNCH", True), (" lunch", False), ("lunc", False)],
)
def test_event_match_topic_example(value: str, matches: bool) -> None:
    assert glob_match("lunc?*", value) is matches


@pytest.mark.parametrize(
    ("body", "matches"),
    [
        ("An example event.", True),
        ("exple", True),
        ("An exciting triple-whammy", True),
        ("counterexample", False),
        ("examples", False),
        ("example_x", False),
    ],
)
def test_event_match_body_is_by_word(body: str, matches: bool) -> None:
    assert glob_match("ex*ple", body, words=True) is matches


def test_event_match_on_missing_or_non_string_never_matches() -> None:
    rules = PushRules(
        ME,
        {
            "override": [
                {
                    "rule_id": "x",
                    "conditions": [_match("content.topic", "*")],
                    "actions": ["notify"],
                }
            ]
        },
    )
    assert rules.evaluate({"type": "t", "content": {"topic": None}}, GROUP) == NOTHING
    assert rules.evaluate({"type": "t", "content": {}}, GROUP) == NOTHING
    assert rules.evaluate({"type": "t", "content": {"topic": ""}}, GROUP).notify


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _one_override(condition: dict[str, Any]) -> PushRules:
    return PushRules(
        ME, {"override": [{"rule_id": "x", "conditions": [condition], "actions": ["notify"]}]}
    )


@pytest.mark.parametrize(
    ("federate", "matches"), [(True, True), ("true", False), (1, False), (None, False)]
)
def test_event_property_is_federate_example(federate: object, matches: bool) -> None:
    rules = _one_override(
        {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    )
    event = {"type": "m.room.create", "state_key": "", "content": {"m.federate": federate}}
    assert rules.evaluate(event, GROUP).notify is matches


def test_event_property_is_does_not_take_true_for_one() -> None:
    rules = _one_override({"kind": "event_property_is", "key": "content.n", "value": 1})
    assert rules.evaluate({"content": {"n": 1}}, GROUP).notify
    assert not rules.evaluate({"content": {"n": True}}, GROUP).notify
    assert not rules.evaluate({"content": {"n": 1.0}}, GROUP).notify


@pytest.mark.parametrize(
    ("aliases", "matches"),
    [
        (["#somewhere:example.org", "#myroom:example.com"], True),
        ([":example.com"], False),
        ("#myroom:example.com", False),  # not an array
        ([["#myroom:example.com"]], False),  # compound values are ignored
    ],
)
def test_event_property_contains_alias_example(aliases: object, matches: bool) -> None:
    rules = _one_override(
        {
            "kind": "event_property_contains",
            "key": "content.alt_aliases",
            "value": "#myroom:example.com",
        }
    )
    event = {"type": "m.room.canonical_alias", "content": {"alt_aliases": aliases}}
    assert rules.evaluate(event, GROUP).notify is matches


def test_dot_separated_paths_with_escapes() -> None:
    assert split_path("content.m\\.relates_to") == ["content", "m.relates_to"]
    assert split_path("content.m\\\\foo") == ["content", "m\\foo"]
    assert split_path("content.m\\x") == ["content", "m\\x"]
    event = {"content": {"m.relates_to": {"rel_type": "m.replace"}}}
    assert lookup(event, "content.m\\.relates_to.rel_type") == "m.replace"


@pytest.mark.parametrize(
    ("spec", "count", "matches"),
    [
        ("2", 2, True),
        ("==2", 3, False),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        (">=3", 3, True),
        ("<=3", 4, False),
        ("x3", 3, False),
        (3, 3, False),
    ],
)
def test_room_member_count(spec: object, count: int, matches: bool) -> None:
    assert member_count_matches(spec, count) is matches


def test_unrecognised_condition_disables_the_rule() -> None:
    rules = PushRules(
        ME,
        {
            "override": [
                {"rule_id": "a", "conditions": [{"kind": "unknown_thing"}], "actions": ["notify"]},
            ],
        },
    )
    assert rules.evaluate(message("hi"), GROUP) == NOTHING


# -- the default rules ---------------------------------------------------------------------

DEFAULTS = PushRules(ME)


@pytest.mark.parametrize(
    ("event", "room", "rule", "notify", "highlight", "sound"),
    [
        (message("hello"), GROUP, ".m.rule.message", True, False, None),
        (message("hello"), DM, ".m.rule.room_one_to_one", True, False, "default"),
        (
            message("note", msgtype="m.notice"),
            GROUP,
            ".m.rule.suppress_notices",
            False,
            False,
            None,
        ),
        (
            message("hi", **{"m.mentions": {"user_ids": [ME]}}),
            GROUP,
            ".m.rule.is_user_mention",
            True,
            True,
            "default",
        ),
        # m.mentions present: the body is not searched (MSC3952).
        (message("hi alice", **{"m.mentions": {}}), GROUP, ".m.rule.message", True, False, None),
        (message("hi alice!"), GROUP, ".m.rule.contains_user_name", True, True, "default"),
        (
            message("ask Alice Liddell"),
            GROUP,
            ".m.rule.contains_display_name",
            True,
            True,
            "default",
        ),
        (message("malice aforethought"), GROUP, ".m.rule.message", True, False, None),
        # @room: by power level only.
        (
            message("@room hi", **{"m.mentions": {"room": True}}),
            GROUP,
            ".m.rule.message",
            True,
            False,
            None,
        ),
        (
            message("@room hi", **{"m.mentions": {"room": True}}),
            ADMIN,
            ".m.rule.is_room_mention",
            True,
            True,
            None,
        ),
        (message("@room hi"), ADMIN, ".m.rule.roomnotif", True, True, None),
        (message("@room hi"), GROUP, ".m.rule.message", True, False, None),
        (
            {"type": "m.room.encrypted", "sender": "@bob:example.org", "content": {}},
            GROUP,
            ".m.rule.encrypted",
            True,
            False,
            None,
        ),
        (
            {"type": "m.room.encrypted", "sender": "@bob:example.org", "content": {}},
            DM,
            ".m.rule.encrypted_room_one_to_one",
            True,
            False,
            "default",
        ),
        (
            {"type": "m.reaction", "sender": "@bob:example.org", "content": {}},
            GROUP,
            ".m.rule.reaction",
            False,
            False,
            None,
        ),
        (
            message("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
            GROUP,
            ".m.rule.suppress_edits",
            False,
            False,
            None,
        ),
        (
            {
                "type": "m.room.member",
                "state_key": ME,
                "sender": "@bob:example.org",
                "content": {"membership": "invite"},
            },
            GROUP,
            ".m.rule.invite_for_me",
            True,
            False,
            "default",
        ),
        (
            {
                "type": "m.room.member",
                "state_key": "@carol:x",
                "sender": "@bob:example.org",
                "content": {"membership": "join"},
            },
            GROUP,
            ".m.rule.member_event",
            False,
            False,
            None,
        ),
        (
            {
                "type": "m.room.tombstone",
                "state_key": "",
                "sender": "@bob:example.org",
                "content": {},
            },
            GROUP,
            ".m.rule.tombstone",
            True,
            True,
            None,
        ),
        (
            {"type": "m.call.invite", "sender": "@bob:example.org", "content": {}},
            GROUP,
            ".m.rule.call",
            True,
            False,
            "ring",
        ),
        (
            {"type": "m.room.topic", "state_key": "", "sender": "@bob:example.org", "content": {}},
            GROUP,
            None,
            False,
            False,
            None,
        ),
    ],
)
def test_default_rules(
    event: dict[str, Any],
    room: RoomContext,
    rule: str | None,
    notify: bool,
    highlight: bool,
    sound: str | None,
) -> None:
    actions = DEFAULTS.evaluate(event, room)
    assert (actions.rule_id, actions.notify, actions.highlight, actions.sound) == (
        rule,
        notify,
        highlight,
        sound,
    )


def test_own_events_never_notify() -> None:
    assert (
        DEFAULTS.evaluate(message("alice", sender=ME, **{"m.mentions": {"user_ids": [ME]}}), GROUP)
        == NOTHING
    )


def test_room_mention_needs_the_level_the_room_asks_for() -> None:
    moderators = RoomContext(member_count=5, sender_level=50, notification_levels={"room": 75})
    event = message("@room", **{"m.mentions": {"room": True}})
    assert not DEFAULTS.evaluate(event, moderators).highlight
    assert DEFAULTS.evaluate(event, RoomContext(member_count=5, sender_level=50)).highlight


# -- user rules and their order ---------------------------------------------------------------


def _with(**extra: list[dict[str, Any]]) -> PushRules:
    ruleset = PushRules(ME).ruleset
    merged = {kind: list(extra.get(kind, [])) + ruleset[kind] for kind in ruleset}
    return PushRules(ME, merged)


def test_master_rule_silences_everything_when_enabled() -> None:
    rules = PushRules(ME)
    rules.find("override", ".m.rule.master")["enabled"] = True  # type: ignore[index]
    assert rules.evaluate(message("alice", **{"m.mentions": {"user_ids": [ME]}}), GROUP) == NOTHING


def test_muted_room_does_nothing_even_for_mentions() -> None:
    rules = _with(override=[{"rule_id": ROOM, **mute_rule(ROOM)}])
    assert rules.room_mode(ROOM) is RoomMode.MUTE
    assert rules.evaluate(message("alice", **{"m.mentions": {"user_ids": [ME]}}), GROUP) == NOTHING
    assert rules.evaluate({**message("x"), "room_id": "!other:x"}, GROUP).notify


def test_mentions_only_room_keeps_mentions_and_keywords() -> None:
    rules = _with(
        room=[{"rule_id": ROOM, **room_rule(RoomMode.MENTIONS)}],
        content=[{"rule_id": "tea", **keyword_rule("tea")}],
    )
    assert rules.room_mode(ROOM) is RoomMode.MENTIONS
    assert rules.evaluate(message("chatter"), GROUP) == NOTHING
    assert rules.evaluate(message("chatter"), DM) == NOTHING
    assert rules.evaluate(message("hi", **{"m.mentions": {"user_ids": [ME]}}), GROUP).highlight
    keyword = rules.evaluate(message("Time for TEA?"), GROUP)
    assert (keyword.rule_id, keyword.highlight) == ("tea", True)
    assert rules.keywords() == ["tea"]


def test_all_messages_room_rule_rings() -> None:
    rules = _with(room=[{"rule_id": ROOM, **room_rule(RoomMode.ALL)}])
    assert rules.room_mode(ROOM) is RoomMode.ALL
    assert rules.evaluate(message("chatter"), GROUP).rings
    assert not DEFAULTS.evaluate(message("chatter"), GROUP).rings


def test_group_default_follows_the_message_rules() -> None:
    assert DEFAULTS.group_default() == "all"
    ruleset = PushRules(ME).ruleset
    for rule in ruleset["underride"]:
        if rule["rule_id"] in (".m.rule.message", ".m.rule.encrypted"):
            rule["actions"] = []
    quiet = PushRules(ME, ruleset)
    assert quiet.group_default() == "mentions"
    assert quiet.evaluate(message("chatter"), GROUP) == NOTHING
    assert quiet.evaluate(message("chatter"), DM).rings  # two members: still the 1:1 rule


def test_legacy_dont_notify_is_ignored() -> None:
    rules = _with(room=[{"rule_id": ROOM, "actions": ["dont_notify"]}])
    assert rules.room_mode(ROOM) is RoomMode.MENTIONS
    assert rules.evaluate(message("chatter"), GROUP) == NOTHING


def test_sender_rule_and_disabled_rules() -> None:
    rules = _with(
        sender=[{"rule_id": "@bob:example.org", "actions": []}],
        override=[{"rule_id": "off", "enabled": False, "conditions": [], "actions": ["notify"]}],
    )
    assert rules.evaluate(message("chatter"), GROUP) == NOTHING
    assert rules.evaluate(message("chatter", sender="@carol:x"), GROUP).notify


def test_user_override_rules_come_before_server_defaults() -> None:
    custom = {
        "rule_id": "loud-notices",
        "conditions": [_match("content.msgtype", "m.notice")],
        "actions": ["notify"],
    }
    ruleset = PushRules(ME).ruleset
    ruleset["override"] = ruleset["override"] + [custom]  # listed last by the server
    assert (
        PushRules(ME, ruleset).evaluate(message("n", msgtype="m.notice"), GROUP).rule_id
        == "loud-notices"
    )


def test_highlight_tweak_false_is_no_highlight() -> None:
    rules = _with(
        override=[
            {
                "rule_id": "x",
                "conditions": [],
                "actions": ["notify", {"set_tweak": "highlight", "value": False}],
            }
        ]
    )
    assert not rules.evaluate(message("x"), GROUP).highlight


def test_malformed_rulesets_do_not_raise() -> None:
    for ruleset in [
        {"override": "x"},
        {"override": [None, {"conditions": "x"}, {"conditions": [None]}]},
        {"content": [{"pattern": 3}]},
    ]:
        PushRules(ME, ruleset).evaluate(message("x"), GROUP)  # type: ignore[arg-type]
    assert PushRules.from_account_data(ME, {"global": {}}).is_default
    assert PushRules.from_account_data(ME, None).is_default
