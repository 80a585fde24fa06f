"""The Mentions view: messages that highlighted you across rooms, newest
first; Enter jumps to one in its room, Escape closes."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tuichat.model.activity import Mention
from tuichat.model.sanitize import safe_line

MAX_BODY = 160


def mention_label(mention: Mention) -> Text:
    """One row: when, where, who, what (all remote text cleaned)."""
    item = mention.item
    when = time.strftime("%b %d %H:%M", time.localtime(item.timestamp / 1000))
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(safe_line(f"{when}  "), style=Style(dim=True))
    label.append(safe_line(mention.room_name), style=Style(bold=True))
    label.append("  ")
    label.append(safe_line(item.sender_name), style=Style(color="red"))
    label.append(": ")
    body = item.body if item.utd_reason is None else item.utd_text
    label.append(safe_line(" ".join(body.split())[:MAX_BODY]))
    return label


class MentionsScreen(ModalScreen[tuple[str, str] | None]):
    """Dismisses with (room id, event id) of the chosen mention, or None."""

    DEFAULT_CSS = """
    MentionsScreen {
        align: center top;
    }
    MentionsScreen > Vertical {
        width: 90%;
        max-width: 120;
        height: auto;
        max-height: 80%;
        margin-top: 2;
        border: thick $primary;
        background: $surface;
    }
    MentionsScreen OptionList {
        height: auto;
        max-height: 30;
        border: none;
    }
    """

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, found: Sequence[Mention]) -> None:
        super().__init__()
        self._found = list(found)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Mentions (Enter: go to the message, Escape: close)")
            yield OptionList(id="mentions")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self._found:
            options.add_options(
                [Option(mention_label(m), id=f"{index}") for index, m in enumerate(self._found)]
            )
            options.highlighted = 0
        else:
            options.add_option(
                Option(Text("Nothing mentioned you yet", style="italic"), disabled=True)
            )
        options.focus()

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        index = int(event.option.id or "0")
        mention = self._found[index]
        assert mention.item.event_id is not None
        self.dismiss((mention.room_id, mention.item.event_id))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
