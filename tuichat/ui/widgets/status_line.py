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
    ConnectionState.LOADING_ROOMS: ("Loading rooms", "yellow"),  # issue 25
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
    if state is ConnectionState.LOADING_ROOMS:
        # "Loading rooms (1,200 of 2,000)…": the count is the news.
        text.append(f" ({detail})…" if detail else "…")
    elif detail:
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


class _Current:
    """The room on screen when the message is given."""


CURRENT = _Current()


class Feedback(Static):
    """Lines under the timeline for command results and errors. Each belongs
    to a room (the one on screen when its action started): switching rooms
    shows that room's line only, and a line about an action in progress is
    taken away when the action ends (`end`)."""

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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._room: str | None = None
        self._lines: dict[str | None, tuple[SafeText, bool]] = {}

    @property
    def room(self) -> str | None:
        """The room on screen (its line is the one shown)."""
        return self._room

    @property
    def text(self) -> str:
        """The line shown, or "" (tests' sake)."""
        entry = self._lines.get(self._room)
        return entry[0] if entry else ""

    def set_room(self, room_id: str | None) -> None:
        self._room = room_id
        self._show_current()

    def show(
        self, message: SafeText, *, error: bool = False, room: str | _Current | None = CURRENT
    ) -> None:
        """`message`: our text, or one with remote parts (an error from the
        server, a name), made by `safe_text`/`safe_line`/`trusted`."""
        key = self._room if isinstance(room, _Current) else room
        self._lines[key] = (message, error)
        self._show_current()

    def hide(self, room: str | _Current | None = CURRENT) -> None:
        self._lines.pop(self._room if isinstance(room, _Current) else room, None)
        self._show_current()

    def end(self, message: SafeText, room: str | None) -> None:
        """An action ended: its progress line goes, unless something (its
        result, an error) has replaced it."""
        entry = self._lines.get(room)
        if entry is not None and entry[0] == message:
            self.hide(room)

    def _show_current(self) -> None:
        entry = self._lines.get(self._room)
        if entry is None:
            self.remove_class("-visible")
            return
        message, error = entry
        self.set_class(error, "-error")
        self.add_class("-visible")
        self.update(Text(message))
