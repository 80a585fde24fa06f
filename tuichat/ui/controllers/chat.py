"""ChatController: the chat on the main screen, between `ChatState` and the
widgets.

It draws what `ChatState.apply` says changed, and carries out what the user
does in the conversation: switching rooms, writing (drafts, replies, edits,
typing notifications), sending, reacting, deleting, loading older history,
sending failed messages again. The main screen routes its widgets'
messages here; slash commands reach it through `CommandContext`.

Dialogs are imported where they open, here and in the other controllers:
none is on the first frame, and together they cost about 40 ms of start-up.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING

from tuichat.model.draft import Draft, DraftKind
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.poll_choice import choose
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted
from tuichat.model.timeline import EDITABLE_KINDS
from tuichat.ui.widgets.status_line import CURRENT, status_text
from tuichat.ui.widgets.timeline_view import HistoryState, MembershipDisplay

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
    from tuichat.model.state import Changes, ChatState
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.main import MainScreen

# While the user types, "typing" is sent again this often (it lasts 30 s).
TYPING_REFRESH_SECONDS = 20.0
# How far back Up on an empty composer looks for your last message.
EDIT_LAST_LOOKBACK = 2000


def retry_line(count: int) -> SafeText:
    """The line shown while a room's failed messages are sent again."""
    return safe_line(f"Sending {count} message(s) again…")


