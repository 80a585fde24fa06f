"""Produce the SVG screenshots in screenshots/ (run by `make screenshots`).

Drives the real TuichatApp with Pilot. The data is scripted: domain events
as the Matrix service would emit them are posted to the App, which applies
them to its model exactly as in a live session. No network is used.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.content.convert import Decryption, Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.qr_verification import QrMode, QrPayload
from tuichat.matrix.crypto.sas_emoji import SAS_EMOJI
from tuichat.model.devices import DeviceInfo, Trust
from tuichat.model.events import (
    ConnectionChanged,
    ConnectionState,
    DomainEvent,
    RoomsChanged,
    TimelineAppended,
)
from tuichat.model.items import TimelineItem
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.search_query import SearchCursor, SearchHit, SearchPage, SearchQuery
from tuichat.model.space_tree import SpaceChild
from tuichat.model.verification import Phase, VerificationView
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.devices import DevicesScreen
from tuichat.ui.screens.search import SearchScreen
from tuichat.ui.screens.verification import VerificationDialog

OUT = Path(__file__).resolve().parent.parent / "screenshots"
THEMES = ("tuichat-dark", "tuichat-light", "tuichat-high-contrast", "tuichat-solarized")
ME = "@sam:example.org"
BASE_TS = 1_763_800_000_000  # a fixed moment, so the screenshots are stable

PEOPLE = {
    ME: "Sam",
    "@ada:example.org": "Ada",
    "@grace:example.org": "Grace Hopper",
    "@linus:example.org": "Linus",
}


def _state(room_id: str) -> RoomState:
    state = RoomState(room_id)
    for user, name in PEOPLE.items():
        state.apply(
            {
                "type": "m.room.member",
                "state_key": user,
                "sender": user,
                "content": {"membership": "join", "displayname": name},
            }
        )
    return state


def _message(room_id: str, n: int, sender: str, body: str) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": f"${room_id[1:]}-{n}",
        "sender": sender,
        "origin_server_ts": BASE_TS + n * 47_000,
        "content": {"msgtype": "m.text", "body": body},
    }


def _items(room_id: str, script: list[tuple[str, str, str | None]]) -> list[TimelineItem]:
    """(sender, body, utd reason or None for decrypted) -> items."""
    state = _state(room_id)
    viewer = Viewer(ME, "Sam")
    items = []
    for n, (sender, body, reason) in enumerate(script):
        event = _message(room_id, n, sender, body)
        if reason is not None or body.startswith("🔒"):
            event = {
                **event,
                "type": "m.room.encrypted",
                "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": f"s{n}"},
            }
            decryption = Decryption(
                None
                if reason
                else {"type": "m.room.message", "content": {"msgtype": "m.text", "body": body[2:]}},
                reason,
            )
            item = to_item(event, state, viewer, decryption)
        else:
            item = to_item(event, state, viewer)
        assert item is not None
        items.append(item)
    return items


ROOMS = [
    RoomSummary(
        "!ada", "Ada", is_direct=True, encrypted=True, devices=2, last_activity=BASE_TS + 900_000
    ),
    RoomSummary(
        "!e2ee",
        "E2EE working group",
        encrypted=True,
        devices=9,
        topic="Keys, backups, and why placeholders fill in",
        last_activity=BASE_TS + 800_000,
    ),
    RoomSummary(
        "!tui",
        "#terminal-clients",
        topic="gomuks, iamb, tuichat and friends",
        last_activity=BASE_TS + 700_000,
    ),
    RoomSummary(
        "!grace", "Grace Hopper", is_direct=True, encrypted=True, last_activity=BASE_TS + 600_000
    ),
    RoomSummary(
        "!inv",
        "Compilers & coffee",
        membership=Membership.INVITE,
        encrypted=True,
        inviter="Linus",
        last_activity=BASE_TS + 950_000,
    ),
]

CONVERSATION = [
    ("@ada:example.org", "🔒 Morning! Did the new session pick up the room keys?", None),
    (ME, "🔒 It did. Everything from yesterday decrypted after I imported the export.", None),
    ("@ada:example.org", "🔒 Even the messages from before you added this laptop?", None),
    (
        ME,
        "🔒 Those too: they showed as placeholders and filled in the moment the key "
        "arrived, right where they belong in the timeline.",
        None,
    ),
    ("@ada:example.org", "🔒 Lovely. Let's compare fingerprints later, just to be sure.", None),
]

PLACEHOLDERS = [
    ("@grace:example.org", "🔒 The draft is in the shared folder.", None),
    ("@grace:example.org", "", "missing_key"),
    ("@linus:example.org", "", "unknown_index"),
    ("@grace:example.org", "🔒 Did that come through? I sent it from my old phone.", None),
    (ME, "🔒 Two lines are still locked; tuichat has asked your other devices for the key.", None),
]


def _rich_items(room_id: str) -> list[TimelineItem]:
    """A conversation with formatting, code, a reply, an edit and reactions."""
    state = _state(room_id)
    viewer = Viewer(ME, "Sam")
    html = "org.matrix.custom.html"
    ada, grace = "@ada:example.org", "@grace:example.org"
    script: list[tuple[str, str, dict[str, Any]]] = [
        (
            ada,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "How do I check a session's key?",
                "format": html,
                "formatted_body": "How do I check a <b>session's</b> key?",
            },
        ),
        (
            ME,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "Like this:",
                "format": html,
                "formatted_body": 'Like this:<pre><code class="language-python">'
                "session = store.get(room_id, session_id)\n"
                "if session.first_known_index &gt; index:\n"
                "    request_key(session_id)</code></pre>",
            },
        ),
        (
            grace,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "neat",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$rich-1"}},
            },
        ),
        (
            grace,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "* neat, and the ~~key~~ index check too",
                "m.new_content": {
                    "msgtype": "m.text",
                    "body": "neat, and the index check too",
                    "format": html,
                    "formatted_body": "neat, and the <code>index</code> check too",
                },
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$rich-2"},
            },
        ),
        (
            ada,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$rich-1", "key": "🎉"}},
        ),
        (
            ME,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$rich-1", "key": "🎉"}},
        ),
        (
            ada,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "Docs: https://spec.matrix.org",
                "format": html,
                "formatted_body": 'Docs: <a href="https://spec.matrix.org/latest/">the spec</a>',
            },
        ),
    ]
    items = []
    for n, (sender, event_type, content) in enumerate(script):
        event = {
            "type": event_type,
            "event_id": f"$rich-{n}",
            "sender": sender,
            "origin_server_ts": BASE_TS + 1_000_000 + n * 53_000,
            "content": content,
        }
        item = to_item(event, state, viewer)
        assert item is not None
        items.append(item)
    return items


# Spaces and a poll (issue 22): a space with a nested space, its rooms,
# people apart, and a poll with votes in the space's room.
SPACE_ROOMS = [
    *ROOMS,
    RoomSummary(
        "!club",
        "Compiler club",
        is_space=True,
        space_children=(
            SpaceChild("!teams", order="a", via=("example.org",)),
            SpaceChild("!lunch", order="b", via=("example.org",)),
            SpaceChild("!tui", order="c", via=("example.org",)),
        ),
    ),
    RoomSummary(
        "!teams",
        "Teams",
        is_space=True,
        space_children=(SpaceChild("!parser", via=("example.org",), suggested=True),),
    ),
    RoomSummary("!parser", "Parser team", encrypted=True, unread=3, last_activity=BASE_TS),
    RoomSummary(
        "!lunch",
        "Lunch",
        encrypted=True,
        topic="Where, when, who",
        last_activity=BASE_TS + 990_000,
    ),
]


def _poll_items(room_id: str) -> list[TimelineItem]:
    state = _state(room_id)
    viewer = Viewer(ME, "Sam")
    poll = {
        "type": "org.matrix.msc3381.poll.start",
        "event_id": "$poll",
        "sender": "@ada:example.org",
        "origin_server_ts": BASE_TS,
        "content": {
            "org.matrix.msc3381.poll.start": {
                "question": {"org.matrix.msc1767.text": "Lunch on Friday?"},
                "kind": "org.matrix.msc3381.poll.disclosed",
                "max_selections": 1,
                "answers": [
                    {"id": "ramen", "org.matrix.msc1767.text": "Ramen"},
                    {"id": "tacos", "org.matrix.msc1767.text": "Tacos"},
                    {"id": "salad", "org.matrix.msc1767.text": "Salad bar"},
                ],
            }
        },
    }
    events = [poll, _message(room_id, 1, "@grace:example.org", "Tacos, obviously.")]
    for n, (sender, answer) in enumerate(
        [("@grace:example.org", "tacos"), ("@linus:example.org", "ramen"), (ME, "tacos")], 2
    ):
        events.append(
            {
                "type": "org.matrix.msc3381.poll.response",
                "event_id": f"$vote{n}",
                "sender": sender,
                "origin_server_ts": BASE_TS + n * 47_000,
                "content": {
                    "org.matrix.msc3381.poll.response": {"answers": [answer]},
                    "m.relates_to": {"rel_type": "m.reference", "event_id": "$poll"},
                },
            }
        )
    items = [to_item(event, state, viewer) for event in events]
    return [item for item in items if item is not None]


async def _shoot(
    app: TuichatApp, events: list[DomainEvent], room_id: str, name: str, theme: str | None = None
) -> None:
    async with app.run_test(size=(110, 30)) as pilot:
        if theme is not None:
            app.theme = theme
        await pilot.pause()
        for event in events:
            app.sink(event)
        await pilot.pause()
        app.chat.switch_room(room_id)
        await pilot.pause()
        OUT.mkdir(exist_ok=True)
        svg = app.export_screenshot(title=f"tuichat — {name}")
        (OUT / f"{name}.svg").write_text(svg)
        print(f"wrote screenshots/{name}.svg")


THREAD_SCRIPT = [
    ("@linus:example.org", "Which terminal clients do threads properly?", None),
    ("@ada:example.org", "Element does, on the web and on phones.", "root"),
    ("@grace:example.org", "tuichat now opens them beside the room.", "root"),
    (ME, "And replies land in the thread for everyone, with Element's fallback.", "root"),
    ("@ada:example.org", "Meanwhile: release notes are in the wiki.", None),
    ("@grace:example.org", "The pane even loads older replies as you scroll up.", "root"),
]


def _thread_items(room_id: str) -> list[TimelineItem]:
    """A root in #terminal-clients, replies in its thread, and main chatter."""
    state = _state(room_id)
    viewer = Viewer(ME, "Sam")
    root = f"${room_id[1:]}-0"
    items = []
    for n, (sender, body, where) in enumerate(THREAD_SCRIPT):
        event = _message(room_id, n, sender, body)
        if where == "root":
            event["content"]["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": root},
            }
        item = to_item(event, state, viewer)
        assert item is not None
        items.append(item)
    return items


