"""A room's settings: name, topic, encryption, who can read the history, who
can join, and the members with their power levels. What your power level
allows is editable; the rest is shown read-only with the level it needs.
The dialog's result is what changed (the caller sends it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from tuichat.model.power_levels import MAX_LEVEL
from tuichat.model.sanitize import SafeText, safe_line, trusted

HISTORY_CHOICES = (
    ("Anyone (world readable)", "world_readable"),
    ("Members, since they could first see it (shared)", "shared"),
    ("Members, since they were invited", "invited"),
    ("Members, since they joined", "joined"),
)
JOIN_CHOICES = (
    ("Only people invited", "invite"),
    ("Anyone (public)", "public"),
    ("People who ask and are let in (knock)", "knock"),
)


@dataclass(frozen=True)
class SettingsView:
    """What the dialog shows: current values (sanitised) and what the user
    may change (from the power levels)."""

    name: str
    topic: str
    encrypted: bool
    history: str
    join_rule: str
    members: Sequence[tuple[str, str, int]]  # (user id, name, level), sanitised
    may: frozenset[str]  # of: name, topic, encryption, history, join_rules


@dataclass(frozen=True)
class SettingsChange:
    name: str | None = None
    topic: str | None = None
    encrypt: bool = False
    history: str | None = None
    join_rule: str | None = None

    @property
    def empty(self) -> bool:
        return self == SettingsChange()


class RoomSettingsDialog(ModalScreen[SettingsChange | None]):
    DEFAULT_CSS = """
    RoomSettingsDialog { align: center middle; }
    RoomSettingsDialog > Vertical {
        width: 84; height: auto; max-height: 90%; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    RoomSettingsDialog Input, RoomSettingsDialog Select { margin-bottom: 1; }
    RoomSettingsDialog VerticalScroll { height: auto; max-height: 10; }
    RoomSettingsDialog Horizontal { height: auto; align-horizontal: right; }
    RoomSettingsDialog Button { margin-left: 2; }
    """

    BINDINGS = [Binding("escape", "app.pop_screen", "Close")]

    def __init__(self, title: SafeText, view: SettingsView) -> None:
        super().__init__()
        self.title_text = title
        self.view = view

    def compose(self) -> ComposeResult:
        view, may = self.view, self.view.may
        with Vertical():
            yield Label(Text.assemble(("Settings of ", "bold"), (self.title_text, "bold")))
            yield Label(trusted("Name"))
            yield Input(safe_line(view.name), id="name", disabled="name" not in may)
            yield Label(trusted("Topic"))
            yield Input(safe_line(view.topic), id="topic", disabled="topic" not in may)
            yield Checkbox(
                trusted("End-to-end encrypted (cannot be turned off)"),
                view.encrypted,
                id="encrypt",
                disabled=view.encrypted or "encryption" not in may,
            )
            yield Label(trusted("Who can read the history"))
            yield Select(
                HISTORY_CHOICES,
                value=view.history
                if view.history in dict(map(reversed, HISTORY_CHOICES))
                else Select.BLANK,
                id="history",
                disabled="history" not in may,
                allow_blank=True,
            )
            yield Label(trusted("Who can join"))
            yield Select(
                JOIN_CHOICES,
                value=view.join_rule
                if view.join_rule in dict(map(reversed, JOIN_CHOICES))
                else Select.BLANK,
                id="join_rule",
                disabled="join_rules" not in may,
                allow_blank=True,
            )
            yield Label(trusted("Members and power levels"))
            with VerticalScroll():
                for user_id, name, level in view.members:
                    line = Text(safe_line(name), style="bold")
                    shown = "creator" if level > MAX_LEVEL else f"level {level}"
                    line.append(safe_line(f"  {user_id}  {shown}"), style="dim")
                    yield Static(line)
            if not may:
                yield Static(
                    Text(trusted("Your power level lets you change nothing here."), style="italic")
                )
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Save", variant="primary", id="save", disabled=not may)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        self.dismiss(self.changes())

    def changes(self) -> SettingsChange:
        """What differs from what was shown."""
        view = self.view
        name = self.query_one("#name", Input).value.strip()
        topic = self.query_one("#topic", Input).value.strip()
        history = self.query_one("#history", Select).value
        join_rule = self.query_one("#join_rule", Select).value
        return SettingsChange(
            name=name if name and name != view.name else None,
            topic=topic if topic != view.topic else None,
            encrypt=self.query_one("#encrypt", Checkbox).value and not view.encrypted,
            history=history if isinstance(history, str) and history != view.history else None,
            join_rule=join_rule
            if isinstance(join_rule, str) and join_rule != view.join_rule
            else None,
        )
