"""The room list renders only its visible rows and is driven by keys and clicks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.widgets import OptionList

from tests.test_look_and_feel import offline_profile
from tuichat.config import Config
from tuichat.model.events import RoomsChanged
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.room_switcher import RoomSwitcher, rank_rooms
from tuichat.ui.widgets.room_list import RoomListView


def summary(n: int, **kw: object) -> RoomSummary:
    fields: dict[str, object] = {
        "room_id": f"!r{n}:x",
        "name": f"Room {n}",
        "membership": Membership.JOIN,
        "last_activity": 10_000 - n,
    }
    fields.update(kw)
    return RoomSummary(**fields)  # type: ignore[arg-type]


class Host(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.chosen: list[str] = []

    def compose(self) -> ComposeResult:
        yield RoomListView()

    def on_room_list_view_room_chosen(self, message: RoomListView.RoomChosen) -> None:
        self.chosen.append(message.room_id)


async def test_a_thousand_rooms_render_only_the_visible_rows() -> None:
    app = Host()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.query_one(RoomListView)
        rooms = [summary(n, name=f"[b]Room {n}[/b]") for n in range(1000)]
        view.show_rooms(rooms, rooms[0].room_id)
        await pilot.pause()
        assert view.virtual_size.height == 1000
        lines = [view.render_line(y).text for y in range(view.size.height)]
        assert "[b]Room 0[/b]" in lines[0]  # names are text, never markup
        view.focus()
        await pilot.press("end")
        await pilot.pause()
        assert view.highlighted == 999
        assert any("Room 999" in view.render_line(y).text for y in range(view.size.height))
        await pilot.press("enter")
        await pilot.pause()
        assert app.chosen == ["!r999:x"]


async def test_invites_come_first_and_a_click_chooses_a_room() -> None:
    app = Host()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.query_one(RoomListView)
        invite = summary(7, membership=Membership.INVITE, inviter="Carol")
        view.show_rooms([invite, summary(1), summary(2)], None)
        await pilot.pause()
        rows = view.row_texts()
        assert rows[0] == "Invites" and "Room 7" in rows[1] and "invited by Carol" in rows[2]
        assert rows[3] == "Rooms" and "Room 1" in rows[4]
        await pilot.click(RoomListView, offset=(5, 5))
        await pilot.pause()
        assert app.chosen == ["!r2:x"]


async def test_rows_take_the_new_theme_s_colours_after_a_switch() -> None:
    app = Host()
    async with app.run_test(size=(40, 10)) as pilot:
        app.theme = "textual-dark"
        view = app.query_one(RoomListView)
        view.show_rooms([summary(n) for n in range(3)], None)
        await pilot.pause()

        def row_background() -> object:
            return view.render_line(1)._segments[-1].style.bgcolor

        dark = row_background()
        app.theme = "textual-light"
        await pilot.pause()
        assert row_background() != dark
        assert row_background() == view.rich_style.bgcolor


@pytest.mark.parametrize(
    "theme", ["tuichat-dark", "tuichat-light", "tuichat-high-contrast", "tuichat-solarized"]
)
async def test_the_current_room_is_marked_in_every_theme(tmp_path: Path, theme: str) -> None:
    """In the app (the composer has the focus), the room on screen looks
    different from the others; and still does when the list has the focus
    and its cursor is on another room. Unfocused, the cursor sat on the
    current room and hid its mark."""
    app = TuichatApp(offline_profile(tmp_path), connect=False, config=Config(theme=theme))
    async with app.run_test(size=(100, 20)) as pilot:
        rooms = [summary(n) for n in range(3)]
        app.sink(RoomsChanged(rooms))
        await pilot.pause()
        app.chat.switch_room(rooms[1].room_id)
        await pilot.pause()
        view = app.query_one(RoomListView)
        assert not view.has_focus

        def styles(y: int) -> set[object]:
            return {(s.style.bgcolor, s.style.bold) for s in view.render_line(y) if s.text.strip()}

        assert styles(1) != styles(0) and styles(1) != styles(2)
        view.focus()
        await pilot.press("down")  # the cursor moves to the next room
        await pilot.pause()
        assert styles(1) != styles(0) and styles(2) != styles(0)


def test_the_switcher_ranks_substrings_first_then_scattered_matches() -> None:
    rooms = [
        summary(1, name="Random chatter"),
        summary(2, name="Design review"),
        summary(3, name="Release planning"),
        summary(4, name="rust-lang"),
    ]
    assert [room.name for room in rank_rooms("rel", rooms)] == ["Release planning"]
    assert [room.name for room in rank_rooms("r", rooms)][:2] == ["rust-lang", "Random chatter"]
    assert rank_rooms("dr", rooms)[0].name == "Design review"
    assert [room.name for room in rank_rooms("zzz", rooms)] == []
    assert len(rank_rooms("  ", rooms)) == 4


async def test_the_switcher_stays_fast_on_crafted_room_names() -> None:
    # Textual's fuzzy matcher took 15 s to match "aaa" against one name of
    # 256 "a "; names are remote and up to 512 characters long.
    crafted = [summary(n, name="a " * 256, room_id=f"!{'a' * 200}{n}:x") for n in range(200)]
    app = SwitcherHost(crafted)
    async with app.run_test() as pilot:
        await app.push_screen(RoomSwitcher(crafted))
        await pilot.pause()
        started = time.monotonic()
        for key in "aaaaaa":
            await pilot.press(key)
            await pilot.pause()
        took = time.monotonic() - started
        assert took < 3, f"six key presses took {took:.1f} s"
        matches = app.screen.query_one(OptionList)
        assert matches.option_count == 200


class SwitcherHost(App[None]):
    def __init__(self, rooms: list[RoomSummary]) -> None:
        super().__init__()
        self.rooms = rooms

    def compose(self) -> ComposeResult:
        yield RoomListView()