async def _shoot_thread(app: TuichatApp, events: list[DomainEvent], room_id: str) -> None:
    """A thread open beside the room (wide enough for side by side)."""
    async with app.run_test(size=(150, 32)) as pilot:
        await pilot.pause()
        for event in events:
            app.sink(event)
        await pilot.pause()
        app.chat.switch_room(room_id)
        await pilot.pause()
        app.threads.open(f"${room_id[1:]}-0")
        await pilot.pause()
        OUT.mkdir(exist_ok=True)
        svg = app.export_screenshot(title="tuichat — threads")
        (OUT / "threads.svg").write_text(svg)
        print("wrote screenshots/threads.svg")


DEVICES = [
    DeviceInfo(
        ME,
        "TUICHATDEMO",
        "",
        "qzBz8PzaNwlJdP6ogcvZbj8qPJ2LBVQ3dOjtFGK3ctU",
        "WgrmCTDCGC5kthDOs4pmwK24ZQlDHbHNXXU8f5VFXlw",
        Trust.VERIFIED,
        this_device=True,
    ),
    DeviceInfo(
        ME,
        "ELEMENTWEB",
        "Element on Firefox",
        "lPYo0rdLK0PaB3y2ANXHMtWQNNzGpNDzB1CgwrWmvjE",
        "gyBTUV3kH1r3SvpcOOD5nXy4E6BmZOjUEcWoxQhYE1k",
        Trust.VERIFIED,
        last_seen_ts=BASE_TS + 800_000,
        last_seen_ip="192.0.2.10",
    ),
    DeviceInfo(
        ME,
        "OLDPHONE",
        "Element Android",
        "8ICvZ2c2vBv2UF1nCMmVZ1d84iHd+u5f5+S5d4h+wYc",
        "JUxUVTHdqoFq1zL4RXDbrWMImQmsK8cx7ik4QGChY0I",
        Trust.UNVERIFIED,
        last_seen_ts=BASE_TS - 90_000_000,
        last_seen_ip="198.51.100.7",
    ),
    DeviceInfo(
        ME,
        "STOLENLAPTOP",
        "gomuks",
        "Yv4m2b7QaH4S2K3cFVt5zvRZx9xbmLuJZLtOqmD8bE0",
        "w8KI1XnG0QKQEVq2bfUjkBMXnOdE33lVvO2kRMEX8HY",
        Trust.BLACKLISTED,
        last_seen_ts=BASE_TS - 900_000_000,
        last_seen_ip="203.0.113.99",
    ),
]


