"""What the timeline shows for formatted text, code, replies, edits,
reactions, receipts, days, unread messages and membership runs."""

from __future__ import annotations

import re
from typing import Any

from textual.app import App, ComposeResult

from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.rooms import Membership
from tuichat.model.timeline import Timeline
from tuichat.ui.widgets.timeline_view import MembershipDisplay, TimelineView

DAY = 86_400_000
NOON = 1_700_000_000_000 - 1_700_000_000_000 % DAY + DAY // 2


def event(n: int, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": f"$e{n}",
        "sender": "@bob:x",
        "origin_server_ts": NOON + n * 1000,
        "content": content,
        **extra,
    }


def item(raw: dict[str, Any]) -> TimelineItem:
    converted = to_item(raw, RoomState("!r", Membership.JOIN), Viewer("@me:x"))
    assert converted is not None
    return converted


def member(n: int, user: str, membership: str, ts: int | None = None) -> TimelineItem:
    return item(
        {
            "type": "m.room.member",
            "event_id": f"$j{n}",
            "sender": user,
            "state_key": user,
            "origin_server_ts": ts if ts is not None else NOON + n * 1000,
            "content": {"membership": membership, "displayname": user[1:].split(":")[0]},
        }
    )


class ViewApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelineView()


async def shown(items: list[TimelineItem], **kwargs: Any) -> list[str]:
    app = ViewApp()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r", "@me:x")
        timeline.append(items)
        view.set_items(timeline, **kwargs)
        await pilot.pause()
        return view.line_texts()


async def test_formatted_text_links_and_code_blocks() -> None:
    html = (
        '<p>see <a href="https://evil.example">https://docs.example</a></p>'
        '<pre><code class="language-python">def f():\n    return 1\n</code></pre>'
    )
    lines = await shown(
        [
            item(
                event(
                    1,
                    {
                        "msgtype": "m.text",
                        "body": "x",
                        "format": "org.matrix.custom.html",
                        "formatted_body": html,
                    },
                )
            )
        ]
    )
    text = "\n".join(lines)
    assert "see https://docs.example <https://evil.example>" in text
    code = [line for line in lines if "│" in line]
    assert any("def f():" in line for line in code)
    # The indentation inside the box is kept.
    assert any("│     return 1" in line or "│  \u00a0   return 1" in line for line in code), code
    assert any("╭" in line and "python" in line for line in lines)


