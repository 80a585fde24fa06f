"""Generated events, well-formed or not, through the event → item → screen
path: never a crash, never a control character or markup on the terminal."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult

from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.types import Decryption
from tuichat.ui.widgets.timeline_view import TimelineView

# What must never reach the terminal: C0 controls but newline (the view
# splits lines itself), DEL, C1 controls, bidi overrides and isolates,
# lone surrogates.
FORBIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ud800-\udfff]"
)

hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "\x1b[2J\x1b[H",
            "\x1b]52;c;ZXZpbA==\x07",
            "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
            "[@click=app.quit]quit[/]",
            "[b]bold[/b] [link=https://x]x[/link]",
            "\u202eevil\u202c",
            "\x9b31m",
            "\ud800 lone",
            "a" * 5_000,
        ]
    ),
)
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), hostile_text
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=5,
)
event_types = st.sampled_from(
    [
        "m.room.message",
        "m.room.member",
        "m.room.name",
        "m.room.topic",
        "m.room.encrypted",
        "m.room.redaction",
        "m.reaction",
        "m.room.create",
        "org.example.unknown",
    ]
)
msgtypes = st.sampled_from(
    ["m.text", "m.emote", "m.notice", "m.image", "m.file", "m.unknown", "", None, 5]
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    content: Any = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"msgtype": msgtypes, "body": json_value},
                optional={
                    "formatted_body": hostile_text,
                    "format": st.just("org.matrix.custom.html"),
                    "displayname": json_value,
                    "membership": st.sampled_from(["join", "leave", "invite", "ban", 3]),
                    "name": json_value,
                    "topic": json_value,
                    "m.mentions": json_value,
                },
            ),
            json_value,
        )
    )
    event: dict[str, Any] = {
        "type": draw(st.one_of(event_types, json_value)),
        "content": content,
        "sender": draw(st.one_of(st.just("@mallory:x"), json_leaf)),
        "event_id": draw(st.one_of(st.just("$e"), json_leaf)),
        "origin_server_ts": draw(st.one_of(st.integers(), json_leaf)),
    }
    if draw(st.booleans()):
        event["state_key"] = draw(st.one_of(st.just("@mallory:x"), json_leaf))
    if draw(st.booleans()):
        event["unsigned"] = draw(json_value)
    return event


def _room() -> RoomState:
    state = RoomState("!r:x")
    state.apply(
        {
            "type": "m.room.member",
            "state_key": "@mallory:x",
            "sender": "@mallory:x",
            "content": {"membership": "join", "displayname": "\x1b[31m[b]Mallory\u202e"},
        }
    )
    return state


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelineView()


async def test_ten_thousand_generated_events_render_safely() -> None:
    state, viewer = _room(), Viewer("@me:x", "Me")
    app = Host()
    async with app.run_test(size=(100, 30)):
        view = app.query_one(TimelineView)
        view._width = 100  # what the strips are built for

        @settings(
            max_examples=10_000,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(events(), st.booleans())
        def check(event: dict[str, Any], as_decrypted: bool) -> None:
            decryption = None
            if as_decrypted and isinstance(event.get("content"), dict):
                decryption = Decryption(
                    {"type": event.get("type"), "content": event["content"]}, trust="unverified"
                )
                event = {**event, "type": "m.room.encrypted", "content": {"session_id": "s"}}
            item = to_item(event, state, viewer, decryption)
            if item is None:
                return
            for text in (item.body, item.sender, item.sender_name):
                assert not FORBIDDEN.search(text), repr(text)
            for strip in view._build_strips(item):
                assert not FORBIDDEN.search(strip.text), repr(strip.text)
                for segment in strip:
                    style = segment.style
                    assert not (style and style.meta and "@click" in style.meta)
                    assert not (style and style.link)

        check()


HOSTILE_KEY = "@\x1b]52;c;ZXZpbA==\x07\x1b[2J\u202eevil:x"


def _member(state_key: str, displayname: str | None, membership: str = "join") -> dict[str, Any]:
    content: dict[str, Any] = {"membership": membership}
    if displayname is not None:
        content["displayname"] = displayname
    return {
        "type": "m.room.member",
        "state_key": state_key,
        "sender": state_key,
        "content": content,
    }


def test_a_member_without_a_display_name_is_named_by_the_cleaned_state_key() -> None:
    state = RoomState("!r:x")
    state.apply(_member(HOSTILE_KEY, None, "invite"))
    name = state.member_name(HOSTILE_KEY)
    assert not FORBIDDEN.search(name), repr(name)
    assert "␛]52" in name  # shown, made visible
    # The room is named after it (no name, no alias): the name is clean too.
    assert not FORBIDDEN.search(state.display_name("@me:x"))


def test_disambiguated_member_names_carry_the_cleaned_state_key() -> None:
    state = RoomState("!r:x")
    state.apply(_member("@mallory:x", "Alice"))
    state.apply(_member(HOSTILE_KEY, "Alice"))
    name = state.member_name(HOSTILE_KEY)
    assert name.startswith("Alice (") and not FORBIDDEN.search(name), repr(name)


def test_a_first_display_name_names_the_cleaned_target() -> None:
    state = RoomState("!r:x")
    event = _member(HOSTILE_KEY, "Mallory")
    event["unsigned"] = {"prev_content": {"membership": "join"}}
    event["event_id"] = "$e"
    event["origin_server_ts"] = 1
    item = to_item(event, state, Viewer("@me:x", "Me"))
    assert item is not None and "set their name to Mallory" in item.body
    assert not FORBIDDEN.search(item.body), repr(item.body)
