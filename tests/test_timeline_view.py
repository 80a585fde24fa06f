"""The Line-API timeline renders hostile text literally and only what is visible."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.timeline import Timeline
from tuichat.ui.widgets.timeline_view import GUTTER, HistoryState, TimelineView


def text_item(n: int, body: str, **kw: object) -> TimelineItem:
    return TimelineItem(
        key=f"${n}",
        event_id=f"${n}",
        sender="@bob:x",
        sender_name="Bob",
        timestamp=1_700_000_000_000 + n,
        kind=ItemKind.TEXT,
        body=body,
        **kw,
    )  # type: ignore[arg-type]


class TimelineApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelineView()


async def test_long_messages_wrap_under_the_body_column() -> None:
    app = TimelineApp()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(1, "word " * 30)])
        view.set_items(timeline)
        await pilot.pause()
        date_line, *lines = view.line_texts()
        assert "──" in date_line
        assert len(lines) > 1
        assert all(line[:GUTTER].strip() == "" for line in lines[1:])
        assert all(len(line.rstrip()) <= 60 for line in lines)


async def test_markup_and_escape_sequences_are_shown_literally() -> None:
    state = RoomState("!r")
    state.apply(
        {
            "type": "m.room.member",
            "state_key": "@evil:x",
            "sender": "@evil:x",
            "content": {"membership": "join", "displayname": "[b]Evil[/b]"},
        }
    )
    event = {
        "type": "m.room.message",
        "event_id": "$1",
        "sender": "@evil:x",
        "origin_server_ts": 1,
        "content": {
            "msgtype": "m.text",
            "body": "[@click=app.quit]quit[/] \x1b[2J\x1b]52;c;eA==\x07",
        },
    }
    item = to_item(event, state, Viewer("@me:x"))
    assert item is not None
    app = TimelineApp()
    async with app.run_test(size=(100, 10)) as pilot:
        view = app.query_one(TimelineView)
        view.set_items([item])
        await pilot.pause()
        rendered = "".join(view.line_texts())
        assert "[@click=app.quit]quit[/]" in rendered
        assert "[b]Evil" in rendered
        assert "\x1b" not in rendered and "\x07" not in rendered and "␛" in rendered
        # Nothing in the rendered strips carries a click action.
        for y in range(view.size.height):
            for segment in view.render_line(y):
                assert not (segment.style and segment.style.meta.get("@click")), segment
        await pilot.click(TimelineView, offset=(GUTTER + 3, 0))
        assert app.is_running


async def test_only_visible_items_are_rendered() -> None:
    app = TimelineApp()
    async with app.run_test(size=(80, 20)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n}") for n in range(2000)])
        view.set_items(timeline)
        await pilot.pause()
        # One history marker line, then one line per (short) message.
        assert view.virtual_size.height == 2001
        visible = [view.render_line(y).text for y in range(view.size.height)]
        assert "message 1999" in visible[-1]
        # Only the items on and around the screen were measured.
        measured = sum(view._lines.measured(i) for i in range(2000))
        assert 0 < measured <= 3 * view.size.height
        view.scroll_home(animate=False)
        await pilot.pause()
        assert "older messages" in view.render_line(0).text
        assert "2023" in view.render_line(1).text  # the first day's date line
        assert "message 0" in view.render_line(2).text


async def test_scrolling_up_into_unmeasured_tall_items_does_not_jump() -> None:
    app = TimelineApp()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n} " + "word " * 20) for n in range(300)])
        view.set_items(timeline)
        await pilot.pause()
        for _ in range(40):
            before = [view.render_line(y).text for y in range(view.size.height)]
            view.scroll_to(y=view.scroll_y - 1, animate=False, immediate=True)
            await pilot.pause()
            after = [view.render_line(y).text for y in range(view.size.height)]
            assert after[1:] == before[:-1]


async def test_reaching_the_top_asks_for_older_history_once() -> None:
    asked: list[TimelineView.NearTop] = []

    class Recording(TimelineApp):
        def on_timeline_view_near_top(self, message: TimelineView.NearTop) -> None:
            asked.append(message)

    app = Recording()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n}") for n in range(100)])
        view.set_items(timeline)
        await pilot.pause()
        assert not asked
        view.scroll_home(animate=False)
        await pilot.pause()
        view.scroll_to(y=0, animate=False, immediate=True, force=True)
        await pilot.pause()
        assert len(asked) == 1
        view.set_history(HistoryState.LOADING)
        await pilot.pause()
        assert "Loading older messages" in view.render_line(0).text
        older = [text_item(n, f"old {n}") for n in range(-20, 0)]
        view.apply_change(timeline.prepend(older))
        view.set_history(HistoryState.START)
        await pilot.pause()
        # The reader still looks at what they looked at before.
        assert "message 0" in view.render_line(1).text
        view.scroll_home(animate=False)
        await pilot.pause()
        assert "beginning of the room" in view.render_line(0).text
        assert len(asked) == 1


async def test_a_request_for_older_history_overtaken_by_new_events_is_withdrawn_then_made_again() -> (
    None
):
    """A limited sync can show a room's newest events (at its end) between
    the view asking for older history and the app handling the request: it
    no longer stands, and the view asks again when the reader is back at
    the top."""
    answers: list[bool] = []

    class Answering(TimelineApp):
        def on_timeline_view_near_top(self, message: TimelineView.NearTop) -> None:
            answers.append(self.query_one(TimelineView).still_near_top())

    app = Answering()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"cached {n}") for n in range(3)])  # fits: at the top
        view.set_items(timeline)
        await pilot.pause()
        view.ask_again()  # as when the service has started
        view.apply_change(timeline.reset([text_item(n, f"new {n}") for n in range(100, 150)]))
        await pilot.pause()
        assert answers == [False]
        assert view.history is HistoryState.MORE
        assert "new 149" in view.render_line(view.size.height - 1).text
        view.scroll_to(y=0, animate=False, immediate=True, force=True)
        await pilot.pause()
        assert answers == [False, True]

        # That page came; the reader goes up again and leaves the top before
        # the request is handled.
        view.set_history(HistoryState.LOADING)
        view.apply_change(timeline.prepend([text_item(n, f"old {n}") for n in range(50, 100)]))
        view.set_history(HistoryState.MORE)
        await pilot.pause()
        view.scroll_to(y=0, animate=False, immediate=True, force=True)
        view.scroll_to(y=10, animate=False, immediate=True, force=True)
        await pilot.pause()
        assert answers == [False, True, False]
        view.scroll_to(y=0, animate=False, immediate=True, force=True)
        await pilot.pause()
        assert answers == [False, True, False, True]


async def test_a_theme_switch_redraws_messages_already_drawn_in_the_new_colours() -> None:
    app = TimelineApp()
    async with app.run_test(size=(60, 10)) as pilot:
        app.theme = "textual-dark"
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n}") for n in range(3)])
        view.set_items(timeline)
        await pilot.pause()

        def backgrounds() -> tuple[object, object]:
            """A message line's time and the empty line below the messages."""
            clock = view.render_line(2)
            blank = view.render_line(view.size.height - 1)
            assert clock.text[2] == ":"  # a message line, starting with its time
            return clock._segments[0].style.bgcolor, blank._segments[0].style.bgcolor

        clock, blank = backgrounds()
        assert clock == blank
        app.theme = "textual-light"
        await pilot.pause()
        clock_after, blank_after = backgrounds()
        assert blank_after != blank
        assert clock_after == blank_after  # not the dark theme's any more


