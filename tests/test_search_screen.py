"""The Search view and the context view on their own, offline (issue 24):
the "all rooms" switch, pages asked for as the list is read, a query
mistake told, a result's surroundings with the result chosen and marked."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widgets import Checkbox, Input, OptionList

from tests.test_ui_chat import wait_ui
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.search_query import SearchCursor, SearchHit, SearchPage, SearchQuery
from tuichat.ui.screens.search import MATCH_STYLE, SearchContextScreen, SearchScreen

PAGE = 30


def _hit(number: int) -> SearchHit:
    return SearchHit(
        "!r:x", f"$e{number}", "@bob:x", "Bob", 1_700_000_000_000 - number, f"llama {number}", True
    )


class Host(App[None]):
    pass


async def test_pages_scope_and_mistakes() -> None:
    asked: list[tuple[SearchQuery, SearchCursor | None]] = []

    async def searcher(query: SearchQuery, cursor: SearchCursor | None) -> SearchPage:
        asked.append((query, cursor))
        start = cursor.local_offset if cursor else 0
        hits = tuple(_hit(n) for n in range(start, min(start + PAGE, 70)))
        following = SearchCursor(local_offset=start + len(hits), server_done=True)
        return SearchPage(hits, following if start + len(hits) < 70 else None)

    app = Host()
    async with app.run_test(size=(100, 40)) as pilot:
        screen = SearchScreen(searcher, lambda room_id: "Room", lambda: "", text="lla")
        await app.push_screen(screen)
        await wait_ui(pilot, lambda: len(screen.results) == PAGE)
        assert not asked[0][0].all_rooms
        options = screen.query_one(OptionList)
        prompt = options.get_option_at_index(0).prompt
        assert [str(prompt)[s.start : s.end] for s in prompt.spans if s.style == MATCH_STYLE] == [
            "llama"
        ]
        # Reading down the list asks for the next pages, until there are none.
        for _ in range(80):
            await pilot.press("down")
        await wait_ui(pilot, lambda: len(screen.results) == 70)
        assert [c.local_offset if c else 0 for _q, c in asked] == [0, 30, 60]
        assert "70 found" in screen.shown_status
        # The switch searches every room again.
        screen.query_one(Checkbox).value = True
        await wait_ui(pilot, lambda: asked[-1][0].all_rooms and len(screen.results) == PAGE)
        # A filter it cannot read is told; nothing is asked.
        count = len(asked)
        screen.query_one(Input).value = "has:video"
        screen.query_one(Input).focus()
        await pilot.press("enter")
        await wait_ui(pilot, lambda: "has:" in screen.shown_status)
        assert len(asked) == count


async def test_context_view_chooses_and_marks_the_result() -> None:
    base = TimelineItem("$0", "@bob:x", "Bob", 1_700_000_000_000, ItemKind.TEXT, "before")
    items = [base.replace(key=f"$e{n}", event_id=f"$e{n}", body=f"line {n}") for n in range(5)]
    items[3] = items[3].replace(body="the Ibex found here")
    query = SearchQuery(words=("ibex",))
    app = Host()
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(SearchContextScreen("Room", items, "$e3", query))
        await pilot.pause()
        options = app.screen.query_one(OptionList)
        assert options.highlighted == 3
        prompt: Any = options.get_option_at_index(3).prompt
        assert [str(prompt)[s.start : s.end] for s in prompt.spans if s.style == MATCH_STYLE] == [
            "Ibex"
        ]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, SearchContextScreen)


def test_a_result_row_keeps_when_where_and_who_apart() -> None:
    # The separators are not remote text: cleaning must not eat them.
    from tuichat.model.search_query import parse_query
    from tuichat.ui.screens.search import hit_label

    row = hit_label(_hit(0), "Room\x1b[2J", parse_query("llama")).plain
    assert "  Room\u241b[2J  Bob: llama 0" in row
    assert "\x1b" not in row
    assert row[:16].count(":") == 1 and row[16:18] == "  "
