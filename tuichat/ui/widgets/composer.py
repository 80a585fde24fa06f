"""The composer: Enter sends, Alt+Enter (or Ctrl+J) inserts a newline, Up on
an empty composer recalls the last message sent."""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 10;
        border: tall $primary 40%;
    }
    Composer:focus {
        border: tall $primary;
    }
    """

    BINDINGS = [
        Binding("alt+enter,ctrl+j,shift+enter", "newline", "Newline", show=False),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.last_sent: str | None = None
        self.placeholder = "Message — Enter sends, Alt+Enter for a new line, /help for commands"

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if event.key == "up" and not self.text and self.last_sent:
            event.stop()
            event.prevent_default()
            self.text = self.last_sent
            self.move_cursor(self.document.end)
            return
        await super()._on_key(event)

    def action_newline(self) -> None:
        self.insert("\n")

    def submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        self.last_sent = text
        self.clear()
        self.post_message(self.Submitted(text))
