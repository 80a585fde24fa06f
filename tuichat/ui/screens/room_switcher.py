"""Ctrl+K: type to filter rooms fuzzily, Enter switches, Escape closes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from tuichat.model.rooms import RoomSummary
from tuichat.model.sanitize import SafeText, safe_line, trusted
from tuichat.ui.widgets.room_list import room_label

# Room names and ids are remote (up to 512 characters, any content): only
# this much of each, and of the query, is matched, and matching is one pass
# of `str.find` per query character. (Textual's `Matcher` tries every
# alignment: a name of 256 "a " took 15 s for the query "aaa".)
MAX_MATCHED = 100
MAX_QUERY = 64


def match_score(query: str, text: str) -> float:
    """How well `query` (lower case) matches `text`: 0 for no match; a
    substring beats a scattered match, and a match at the start or at word
    starts beats one elsewhere. O(len(query)) calls of `str.find`."""
    text = text[:MAX_MATCHED].lower()
    if not text:
        return 0.0
    at = text.find(query)
    if at >= 0:
        word_start = at == 0 or not text[at - 1].isalnum()
        return 3.0 + (1.0 if at == 0 else 0.5 if word_start else 0.0) + len(query) / len(text)
    position, previous, together, word_starts = 0, -2, 0, 0
    for character in query:
        found = text.find(character, position)
        if found < 0:
            return 0.0
        together += found == previous + 1
        word_starts += found == 0 or not text[found - 1].isalnum()
        previous, position = found, found + 1
    return (1.0 + together + word_starts) / (2.0 * len(query) + 1.0) * 2.0


def rank_rooms(query: str, rooms: Sequence[RoomSummary]) -> list[RoomSummary]:
    """Rooms matching `query` fuzzily, best first; all rooms for no query."""
    query = "".join(query.split())[:MAX_QUERY].lower()
    if not query:
        return list(rooms)
    scored = []
    for position, room in enumerate(rooms):
        score = max(match_score(query, room.name), match_score(query, room.room_id) * 0.5)
        if score > 0:
            scored.append((-score, position, room))
    scored.sort(key=lambda entry: (entry[0], entry[1]))
    return [room for _, _, room in scored]


class RoomSwitcher(ModalScreen[str | None]):
    """Dismisses with the chosen room id, or None."""

    DEFAULT_CSS = """
    RoomSwitcher {
        align: center top;
    }
    RoomSwitcher > Vertical {
        width: 70%;
        max-width: 80;
        height: auto;
        max-height: 70%;
        margin-top: 3;
        border: thick $primary;
        background: $surface;
    }
    RoomSwitcher OptionList {
        height: auto;
        max-height: 20;
        border: none;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("up", "cursor_up", "Up", show=False),
    ]

    def __init__(self, rooms: Sequence[RoomSummary], scope: SafeText | None = None) -> None:
        super().__init__()
        self._rooms = list(rooms)
        # The space the list is limited to (its name, sanitised), if any.
        self._scope = scope

    def compose(self) -> ComposeResult:
        with Vertical():
            placeholder = (
                safe_line(f"Switch to a room in {self._scope}…")
                if self._scope
                else trusted("Switch to room…")
            )
            yield Input(placeholder=placeholder, id="room-filter")
            yield OptionList(id="room-matches")

    def on_mount(self) -> None:
        self._refill("")
        self.query_one(Input).focus()

    def _refill(self, query: str) -> None:
        matches = self.query_one(OptionList)
        matches.clear_options()
        matches.add_options(
            [Option(room_label(room), id=room.room_id) for room in rank_rooms(query, self._rooms)]
        )
        if matches.option_count:
            matches.highlighted = 0
        else:
            matches.add_option(Option(Text("No matching room", style="italic"), disabled=True))

    @on(Input.Changed, "#room-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    @on(Input.Submitted, "#room-filter")
    def _filter_submitted(self) -> None:
        matches = self.query_one(OptionList)
        option = matches.highlighted_option
        self.dismiss(option.id if option is not None and option.id else None)

    @on(OptionList.OptionSelected)
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_cursor_down(self) -> None:
        self.query_one(OptionList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(OptionList).action_cursor_up()
