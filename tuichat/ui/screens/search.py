"""The Search view (issue 24): a query line, the "all rooms" switch, and the
messages found, newest first, with room, sender, time and the matched words
marked. Enter on a result dismisses with it (the caller jumps there);
Escape closes. The list is an `OptionList` (only the rows in view are
drawn) filled a page at a time: the next page is asked for when the
highlight nears the end."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, Label, OptionList
from textual.widgets.option_list import Option

from tuichat.model.items import TimelineItem
from tuichat.model.sanitize import safe_line, trusted
from tuichat.model.search_query import (
    QueryError,
    SearchCursor,
    SearchHit,
    SearchPage,
    SearchQuery,
    matched_spans,
    parse_query,
)

MAX_TEXT = 200
MATCH_STYLE = Style(bold=True, reverse=True)
# Rows from the end of the list at which the next page is asked for.
MORE_AT = 5

Searcher = Callable[[SearchQuery, SearchCursor | None], Awaitable[SearchPage]]


@dataclass(frozen=True)
class SearchChoice:
    """The result chosen, and the query that found it (to mark it there)."""

    hit: SearchHit
    query: SearchQuery


def marked_text(text: str, query: SearchQuery) -> Text:
    """`text` cleaned to one line, with the query's matches marked."""
    line = safe_line(" ".join(text.split()), max_length=MAX_TEXT)
    label = Text(line)
    for start, end in matched_spans(line, query):
        label.stylize(MATCH_STYLE, start, end)
    return label


