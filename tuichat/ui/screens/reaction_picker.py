"""Pick a reaction: a row of common emoji (keys 1-8) or free text."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

COMMON_REACTIONS = ("👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "✅")


class ReactionPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ReactionPicker { align: center middle; }
    ReactionPicker > Vertical {
        width: 60; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    ReactionPicker Horizontal { height: auto; margin: 1 0; }
    ReactionPicker Button { min-width: 6; width: 6; margin-right: 1; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")] + [
        Binding(str(number), f"pick({number - 1})", show=False)
        for number in range(1, len(COMMON_REACTIONS) + 1)
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("React with (1-8, or type and press Enter):")
            with Horizontal():
                for number, emoji in enumerate(COMMON_REACTIONS):
                    yield Button(emoji, id=f"reaction-{number}")
            yield Input(placeholder="any emoji or short text", max_length=64, id="reaction-text")

    def on_mount(self) -> None:
        self.query_one("#reaction-0", Button).focus()

    def action_pick(self, number: int) -> None:
        if isinstance(self.focused, Input):
            return  # digits typed into the text field
        self.dismiss(COMMON_REACTIONS[number])

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        number = int((event.button.id or "reaction-0").rpartition("-")[2])
        self.dismiss(COMMON_REACTIONS[number])

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        key = event.value.strip()
        self.dismiss(key or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
