"""Alerts: what the user is told, and asked, about notifications and unread
rooms.

`/notify` shows or sets the room's setting (push rules Element shares),
`/keyword` the keywords, `/unread` marks the room unread; reading a room
marked unread clears the flag on the server. A key jumps to the next room
with a highlight, then to the next unread one; the Mentions view lists the
messages that highlighted you, and Enter jumps to one in its room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuichat.model.activity import mentions, next_activity
from tuichat.model.sanitize import safe_text, trusted

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
    from tuichat.model.state import Changes
    from tuichat.ui.app import TuichatApp

GROUP_WORDS = {
    "all": "all messages; DMs and mentions ring",
    "mentions": "mentions and keywords only",
}
MODE_WORDS = {
    "default": "the account's default",
    "all": "all messages, with a sound",
    "mentions": "mentions and keywords only",
    "mute": "muted: nothing notifies",
}


class Alerts:
    def __init__(self, app: TuichatApp) -> None:
        self.app = app

    @property
    def service(self) -> MatrixService | None:
        return self.app.service

    def _show(self, text: str, *, error: bool = False) -> None:
        self.app.main.feedback.show(safe_text(text), error=error)

    def after(self, changes: Changes) -> None:
        """The window title's count of highlights; rooms marked unread
        that reading cleared: told to the server."""
        state = self.app.state
        if changes.rooms:
            self.app.notifier.highlights(
                sum(r.highlight for r in state.rooms if r.notify_mode != "mute")
            )
        rooms = list(dict.fromkeys([*changes.unmarked, *state.unmarked]))
        state.unmarked.clear()
        if self.service is not None:
            for room_id in rooms:
                self.app.chat.run_service_call(self.service.set_marked_unread(room_id, False))

    # -- commands ------------------------------------------------------------------------

    def room_mode(self, room_id: str, mode: str | None) -> None:
        state = self.app.state
        if mode is None:
            current = state.room_modes.get(room_id, "default")
            words = MODE_WORDS.get(current, current)
            if current == "default":
                words = f"the account's default ({GROUP_WORDS[state.group_default]})"
            self._show(f"Notifications here: {words}.")
            return
        service = self.service
        assert service is not None

        async def run() -> None:
            if await service.set_room_notifications(room_id, mode):
                self._show(f"Notifications here: {MODE_WORDS[mode]}.")

        self.app.chat.run_service_call(run())

    def group_default(self, mode: str) -> None:
        service = self.service
        assert service is not None

        async def run() -> None:
            if await service.set_group_default(mode):
                self._show(f"Group rooms by default: {GROUP_WORDS[mode]}.")

        self.app.chat.run_service_call(run())

    def keyword(self, args: tuple[str, ...]) -> None:
        state = self.app.state
        if not args:
            listed = ", ".join(state.keywords) if state.keywords else "none"
            self._show(f"Keywords: {listed}.")
            return
        operation, word = args
        service = self.service
        assert service is not None

        async def run() -> None:
            if await service.set_keyword(word, operation == "add"):
                done = "added" if operation == "add" else "removed"
                self._show(f"Keyword {word} {done}.")

        self.app.chat.run_service_call(run())

    def mark_unread(self, room_id: str) -> None:
        service = self.service
        assert service is not None
        self.app.chat.run_service_call(service.set_marked_unread(room_id, True))

    # -- keys and views ------------------------------------------------------------------

    def next_activity(self) -> None:
        room_id = next_activity(self.app.state)
        if room_id is None:
            self.app.main.feedback.show(trusted("No other room has unread messages."))
        else:
            self.app.chat.switch_room(room_id)

    def open_mentions(self) -> None:
        from tuichat.ui.screens.mentions import MentionsScreen

        app = self.app

        def chosen(choice: tuple[str, str] | None) -> None:
            if choice is not None:
                room_id, event_id = choice
                app.chat.switch_room(room_id)
                view = app.main.timeline
                if view.select_key(event_id):
                    view.focus()
                    return
            app.main.composer.focus()

        app.push_screen(MentionsScreen(mentions(app.state)), chosen)