def hit_label(hit: SearchHit, room_name: str, query: SearchQuery) -> Text:
    """One row: when, where, who, what (all remote text cleaned)."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.timestamp / 1000))
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(safe_line(when), style=Style(dim=True))
    label.append("  ")
    label.append(safe_line(room_name, max_length=40), style=Style(bold=True))
    label.append("  ")
    label.append(safe_line(hit.sender_name or hit.sender, max_length=40), style=Style(color="red"))
    label.append(": ")
    label.append(marked_text(hit.text, query))
    return label


class SearchScreen(ModalScreen[SearchChoice | None]):
    """Dismisses with the chosen result, or None."""

    DEFAULT_CSS = """
    SearchScreen {
        align: center top;
    }
    SearchScreen > Vertical {
        width: 95%;
        max-width: 140;
        height: auto;
        max-height: 90%;
        margin-top: 1;
        border: thick $primary;
        background: $surface;
    }
    SearchScreen #search-status {
        color: $text-muted;
    }
    SearchScreen #search-help {
        width: 1fr;
        padding: 0 1;
    }
    SearchScreen OptionList {
        height: auto;
        max-height: 30;
        border: none;
    }
    """

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(
        self,
        searcher: Searcher,
        room_name: Callable[[str], str],
        progress: Callable[[], str],
        *,
        text: str = "",
        all_rooms: bool = False,
    ) -> None:
        super().__init__()
        self._searcher = searcher
        self._room_name = room_name
        self._progress = progress
        self._text = text
        self._all_rooms = all_rooms
        self._hits: list[SearchHit] = []
        self._query: SearchQuery | None = None
        self._cursor: SearchCursor | None = None
        self._loading = False
        self._generation = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                trusted(
                    "Search (Enter: search, then go to a result; Escape: close). Filters: "
                    'from:@user in:#room has:file|image|link before:/after:YYYY-MM-DD "a phrase"'
                ),
                id="search-help",
            )
            yield Input(value=safe_line(self._text), id="search-input")
            yield Checkbox(trusted("All rooms"), self._all_rooms, id="search-all")
            yield Label(id="search-status")
            yield OptionList(id="search-results")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        if self._text.strip():
            self._start()
        else:
            self._status(self._progress())

    def _status(self, text: str) -> None:
        self.query_one("#search-status", Label).update(Text(safe_line(text)))

    @property
    def results(self) -> list[SearchHit]:
        return list(self._hits)

    @property
    def shown_status(self) -> str:
        return str(self.query_one("#search-status", Label).render())

    @on(Input.Submitted, "#search-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._start()

    @on(Checkbox.Changed, "#search-all")
    def _scope_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        if self.query_one(Input).value.strip():
            self._start()

    def _start(self) -> None:
        text = self.query_one(Input).value
        try:
            query = parse_query(text)
        except QueryError as error:
            self._status(str(error))
            return
        if self.query_one(Checkbox).value and not query.all_rooms:
            query = replace(query, all_rooms=True)
        self._generation += 1
        self._query, self._cursor, self._hits = query, None, []
        self.query_one(OptionList).clear_options()
        self._status("Searching…")
        self._load(self._generation)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _load(self, generation: int) -> None:
        query = self._query
        assert query is not None
        self._loading = True
        try:
            page = await self._searcher(query, self._cursor)
        finally:
            self._loading = False
        if generation != self._generation:
            return  # another search started meanwhile
        self._cursor = page.next
        first = not self._hits
        self._hits.extend(page.hits)
        options = self.query_one(OptionList)
        options.add_options(
            [
                Option(hit_label(hit, self._room_name(hit.room_id), query), id=str(index))
                for index, hit in enumerate(page.hits, start=len(self._hits) - len(page.hits))
            ]
        )
        count = len(self._hits)
        parts = [f"{count} found" + (", more below" if self._cursor else "")]
        if not count:
            parts = ["Nothing found"]
        for extra in (page.note, self._progress()):
            if extra:
                parts.append(extra)
        self._status(" · ".join(parts))
        if first and self._hits:
            options.highlighted = 0
            options.focus()

    @on(OptionList.OptionHighlighted, "#search-results")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        near_end = event.option_index >= len(self._hits) - MORE_AT
        if near_end and self._cursor is not None and not self._loading:
            self._load(self._generation)

    @on(OptionList.OptionSelected, "#search-results")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        index = int(event.option.id or "0")
        if self._query is not None and 0 <= index < len(self._hits):
            self.dismiss(SearchChoice(self._hits[index], self._query))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class SearchContextScreen(ModalScreen[None]):
    """A result the room's timeline does not reach (history older than
    what could be loaded): the messages around it, from the server's
    /context, the result selected and its matches marked."""

    DEFAULT_CSS = """
    SearchContextScreen {
        align: center top;
    }
    SearchContextScreen > Vertical {
        width: 95%;
        max-width: 140;
        height: auto;
        max-height: 90%;
        margin-top: 1;
        border: thick $primary;
        background: $surface;
    }
    SearchContextScreen OptionList {
        height: auto;
        max-height: 40;
        border: none;
    }
    """

    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(
        self, room_name: str, items: list[TimelineItem], event_id: str, query: SearchQuery
    ) -> None:
        super().__init__()
        self._room_name = room_name
        self._items = items
        self._event_id = event_id
        self._query = query

    def compose(self) -> ComposeResult:
        with Vertical():
            title = Text(safe_line(self._room_name, max_length=60), style=Style(bold=True))
            title.append(trusted(": around the message found (Escape: close)"))
            yield Label(title)
            yield OptionList(id="search-context")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        chosen = 0
        for index, item in enumerate(self._items):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(item.timestamp / 1000))
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(safe_line(f"{when}  "), style=Style(dim=True))
            label.append(safe_line(item.sender_name, max_length=40), style=Style(color="red"))
            label.append(": ")
            body = item.body if item.utd_reason is None else item.utd_text
            if item.event_id == self._event_id:
                chosen = index
                label.append(marked_text(body, self._query))
            else:
                label.append(safe_line(" ".join(body.split()), max_length=MAX_TEXT))
            options.add_option(Option(label, id=str(index)))
        if self._items:
            options.highlighted = chosen
        options.focus()

    def action_close(self) -> None:
        self.dismiss(None)