async def test_an_animated_scroll_up_from_the_end_is_not_pulled_back_to_the_end() -> None:
    """A page up with an animation; a message arriving before its first
    step must not put the reader back at the end."""
    app = TimelineApp()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n}") for n in range(100)])
        view.set_items(timeline)
        view.focus()
        await pilot.pause()
        end = view.max_scroll_y
        assert view.scroll_y == end
        view.scroll_page_up()  # animated, as a click on the scrollbar's track
        # Before the animation's first step: a message arrives, a frame is drawn.
        view.apply_change(timeline.append([text_item(100, "message 100")]))
        view.render_lines(view.scrollable_content_region.reset_offset)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        assert view.scroll_y <= end - view.scrollable_content_region.height + 1
        assert "new message" in view.render_line(view.scrollable_content_region.height - 1).text
        await pilot.press("end")
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y


async def test_a_click_on_the_new_messages_line_jumps_to_the_latest() -> None:
    app = TimelineApp()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n}") for n in range(100)])
        view.set_items(timeline)
        await pilot.pause()
        view.scroll_to(y=20, animate=False, immediate=True)
        view.apply_change(timeline.append([text_item(n, f"message {n}") for n in (100, 101)]))
        await pilot.pause()
        bottom = view.scrollable_content_region.height - 1
        assert "↓ 2 new messages" in view.render_line(bottom).text
        await pilot.click(TimelineView, offset=(10, bottom))
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y
        assert "message 101" in view.render_line(bottom).text


async def test_home_and_page_keys_in_the_timeline_reach_the_top_and_come_back() -> None:
    app = TimelineApp()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        timeline.append([text_item(n, f"message {n}") for n in range(100)])
        view.set_items(timeline)
        view.focus()
        await pilot.pause()
        await pilot.press("home")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        assert view.scroll_y == 0 and "message 0" in view.render_line(2).text
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.scroll_y >= view.scrollable_content_region.height - 1
        await pilot.press("pageup")
        await pilot.pause()
        assert view.scroll_y == 0
        await pilot.press("end")
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y


async def test_scrolling_up_to_an_image_and_a_reply_asks_the_app_to_fetch_them() -> None:
    """Items first measured while the screen draws (scrolled into view from
    far up) still ask the App for their preview and their reply's parent."""
    from tuichat.model.items import Attachment

    previews: list[str] = []
    parents: list[str] = []

    class Recording(TimelineApp):
        def on_timeline_view_preview_wanted(self, message: TimelineView.PreviewWanted) -> None:
            previews.append(message.item.key)

        def on_timeline_view_parent_missing(self, message: TimelineView.ParentMissing) -> None:
            parents.append(message.event_id)

    app = Recording()
    async with app.run_test(size=(60, 12)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r")
        image = Attachment("m.image", "photo.png", url="mxc://x/photo")
        timeline.append(
            [text_item(0, "a photo", attachment=image), text_item(1, "re", reply_to="$gone")]
            + [text_item(n, f"message {n}") for n in range(2, 300)]
        )
        view.set_items(timeline)
        await pilot.pause()
        assert not previews and not parents
        view.scroll_home(animate=False)
        for _ in range(5):
            await pilot.pause()
        assert previews == ["$0"]
        assert parents == ["$gone"]