# The Search view (Ctrl+F, /search): messages found in the encrypted index.
SEARCH_HITS = [
    ("!ada", "@ada:example.org", "Ada", 60, "The fingerprints match, I checked them on my phone."),
    (
        "!grace",
        "@grace:example.org",
        "Grace",
        3_600,
        "Fingerprint of the new laptop: compare it later?",
    ),
    (
        "!e2ee",
        "@linus:example.org",
        "Linus",
        86_400,
        "Does /devices show the fingerprint of every session?",
    ),
    (
        "!ada",
        "@sam:example.org",
        "you",
        172_800,
        "Let's compare fingerprints over coffee on Friday.",
    ),
]


async def _search_page(query: SearchQuery, cursor: SearchCursor | None) -> SearchPage:
    hits = tuple(
        SearchHit(room, f"$found{n}", sender, name, BASE_TS - ago * 1000, text, True)
        for n, (room, sender, name, ago, text) in enumerate(SEARCH_HITS)
    )
    return SearchPage(hits, None)


def _room_name(room_id: str) -> str:
    return next((room.name for room in ROOMS if room.room_id == room_id), room_id)


async def _shoot_search(app: TuichatApp, events: list[DomainEvent]) -> None:
    async with app.run_test(size=(110, 30)) as pilot:
        for event in events:
            app.sink(event)
        await pilot.pause()
        screen = SearchScreen(
            _search_page, _room_name, lambda: "", text="fingerprint", all_rooms=True
        )
        await app.push_screen(screen)
        for _ in range(50):
            await pilot.pause()
            if len(screen.results) == len(SEARCH_HITS):
                break
        await pilot.pause()
        svg = app.export_screenshot(title="tuichat — search")
        (OUT / "search.svg").write_text(svg)
        print("wrote screenshots/search.svg")