async def test_a_reply_quotes_its_parent_and_edits_and_reactions_show() -> None:
    parent = item(event(1, {"msgtype": "m.text", "body": "lunch at noon?"}))
    reply = item(
        event(
            2,
            {
                "msgtype": "m.text",
                "body": "> <@bob:x> lunch at noon?\n\nsounds good",
                "m.relates_to": {"m.in_reply_to": {"event_id": "$e1"}},
            },
        )
    )
    edited = item(
        event(
            3,
            {
                "msgtype": "m.text",
                "body": "* sounds great",
                "m.new_content": {"msgtype": "m.text", "body": "sounds great"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$e2"},
            },
        )
    )
    reaction = item(
        {
            "type": "m.reaction",
            "event_id": "$e4",
            "sender": "@me:x",
            "origin_server_ts": NOON,
            "content": {
                "m.relates_to": {"rel_type": "m.annotation", "event_id": "$e2", "key": "👍"}
            },
        }
    )
    lines = await shown([parent, reply, edited, reaction])
    text = "\n".join(lines)
    assert "↳ @bob:x: lunch at noon?" in text
    assert "sounds great  (edited)" in text
    assert "sounds good" not in text and "> <@bob:x>" not in text
    assert "👍 1" in text


async def test_day_lines_and_the_new_messages_line() -> None:
    items = [
        item(event(1, {"msgtype": "m.text", "body": "yesterday"})),
        item(event(DAY // 1000, {"msgtype": "m.text", "body": "today, read"})),
        item(event(DAY // 1000 + 5, {"msgtype": "m.text", "body": "today, unread"})),
    ]
    lines = await shown(items, unread_after=items[1].key)
    dates = [n for n, line in enumerate(lines) if line.startswith("─") and "20" in line]
    assert len(dates) == 2
    new = next(n for n, line in enumerate(lines) if "new messages" in line)
    read = next(n for n, line in enumerate(lines) if "today, read" in line)
    unread = next(n for n, line in enumerate(lines) if "today, unread" in line)
    assert read < new < unread


async def test_runs_of_membership_changes_are_condensed_into_one_line() -> None:
    items = [member(n, f"@user{n}:x", "join") for n in range(5)]
    items.append(member(9, "@user0:x", "leave"))
    items.append(item(event(20, {"msgtype": "m.text", "body": "welcome all"})))
    lines = await shown(items)
    joined = [line for line in lines if "joined" in line]
    assert len(joined) == 1
    assert "user0, user1 and 3 others joined; @user0:x left" in joined[0]
    app = ViewApp()
    async with app.run_test(size=(100, 40)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r", "@me:x")
        timeline.append(items)
        view.set_items(timeline, unread_after=items[2].key)
        view.set_membership_display(MembershipDisplay.HIDE)
        await pilot.pause()
        assert not any("joined" in line for line in view.line_texts())
        view.set_membership_display(MembershipDisplay.SHOW)
        await pilot.pause()
        assert any("new messages" in line for line in view.line_texts())
        assert sum("joined" in line for line in view.line_texts()) == 5


async def test_selecting_a_message_and_asking_to_reply_posts_an_action() -> None:
    actions: list[tuple[str, str]] = []

    class Recording(ViewApp):
        def on_timeline_view_item_action(self, message: TimelineView.ItemAction) -> None:
            actions.append((message.action, message.item.body))

    app = Recording()
    async with app.run_test(size=(100, 20)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r", "@me:x")
        timeline.append([item(event(n, {"msgtype": "m.text", "body": f"m{n}"})) for n in range(3)])
        view.set_items(timeline)
        view.focus()
        view.select_last()
        await pilot.press("up", "r", "plus", "e", "d")
        assert actions == [("reply", "m1"), ("react", "m1"), ("edit", "m1"), ("delete", "m1")]
        await pilot.press("escape")
        assert view.selected_item is None


async def test_state_kinds_and_relations_are_not_selectable() -> None:
    app = ViewApp()
    async with app.run_test(size=(100, 20)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r", "@me:x")
        timeline.append(
            [item(event(1, {"msgtype": "m.text", "body": "hi"})), member(2, "@z:x", "join")]
        )
        view.set_items(timeline)
        view.select_last()
        await pilot.pause()
        assert view.selected_item is not None and view.selected_item.body == "hi"
        assert timeline[1].kind is ItemKind.STATE


def test_code_blocks_keep_indentation_and_huge_ones_are_cut_with_a_note() -> None:
    from rich.console import Console
    from rich.style import Style

    from tuichat.model.rich_body import Block, BlockKind
    from tuichat.ui.widgets.rich_body import BodyStyles, render_body

    plain = Style()
    styles = BodyStyles(
        code=plain, link=plain, link_target=plain, mention=plain, quote=plain, muted=plain
    )
    console = Console(width=100)
    small = render_body(
        (Block(BlockKind.CODE, language="python", code="def f():\n\treturn 1"),),
        40,
        console,
        styles,
    )
    assert [line.plain for line in small] == [
        "╭───────────────────────────── python ─╮",
        "│ def f():                             │",
        "│     return 1                         │",
        "╰──────────────────────────────────────╯",
    ]
    huge = "\n".join(f"line {n}" for n in range(3000))
    lines = render_body((Block(BlockKind.CODE, code=huge),), 40, console, styles)
    assert len(lines) == 2 + 200 + 1
    assert "… 2800 more lines not shown" in lines[-2].plain
    assert all(line.cell_len == 40 for line in lines)


async def test_a_huge_plain_body_is_drawn_in_part_with_a_note() -> None:
    many_lines = "\n".join(f"l{n}" for n in range(65_536))
    one_long_line = "word " * 13_000
    lines = await shown(
        [
            item(event(1, {"msgtype": "m.text", "body": many_lines})),
            item(event(2, {"msgtype": "m.text", "body": one_long_line})),
            item(event(3, {"msgtype": "m.text", "body": "after"})),
        ]
    )
    assert len(lines) < 500, len(lines)
    text = "\n".join(lines)
    assert "l199" in text and "l200" not in text
    # (The event's body was already cut to 65,536 characters on arrival.)
    assert re.search(r"… \d{4,} more lines not shown", text)
    assert "… 55000 more characters not shown" in text
    assert lines[-1].rstrip().endswith("after")