class ChatController:
    def __init__(self, app: TuichatApp) -> None:
        self.app = app
        self.state: ChatState = app.state
        self._typing_sent: tuple[str, float] | None = None  # (room id, when)
        self._parents_wanted: set[tuple[str, str]] = set()
        self._room_list_due = False

    @property
    def main(self) -> MainScreen:
        return self.app.main

    @property
    def service(self) -> MatrixService | None:
        return self.app.service

    @property
    def room_id(self) -> str | None:
        return self.state.current_room_id

    def key_label(self, binding_id: str) -> str:
        return self.app.key_label(binding_id)

    # -- drawing what changed ------------------------------------------------------------

    def draw(self, changes: Changes) -> None:
        """Redraw and tell what one applied event changed."""
        main, state = self.main, self.state
        for new in changes.new_messages:
            if not (new.room_id == state.current_room_id and self.app.app_focus):
                self.app.notifier.message(new.room_name, new.item)
        for change in changes.timeline:
            main.timeline.apply_change(change)
        for room_id, event_id in changes.read_markers:
            self._send_read_marker(room_id, event_id)
        for room_id, count in changes.retries_ended:
            main.feedback.end(retry_line(count), room_id)
        for failure in changes.send_failures:
            main.feedback.show(
                safe_text(
                    f"Message not sent: {failure.error}. "
                    f"{self.key_label('retry_failed')} (or /retry) sends it again."
                ),
                error=True,
                room=failure.room_id,
            )
        if changes.left:
            main.feedback.set_room(None)
        if changes.switch_to is not None:
            self.switch_room(changes.switch_to)
        elif changes.left:
            main.timeline.set_items(())
        if changes.history and state.current_room_id is not None:
            self.show_history_state(state.current_room_id)
        if changes.rooms:
            self.refresh_room_list()
        if changes.header:
            self.refresh_header()
        if changes.members and state.current_room_id is not None:
            self.update_members(state.current_room_id)
        if changes.status:
            self.show_status()
        for notice in changes.notices:
            main.feedback.show(
                safe_text(notice.text), error=notice.error, room=notice.room_id or CURRENT
            )
        if changes.typing:
            names = state.typing.get(state.current_room_id or "", ())
            main.typing.show(tuple(safe_line(name) for name in names))
        if changes.cached_rooms and self.service is not None:
            self.service.decrypt_cached_events()

    def _send_read_marker(self, room_id: str, event_id: str) -> None:
        if self.service is not None:
            self.service.set_read_marker(room_id, event_id)
        elif self.app.reader is not None:
            self.app.reader.record_read_marker(room_id, event_id)

    def refresh_room_list(self) -> None:
        """Redraw the room list once, after the events at hand are applied."""
        if not self._room_list_due:
            self._room_list_due = True
            self.app.call_after_refresh(self._show_room_list)

    def _show_room_list(self) -> None:
        self._room_list_due = False
        self.main.room_list.show_rooms(self.state.rooms.ordered(), self.state.current_room_id)

    def refresh_header(self) -> None:
        self.main.header.show_room(self.state.current_summary)

    def show_status(self) -> None:
        state = self.state
        self.main.status.update(
            status_text(
                safe_line(state.user_id), state.connection, safe_line(state.connection_detail)
            )
        )

    def show_history_state(self, room_id: str) -> None:
        """The marker above the shown room's timeline: more to load, or its start."""
        if room_id == self.state.current_room_id:
            more = self.state.timeline(room_id).has_more_history
            self.main.timeline.set_history(HistoryState.MORE if more else HistoryState.START)

    def update_members(self, room_id: str) -> None:
        """The composer completes the names of the room's members."""
        state = self.service.room_state(room_id) if self.service else None
        if state is None:
            self.main.composer.members = []
            return
        members = state.members(("join", "invite"))
        self.main.composer.members = sorted(
            ((state.member_name(user), user) for user in members if user != self.state.user_id),
            key=lambda pair: pair[0].lower(),
        )

    def _complete_members(self, room_id: str) -> None:
        """issue 25: syncs load members lazily; name completion offers them
        all once the room's list is fetched (in the background)."""
        service = self.service
        if service is None or service.members_complete(room_id):
            return

        async def fetch() -> None:
            loaded = await service.load_members(room_id, quiet=True)
            if loaded and self.state.current_room_id == room_id:
                self.update_members(room_id)

        self.app.run_worker(fetch(), group="members", exit_on_error=False)

    def set_membership_display(self, mode: MembershipDisplay) -> None:
        self.main.timeline.set_membership_display(mode)

    # -- rooms -----------------------------------------------------------------------------

    def switch_room(self, room_id: str) -> None:
        state, main = self.state, self.main
        summary = state.rooms.get(room_id)
        if summary is None:
            return
        if summary.membership is Membership.INVITE:
            self.app.people.answer_invite(summary)
            return
        if state.current_room_id != room_id:
            self.stop_typing()
            self.set_draft(None)
        state.select_room(room_id)
        if self.service is not None:
            self.service.show_room(room_id)  # sliding sync subscribes to it (issue 25)
        main.feedback.set_room(room_id)
        self.app.read_cached_room(room_id)
        timeline = state.timeline(room_id)
        main.timeline.set_items(timeline, unread_after=timeline.read_marker)
        main.typing.show(tuple(safe_line(name) for name in state.typing.get(room_id, ())))
        self.update_members(room_id)
        self._complete_members(room_id)
        self.show_history_state(room_id)
        # A timeline shorter than the screen is at its top already: older
        # history (an upgraded room's predecessor's too) without a scroll.
        main.timeline.call_after_refresh(main.timeline.ask_again)
        marker = state.mark_read(room_id)
        if marker is not None:
            self._send_read_marker(room_id, marker)
        self.refresh_header()
        self.refresh_room_list()

    def step_room(self, step: int) -> None:
        room_id = self.state.step_room(step)
        if room_id is not None:
            self.switch_room(room_id)

    def near_top(self) -> None:
        """Scrolled near the top: load older history, if there is more."""
        room_id = self.room_id
        if room_id is None or self.service is None or not self.main.timeline.still_near_top():
            return
        timeline = self.state.timeline(room_id)
        if not timeline.has_more_history:
            return
        oldest = next((item.event_id for item in timeline if item.event_id), None)
        self.main.timeline.set_history(HistoryState.LOADING)
        # Older history arrives as TimelinePrepended; the marker at the top
        # says "loading" until it has.
        self.app.run_worker(
            self.service.load_older(room_id, oldest), group="history", exit_on_error=False
        )

    def parent_missing(self, event_id: str) -> None:
        room_id = self.room_id
        if room_id is None or self.service is None:
            return
        wanted = (room_id, event_id)
        if wanted not in self._parents_wanted:
            self._parents_wanted.add(wanted)
            self.run_service_call(self.service.fetch_event(room_id, event_id))

    # -- writing ---------------------------------------------------------------------------

    def set_draft(self, draft: Draft | None) -> None:
        state, main = self.state, self.main
        if draft is None and state.draft is not None and state.draft.kind is DraftKind.EDIT:
            main.composer.clear()
        state.draft = draft
        if draft is None:
            main.draft_bar.hide()
        else:
            main.draft_bar.show_draft(draft)
            main.composer.focus()

    def start_edit(self, item: TimelineItem) -> None:
        self.set_draft(Draft(DraftKind.EDIT, item))
        composer = self.main.composer
        composer.text = item.body
        composer.move_cursor(composer.document.end)

    def edit_last(self) -> None:
        """Up on an empty composer edits your newest message in this room
        (Element's habit), looking back a bounded number of items."""
        if self.room_id is None:
            return
        timeline = self.state.timeline(self.room_id)
        last = timeline.remote_count - 1
        for index in range(last, max(-1, last - EDIT_LAST_LOOKBACK), -1):
            item = timeline[index]
            if (
                item.sender == self.state.user_id
                and item.kind in EDITABLE_KINDS
                and item.event_id is not None
                and item.attachment is None
            ):
                self.start_edit(item)
                return

    def composer_changed(self) -> None:
        """Typing notifications: on while there is text (sent again every 20
        s), off when the composer is emptied."""
        room_id, service = self.room_id, self.service
        if room_id is None or service is None:
            return
        text = self.main.composer.text
        if not text or text.startswith("/"):
            self.stop_typing()
            return
        now = time.monotonic()
        sent = self._typing_sent
        if sent is None or sent[0] != room_id or now - sent[1] > TYPING_REFRESH_SECONDS:
            self._typing_sent = (room_id, now)
            self.run_service_call(service.set_typing(room_id, True))

    def stop_typing(self) -> None:
        if self._typing_sent is not None and self.service is not None:
            self.run_service_call(self.service.set_typing(self._typing_sent[0], False))
        self._typing_sent = None

    def submitted(self, text: str, mentions: Mapping[str, str]) -> None:
        """The composer's text: a message, or a slash command."""
        # With the first thing sent, not at start-up (the command table and
        # its handlers cost about 9 ms).
        from tuichat.model import commands
        from tuichat.ui.command_context import CommandContext
        from tuichat.ui.commands import run_command

        feedback = self.main.feedback
        feedback.hide()
        parsed = commands.parse(text)
        if isinstance(parsed, commands.CommandError):
            feedback.show(safe_text(parsed.message), error=True)
        elif isinstance(parsed, commands.Message):
            self.send_text(parsed.text, mentions, emote=False, markdown=True)
        else:
            context = CommandContext(self.app, self, self.app.files, self.app.people)
            run_command(context, parsed, mentions)

    def choose_a_room(self) -> None:
        key = self.key_label("switch_room")  # as bound (the config may change it)
        self.main.feedback.show(safe_line(f"Choose a room first ({key})."), error=True)

    def send_text(
        self, text: str, mentions: Mapping[str, str], *, emote: bool, markdown: bool
    ) -> None:
        """Text typed in the composer: a new message, a reply, or an edit
        (whatever the draft bar says)."""
        main, service, room_id = self.main, self.service, self.room_id
        if service is None:
            main.feedback.show("Not connected yet.", error=True)
            return
        if room_id is None:
            self.choose_a_room()
            return
        self.stop_typing()
        draft, self.state.draft = self.state.draft, None
        main.draft_bar.hide()
        if draft is not None and draft.kind is DraftKind.EDIT and draft.item.event_id:
            original = draft.item
            service.edit_message(
                room_id,
                original.event_id,
                text,
                emote=emote or original.kind is ItemKind.EMOTE,
                markdown=markdown,
                mentions=dict(mentions),
            )
            return
        reply = draft.item if draft is not None and draft.kind is DraftKind.REPLY else None
        main.timeline.jump_to_latest()  # what you send shows, as in Element
        service.send_message(
            room_id,
            text,
            emote=emote,
            markdown=markdown,
            mentions=dict(mentions),
            reply_to=reply.event_id if reply else None,
            reply_sender=reply.sender if reply else None,
        )

    # -- the selected message ------------------------------------------------------------------

    def vote_by_key(self, item: TimelineItem, number: int) -> None:
        """A digit on a selected poll (issue 22): vote for answer `number`,
        or toggle it in your selection on a multi-choice poll."""
        feedback = self.main.feedback
        room_id, service = self.room_id, self.service
        if item.poll is None or item.event_id is None or room_id is None or service is None:
            feedback.show(trusted("Digits vote on a selected poll."), error=True)
            return
        timeline = self.state.timeline(room_id)
        results = timeline.polls.results(item.event_id, item.poll, item.sender, self.state.user_id)
        choice = choose(item.poll, results, number)
        if choice.answers is not None:
            service.vote(room_id, item.event_id, item.poll, list(choice.answers))
        feedback.show(safe_line(choice.message), error=choice.error)

    def follow_link(self, room_id: str) -> None:
        """To a replaced room's successor, or an upgraded room's predecessor:
        switch there if joined, else join it."""
        known = self.state.rooms.get(room_id)
        if known is not None and known.membership is Membership.JOIN:
            self.switch_room(room_id)
        elif self.service is not None:
            self.with_progress(safe_line(f"Joining {room_id}…"), self.service.join(room_id))

    def item_action(self, item: TimelineItem, action: str) -> None:
        feedback = self.main.feedback
        own = item.sender == self.state.user_id
        if action == "reply":
            self.set_draft(Draft(DraftKind.REPLY, item))
        elif action == "edit":
            if not own or item.kind not in EDITABLE_KINDS:
                feedback.show("Only your own messages can be edited.", error=True)
                return
            self.start_edit(item)
        elif action == "react":
            if item.kind not in EDITABLE_KINDS:
                feedback.show("Only messages can be reacted to.", error=True)
                return
            from tuichat.ui.screens.reaction_picker import ReactionPicker

            self.app.push_screen(ReactionPicker(), lambda key: self._react(item, key))
        elif action in ("open", "view"):
            files = self.app.files
            if item.link_room is not None and action == "open":  # issue 22: room upgrades
                self.follow_link(item.link_room)
                return
            if item.attachment is None:
                if action == "open":
                    self.set_draft(Draft(DraftKind.REPLY, item))  # Enter on a message: answer it
                return
            if action == "view" and item.attachment.is_image:
                files.view_image(item)
            else:
                files.download(item)
        elif action == "delete":
            if not own or item.kind is ItemKind.REDACTED:
                feedback.show("Only your own messages can be deleted.", error=True)
                return
            from tuichat.ui.screens.confirm import ConfirmDialog

            preview = item.body if len(item.body) < 200 else item.body[:200] + "…"
            self.app.push_screen(
                ConfirmDialog(trusted("Delete this message for everyone?"), safe_text(preview)),
                lambda yes: self._delete(item, bool(yes)),
            )

    def _react(self, item: TimelineItem, key: str | None) -> None:
        room_id, service = self.room_id, self.service
        if key and room_id and service and item.event_id:
            mine = self.state.timeline(room_id).own_reaction(item.event_id, key)
            if mine is not None:
                self.run_service_call(service.redact(room_id, mine))  # reacting again: undo
            else:
                service.react(room_id, item.event_id, key)
        self.main.timeline.focus()

    def _delete(self, item: TimelineItem, yes: bool) -> None:
        room_id, service = self.room_id, self.service
        if yes and room_id and service and item.event_id:
            self.run_service_call(service.redact(room_id, item.event_id))
        self.main.timeline.focus()

    def select_message(self) -> None:
        view = self.main.timeline
        view.focus()
        view.select_last()

    def latest_attachment(self) -> TimelineItem | None:
        """The selected file, else the newest one in this room."""
        selected = self.main.timeline.selected_item
        if selected is not None and selected.attachment is not None:
            return selected
        if self.room_id is None:
            return None
        timeline = self.state.timeline(self.room_id)
        for index in range(len(timeline) - 1, -1, -1):
            if timeline[index].attachment is not None:
                return timeline[index]
        return None

    # -- sending again ---------------------------------------------------------------------------

    def retry_failed(self) -> None:
        room_id, service = self.room_id, self.service
        if room_id is None or service is None:
            return
        failed = self.state.failed_echoes(room_id)
        for txn_id in failed:
            service.retry(room_id, txn_id)
        uploads = self.app.files.retry_uploads(room_id)
        feedback = self.main.feedback
        if failed:
            # Ends when the last of them is sent or fails again (`ChatState`).
            self.state.retrying[room_id] = len(failed)
            feedback.show(retry_line(len(failed)), room=room_id)
        elif uploads:
            pass  # each upload shows its own progress and outcome
        else:
            feedback.show(trusted("Nothing to retry in this room."))

    # -- service calls ----------------------------------------------------------------------------

    def run_service_call(self, call: Awaitable[object]) -> None:
        self.app.run_worker(call, group="commands", exit_on_error=False)  # type: ignore[arg-type]

    def with_progress(self, text: SafeText, call: Awaitable[object]) -> None:
        """A service call with a line saying it is under way, in the room
        where it was started, that goes when the call ends (unless its
        result or an error has taken its place)."""
        feedback, room = self.main.feedback, self.room_id

        async def run() -> None:
            feedback.show(text, room=room)
            try:
                await call
            finally:
                feedback.end(text, room)

        self.app.run_worker(run(), group="commands", exit_on_error=False)