async def _shoot_screen(
    app: TuichatApp,
    screen: Any,
    name: str,
    fill: Any = None,
    size: tuple[int, int] = (110, 30),
) -> None:
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.sink(RoomsChanged(ROOMS))
        await pilot.pause()
        await app.push_screen(screen)
        await pilot.pause()
        if fill is not None:
            fill(screen)
        await pilot.pause()
        svg = app.export_screenshot(title=f"tuichat — {name}")
        (OUT / f"{name}.svg").write_text(svg)
        print(f"wrote screenshots/{name}.svg")


def _device_login() -> None:
    """`tuichat login` over SSH on an OAuth 2.0 API server: the lines the
    device login prints (tuichat.cli_login), the QR code black on white as
    `print_device_login` draws it on a terminal."""
    from rich.console import Console
    from rich.text import Text

    from tuichat.cli_login import device_login_parts
    from tuichat.matrix.account.oauth_grants import DeviceAuthorization

    authorization = DeviceAuthorization(
        device_code="unused",
        user_code="KQWX-RNZD",
        verification_uri="https://account.example.org/link",
        verification_uri_complete="https://account.example.org/link?code=KQWX-RNZD",
        expires_in_s=900,
        interval_s=5,
    )
    console = Console(record=True, width=72, force_terminal=True, color_system="truecolor")
    console.print("$ tuichat login --homeserver example.org", highlight=False)
    before, rows, after = device_login_parts(authorization)
    for printed in before:
        for line in printed.split("\n"):
            console.print(line, highlight=False, markup=False)
    for row in rows:
        console.print(Text("    ") + Text(row, style="#000000 on #ffffff"), highlight=False)
    for printed in after:
        for line in printed.split("\n"):
            console.print(line, highlight=False, markup=False)
    console.print("Waiting for approval… 14:52 left", highlight=False)
    svg = console.export_svg(title="tuichat — login-device")
    (OUT / "login-device.svg").write_text(svg)
    print("wrote screenshots/login-device.svg")


