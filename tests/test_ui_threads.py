"""The thread pane and the thread list through the screen (the app
offline, fed scripted service events): the root's summary line, Enter on it
opens the pane beside the room (below it when narrow), replies arriving
while it is open, Escape closing it, the thread key on any message, and
the thread list."""

from __future__ import annotations

from pathlib import Path

from tests.test_look_and_feel import offline_profile
from tuichat.model.events import RoomsChanged, TimelineAppended
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.rooms import RoomSummary
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.thread_list import ThreadListScreen
from tuichat.ui.widgets.timeline_view import HistoryState

ADA = "@ada:example.org"


def message(n: int, body: str, *, root: str | None = None) -> TimelineItem:
    return TimelineItem(
        key=f"$e{n}",
        event_id=f"$e{n}",
        sender=ADA,
        sender_name="Ada",
        timestamp=1_763_800_000_000 + n * 60_000,
        kind=ItemKind.TEXT,
        body=body,
        thread_root=root,
    )


async def test_thread_pane_opens_on_a_root_and_shows_its_replies(tmp_path: Path) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(150, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!room", "Room")]))
        await pilot.pause()
        app.chat.switch_room("!room")
        app.sink(
            TimelineAppended(
                "!room",
                [
                    message(1, "the root"),
                    message(2, "first in thread", root="$e1"),
                    message(3, "main chatter"),
                ],
            )
        )
        await pilot.pause()
        main = app.main
        lines = "\n".join(main.timeline.line_texts())
        assert "the root" in lines and "main chatter" in lines
        assert "first in thread" not in lines.replace("Ada: first in thread", "")
        assert "1 reply" in lines
        pane = main.thread_pane
        assert not pane.is_open
        # Enter on the root opens its thread.
        main.timeline.focus()
        main.timeline.select_last()
        await pilot.press("up", "enter")
        await pilot.pause()
        assert pane.is_open and app.threads.root == "$e1"
        assert not main.panes.has_class("-stacked")
        pane_lines = "\n".join(pane.timeline.line_texts())
        assert "the root" in pane_lines and "first in thread" in pane_lines
        # Nothing older: the pane's top line names the thread, not the room.
        pane.timeline.set_history(HistoryState.START)
        pane.timeline.scroll_home(animate=False)
        await pilot.pause()
        assert "beginning of the thread" in pane.timeline.render_line(0).text
        # A reply coming while it is open shows in the pane, not the room.
        app.sink(TimelineAppended("!room", [message(4, "second in thread", root="$e1")]))
        await pilot.pause()
        assert "second in thread" in "\n".join(pane.timeline.line_texts())
        assert "2 replies" in "\n".join(main.timeline.line_texts())
        root = app.state.timeline("!room").get("$e1")
        assert root is not None and root.thread is not None and not root.thread.unread
        # Escape in the pane's composer closes it.
        assert pane.composer.has_focus
        await pilot.press("escape")
        await pilot.pause()
        assert not pane.is_open and main.composer.has_focus


async def test_thread_key_starts_a_thread_and_narrow_stacks_it(tmp_path: Path) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(90, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!room", "Room")]))
        await pilot.pause()
        app.chat.switch_room("!room")
        app.sink(TimelineAppended("!room", [message(1, "plain message")]))
        await pilot.pause()
        main = app.main
        main.timeline.focus()
        main.timeline.select_last()
        await pilot.press("t")
        await pilot.pause()
        assert main.thread_pane.is_open and app.threads.root == "$e1"
        assert main.panes.has_class("-stacked")
        await pilot.press("escape")
        await pilot.pause()
        assert not main.thread_pane.is_open


async def test_thread_list_orders_threads_and_opens_one(tmp_path: Path) -> None:
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(150, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!room", "Room")]))
        await pilot.pause()
        app.chat.switch_room("!room")
        app.sink(
            TimelineAppended(
                "!room",
                [
                    message(1, "old root"),
                    message(2, "new root"),
                    message(3, "reply to old", root="$e1"),
                    message(4, "reply to new", root="$e2"),
                ],
            )
        )
        await pilot.pause()
        await pilot.press("f5")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ThreadListScreen)
        from textual.widgets import OptionList

        options = screen.query_one(OptionList)
        assert [options.get_option_at_index(i).id for i in range(options.option_count)] == [
            "$e2",
            "$e1",
        ]
        await pilot.press("enter")
        await pilot.pause()
        assert app.threads.root == "$e2" and app.main.thread_pane.is_open


async def test_my_threads_across_rooms_unread_first(tmp_path: Path) -> None:
    from textual.widgets import OptionList

    from tuichat.ui.screens.thread_list import MyThreadsScreen

    me = "@sam:example.org"
    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(150, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!one", "One"), RoomSummary("!two", "Two")]))
        await pilot.pause()
        app.chat.switch_room("!one")
        mine = message(2, "my reply", root="$e1")
        app.sink(TimelineAppended("!one", [message(1, "root one"), mine.evolve(sender=me)]))
        app.sink(
            TimelineAppended(
                "!two",
                [
                    message(3, "root two"),
                    message(4, "mine", root="$e3").evolve(sender=me),
                    message(5, "unread answer", root="$e3"),
                ],
            )
        )
        app.sink(TimelineAppended("!one", [message(6, "not a thread of mine")]))
        await pilot.pause()
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MyThreadsScreen)
        options = screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == ["!two $e3", "!one $e1"]
        await pilot.press("enter")
        await pilot.pause()
        assert app.state.current_room_id == "!two" and app.threads.root == "$e3"


async def test_thread_command_opens_the_latest_thread(tmp_path: Path) -> None:
    from tests.test_ui_chat import type_text

    app = TuichatApp(offline_profile(tmp_path), connect=False)
    async with app.run_test(size=(150, 30)) as pilot:
        app.sink(RoomsChanged([RoomSummary("!room", "Room")]))
        await pilot.pause()
        app.chat.switch_room("!room")
        app.sink(
            TimelineAppended(
                "!room",
                [
                    message(1, "older root"),
                    message(2, "newer root"),
                    message(3, "in the older", root="$e1"),
                    message(4, "in the newer", root="$e2"),
                ],
            )
        )
        await pilot.pause()
        await type_text(pilot, "/thread")
        await pilot.pause()
        assert app.threads.root == "$e2" and app.main.thread_pane.is_open
        # Up on the empty composer edits your newest reply in the thread.
        mine = message(5, "my own reply", root="$e2").evolve(sender="@sam:example.org")
        app.sink(TimelineAppended("!room", [mine]))
        await pilot.pause()
        await pilot.press("up")
        await pilot.pause()
        assert app.main.thread_pane.composer.text == "my own reply"
        assert app.threads.draft is not None and app.threads.draft.item.key == "$e5"
        await pilot.press("escape")
        assert app.main.thread_pane.composer.text == ""
        # Writing in the pane without a connection says so, and keeps the pane.
        app.main.thread_pane.composer.insert("hello")
        await pilot.press("enter")
        await pilot.pause()
        assert "Not connected" in str(app.main.feedback.text)
