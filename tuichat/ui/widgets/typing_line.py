"""Who is typing in the room on screen."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from tuichat.model.sanitize import SafeText


def typing_text(names: Sequence[SafeText]) -> str:
    if not names:
        return ""
    if len(names) == 1:
        return f"{names[0]} is typing…"
    if len(names) <= 3:
        return f"{', '.join(names[:-1])} and {names[-1]} are typing…"
    return f"{names[0]}, {names[1]} and {len(names) - 2} others are typing…"


class TypingLine(Static):
    DEFAULT_CSS = """
    TypingLine {
        height: 1;
        padding: 0 1;
        color: $text-muted;
        text-style: italic;
    }
    """

    def show(self, names: Sequence[SafeText]) -> None:
        # Names are remote: sanitised by the caller, placed as Text, never
        # parsed as markup.
        self.update(Text(typing_text(names), no_wrap=True, overflow="ellipsis"))
