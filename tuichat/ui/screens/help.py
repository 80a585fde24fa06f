"""The Help screen (F1, /help): every key and every command, scrollable.

Generated from the bindings (the App's and the timeline's, made from the key
table in `tuichat.model.keys`, and the composer's, with `[keys]` from the
config applied) and from the command table in
`tuichat.model.commands`, so it cannot fall behind them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tuichat.model.commands import COMMANDS
from tuichat.model.keys import key_label, split_keys
from tuichat.model.sanitize import safe_line

if TYPE_CHECKING:
    from tuichat.ui.app import TuichatApp


def bound_keys(binding: Binding, keymap: Mapping[str, str]) -> list[str]:
    """A binding's keys, after the config's `[keys]`."""
    return split_keys(keymap.get(binding.id, binding.key) if binding.id else binding.key)


def _bindings(bindings: Iterable[Binding | tuple[str, ...]]) -> list[Binding]:
    return [b for b in bindings if isinstance(b, Binding)]


def key_sections(app: TuichatApp) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section title, [(keys, what they do)]) from the bindings."""
    from tuichat.ui.widgets.composer import Composer
    from tuichat.ui.widgets.timeline_view import TimelineView

    keymap = app.config.keys

    def rows(bindings: Iterable[Binding]) -> list[tuple[str, str]]:
        return [
            (", ".join(key_label(k) for k in bound_keys(b, keymap)), b.description)
            for b in bindings
            if b.description
        ]

    anywhere = rows(_bindings(app.BINDINGS))
    anywhere.append((key_label(app.COMMAND_PALETTE_BINDING), "Command palette"))
    composer = [(key_label(key), what) for key, what in Composer.KEYS_READ]
    composer += rows(_bindings(Composer.BINDINGS))
    timeline = rows(_bindings(TimelineView.BINDINGS))
    return [
        ("Anywhere", anywhere),
        ("In the composer", composer),
        (f"On a selected message ({app.key_label('select_message')} selects)", timeline),
    ]


def _table(rows: Iterable[tuple[str, str]]) -> Table:
    """Keys (or usages) on the left, what they do on the right, wrapped
    under itself when the screen is narrow."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style=Style(bold=True), no_wrap=True)
    table.add_column(overflow="fold")
    for left, right in rows:
        table.add_row(Text(safe_line(f"  {left}")), Text(safe_line(right)))
    return table


def help_content(app: TuichatApp) -> Group:
    heading = Style(bold=True, underline=True)
    parts: list[RenderableType] = []
    for title, rows in key_sections(app):
        parts += [Text(safe_line(title), style=heading), _table(rows), Text("")]
    parts.append(Text("Commands (type them in the composer)", style=heading))
    parts.append(_table((spec.usage, spec.summary) for spec in COMMANDS.values()))
    parts.append(Text("  Start a message with // to send text that begins with /."))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 100%; max-width: 110; height: 100%; max-height: 40;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen #help-text { width: 100%; }
    """

    BINDINGS = [Binding("escape,q,f1", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        from tuichat.ui.app import TuichatApp

        app = self.app
        assert isinstance(app, TuichatApp)
        with VerticalScroll(id="help-scroll"):
            yield Static(help_content(app), id="help-text", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()
