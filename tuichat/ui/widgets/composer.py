"""The composer: Enter sends, Alt+Enter (or Ctrl+J) inserts a newline, Up on
an empty composer edits your last message in the room (as in Element), Tab
after `@` completes a member's name (a mention), Escape cancels a reply or
edit. PageUp/PageDown scroll the timeline, End on an empty composer (or
Ctrl+End) jumps to its newest message."""

from __future__ import annotations

import os
from typing import ClassVar

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from tuichat.model.keys import key_label

# Keys that start a new line. Handled as the key arrives, not as a binding:
# a binding runs only once the key has bubbled up to the App, and in a
# burst of typing (a paste-speed `Ctrl+J x Ctrl+J y`) the letters after it
# were inserted first ("xy" then two newlines).
NEWLINE_KEYS = ("alt+enter", "ctrl+j", "shift+enter")
SEND_KEY = "enter"


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
        Binding(",".join(NEWLINE_KEYS), "newline", "New line", show=False),
        Binding("escape", "cancel", "Cancel reply/edit", show=False),
        # TextArea takes these for scrolling sideways (the composer wraps its
        # lines, so there is nothing to scroll): the App's room keys instead.
        Binding("ctrl+pageup", "app.previous_room", "Previous room", show=False),
        Binding("ctrl+pagedown", "app.next_room", "Next room", show=False),
        # The timeline's keys, as in every chat client: the composer keeps
        # the focus while the reader scrolls.
        Binding("pageup", "scroll_timeline('page_up')", "Scroll the timeline up", show=False),
        Binding("pagedown", "scroll_timeline('page_down')", "Scroll the timeline down", show=False),
        Binding("ctrl+end", "scroll_timeline('latest')", "Jump to the newest message", show=False),
    ]

    # Keys the composer reads itself (in `_on_key`, not as bindings), for
    # the Help screen: (key, what it does).
    KEYS_READ: ClassVar[tuple[tuple[str, str], ...]] = (
        (SEND_KEY, "Send the message"),
        ("up", "Edit your last message in this room (in an empty composer)"),
        ("end", "Jump to the newest message (in an empty composer)"),
        ("tab", "Complete a @name, or the path after /upload"),
    )

    class Submitted(Message):
        def __init__(self, text: str, mentions: dict[str, str] | None = None) -> None:
            super().__init__()
            self.text = text
            # Names completed with Tab that are still in the text -> user ids.
            self.mentions = mentions or {}

    class Cancelled(Message):
        """Escape: drop the reply or edit being written."""

    class EditLast(Message):
        """Up on an empty composer: edit your newest message in this room."""

    class ScrollTimeline(Message):
        """Scroll the timeline: "page_up", "page_down" or "latest"."""

        def __init__(self, where: str) -> None:
            super().__init__()
            self.where = where

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        # The keys named as the composer reads them (Enter sends, the first
        # of NEWLINE_KEYS starts a new line).
        self.placeholder = (
            f"Message — {key_label(SEND_KEY)} sends, {key_label(NEWLINE_KEYS[0])} for a new line, "
            "/help for commands"
        )
        # (display name, user id) of the room's members, for completion.
        self.members: list[tuple[str, str]] = []
        self.mentions: dict[str, str] = {}
        self._completion: tuple[str, list[tuple[str, str]], int] | None = None

    async def _on_key(self, event: events.Key) -> None:
        if event.key == SEND_KEY:
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        if event.key == "up" and not self.text:
            event.stop()
            event.prevent_default()
            self.post_message(self.EditLast())
            return
        if event.key == "end" and not self.text:
            event.stop()
            event.prevent_default()
            self.post_message(self.ScrollTimeline("latest"))
            return
        if event.key == "tab" and (self.complete_path() or self.complete_mention()):
            event.stop()
            event.prevent_default()
            return
        if event.key != "tab":
            self._completion = None
        await super()._on_key(event)

    def complete_path(self) -> bool:
        """After `/upload `, Tab completes the path: the common part of the
        matches, a "/" after a directory."""
        text = self.text
        if not text.startswith("/upload ") or "\n" in text:
            return False
        fragment = text[len("/upload ") :]
        matches = path_matches(fragment)
        if not matches:
            return False
        # Character by character on purpose: "rep" completes to "report".
        completed = os.path.commonprefix(matches)  # noqa: RUF071
        if len(matches) == 1 and os.path.isdir(os.path.expanduser(completed)):
            completed += "/"
        if completed != fragment:
            self.text = "/upload " + completed
            self.move_cursor(self.document.end)
        return True

    def complete_mention(self) -> bool:
        """Complete the `@word` before the cursor to a member's name; Tab
        again cycles through the other matches. Returns False (Tab moves
        focus as usual) when there is nothing to complete."""
        row, column = self.cursor_location
        line = self.document.get_line(row)
        if self._completion is not None:
            prefix, matches, number = self._completion
            start = column - len(matches[number][0])
            number = (number + 1) % len(matches)
        else:
            start = line.rfind("@", 0, column)
            prefix = line[start + 1 : column] if start >= 0 else ""
            if start < 0 or " " in prefix or (start > 0 and not line[start - 1].isspace()):
                return False
            wanted = prefix.lower()
            matches = [
                (name, user_id)
                for name, user_id in self.members
                if name.lower().startswith(wanted) or user_id[1:].lower().startswith(wanted)
            ]
            if not matches:
                return False
            number = 0
        name, user_id = matches[number]
        self.replace(name, (row, start), (row, column))
        self.mentions[name] = user_id
        self._completion = (prefix, matches, number)
        return True

    def action_newline(self) -> None:
        self.insert("\n")

    def action_cancel(self) -> None:
        self.post_message(self.Cancelled())

    def action_scroll_timeline(self, where: str) -> None:
        self.post_message(self.ScrollTimeline(where))

    def submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        mentions = {name: user for name, user in self.mentions.items() if name in text}
        self.mentions = {}
        self._completion = None
        self.clear()
        self.post_message(self.Submitted(text, mentions))


def path_matches(fragment: str, limit: int = 200) -> list[str]:
    """Paths starting with `fragment` (as typed: `~` kept), sorted."""
    import glob  # only when completing: not on the start-up path

    expanded = os.path.expanduser(fragment)
    pattern = glob.escape(expanded) + "*"
    found = sorted(glob.glob(pattern))[:limit]
    if fragment.startswith("~"):
        home = os.path.expanduser("~")
        found = ["~" + match[len(home) :] for match in found]
    return found
