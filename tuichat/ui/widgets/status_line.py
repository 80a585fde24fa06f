"""The status line: connection and sync state, and the last command result."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from tuichat.model.connection import ConnectionState
from tuichat.model.sanitize import SafeText

_STATE_LABELS = {
    ConnectionState.CONNECTING: ("connecting…", "yellow"),
    ConnectionState.LOADING: ("opening the encrypted store…", "yellow"),
    ConnectionState.SYNCING: ("syncing…", "yellow"),
    ConnectionState.SYNCED: ("synced", "green"),
    ConnectionState.RECONNECTING: ("reconnecting", "red"),
    ConnectionState.STOPPED: ("stopped", "red"),
}


def status_text(user_id: SafeText, state: ConnectionState, detail: SafeText | None = None) -> Text:
    """`detail` is often a server's or the network's error text: the caller
    passes it through the sanitiser (`safe_line`)."""
    label, colour = _STATE_LABELS[state]
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("● ", style=Style(color=colour))
    text.append(label)
    if detail:
        text.append(f" ({detail})", style=Style(dim=True))
    if user_id:
        text.append("   ")
        text.append(user_id, style=Style(dim=True))
    return text


class StatusLine(Static):
    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    """


class Feedback(Static):
    """One line under the timeline for command results and errors."""

    DEFAULT_CSS = """
    Feedback {
        height: auto;
        max-height: 3;
        padding: 0 1;
        color: $text-muted;
        display: none;
    }
    Feedback.-error { color: $error; }
    Feedback.-visible { display: block; }
    """

    def show(self, message: SafeText, *, error: bool = False) -> None:
        """`message`: our text, or one with remote parts (an error from the
        server, a name), made by `safe_text`/`safe_line`/`trusted`."""
        self.set_class(error, "-error")
        self.add_class("-visible")
        self.update(Text(message))

    def hide(self) -> None:
        self.remove_class("-visible")
