"""The line above the composer while replying to or editing a message."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from tuichat.model.draft import Draft, DraftKind
from tuichat.model.rich_body import plain_text
from tuichat.model.sanitize import safe_line


class DraftBar(Static):
    DEFAULT_CSS = """
    DraftBar {
        height: 1;
        padding: 0 1;
        color: $text-muted;
        background: $boost;
        display: none;
    }
    DraftBar.-visible { display: block; }
    """

    def show_draft(self, draft: Draft) -> None:
        """The message replied to or edited: its text is remote and goes in
        as Text, never as markup."""
        item = draft.item
        what = plain_text(item.formatted) if item.formatted is not None else item.body
        shown = safe_line(" ".join(what.split()))
        text = Text(no_wrap=True, overflow="ellipsis")
        if draft.kind is DraftKind.REPLY:
            text.append("↳ Replying to ")
            text.append(safe_line(item.sender_name), Style(bold=True))
            text.append(f": {shown}")
        else:
            text.append("✎ Editing: ")
            text.append(shown)
        text.append("   Esc cancels", Style(dim=True))
        self.update(text)
        self.add_class("-visible")

    def hide(self) -> None:
        self.remove_class("-visible")