async def main() -> int:
    os.environ["TZ"] = "UTC"
    time.tzset()
    with tempfile.TemporaryDirectory() as tmp:
        profile = Profile(Path(tmp) / "profile")
        profile.save_session(Session("https://matrix.example.org", ME, "TUICHATDEMO", "x"))
        profile.create_pickle_key()
        common: list[DomainEvent] = [
            RoomsChanged(ROOMS),
            ConnectionChanged(ConnectionState.SYNCED),
        ]
        ada = TimelineAppended("!ada", _items("!ada", CONVERSATION))
        app = TuichatApp(profile, connect=False)
        await _shoot(app, [*common, ada], "!ada", "main")
        rich = TimelineAppended("!e2ee", _rich_items("!e2ee"))
        app = TuichatApp(profile, connect=False)
        await _shoot(app, [*common, ada, rich], "!e2ee", "rich-timeline")
        for theme in THEMES:
            app = TuichatApp(profile, connect=False)
            await _shoot(app, [*common, ada, rich], "!e2ee", f"theme-{theme}", theme)
        tui = TimelineAppended("!tui", _thread_items("!tui"))
        app = TuichatApp(profile, connect=False)
        await _shoot_thread(app, [*common, ada, tui], "!tui")
        grace = TimelineAppended("!grace", _items("!grace", PLACEHOLDERS))
        app = TuichatApp(profile, connect=False)
        await _shoot(app, [*common, ada, grace], "!grace", "undecryptable")
        app = TuichatApp(profile, connect=False)
        spaces = [RoomsChanged(SPACE_ROOMS), ConnectionChanged(ConnectionState.SYNCED)]
        lunch = TimelineAppended("!lunch", _poll_items("!lunch"))
        await _shoot(app, [*spaces, lunch], "!lunch", "spaces-and-poll")
        app = TuichatApp(profile, connect=False)
        await _shoot_search(app, [*common, ada])
        app = TuichatApp(profile, connect=False)
        await _shoot_screen(
            app, DevicesScreen(ME, "you"), "devices", lambda s: s.show_devices(DEVICES)
        )
        view = VerificationView(
            transaction_id="t",
            other_user="@ada:example.org",
            other_device="ADAPHONE",
            we_requested=True,
            phase=Phase.SHOW_SAS,
            emoji=[SAS_EMOJI[i] for i in (2, 41, 17, 63, 8, 29, 54)],
            decimals=(4821, 1307, 6642),
        )
        app = TuichatApp(profile, connect=False)
        await _shoot_screen(app, VerificationDialog(view, "Ada"), "verification")
        # Verification by QR code: the code Ada's phone scans (fixed keys).
        code = QrPayload(
            QrMode.OTHER_USER,
            "$verification-request-of-ada",
            base64.b64encode(bytes(range(32))).decode().rstrip("="),
            base64.b64encode(bytes(range(32, 64))).decode().rstrip("="),
            b"tuichat-secret!!",
        )
        qr_view = replace(view, phase=Phase.READY, emoji=[], decimals=(), qr=code.encode())
        app = TuichatApp(profile, connect=False)
        await _shoot_screen(
            app, VerificationDialog(qr_view, "Ada"), "verification-qr", size=(110, 42)
        )
    _device_login()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
