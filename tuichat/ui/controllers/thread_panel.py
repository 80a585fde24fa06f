"""ThreadPanel: the thread pane and the thread list, between `ChatState`
and the widgets.

Opening a thread (Enter on a root, the thread key on any message, `/thread`
or the thread list) shows its `ThreadView` in the pane, loads its earlier
replies through the relations API and marks it read (a threaded receipt).
The pane's composer writes in the thread: a reply to the thread (falling
back to its latest event), or to a message in it (a quote), or an edit.
Changes to the open thread are drawn after every applied event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from tuichat.model.draft import Draft, DraftKind
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.sanitize import safe_line, trusted
from tuichat.model.threads import ThreadView
from tuichat.model.timeline import EDITABLE_KINDS, ChangeKind, TimelineChange
from tuichat.ui.widgets.timeline_view import HistoryState

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
    from tuichat.model.state import Changes, ChatState
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.thread_list import MyThreadsScreen, ThreadListScreen
    from tuichat.ui.widgets.thread_pane import ThreadPane

# Below this many columns the pane goes under the main timeline.
SIDE_BY_SIDE_COLUMNS = 120


class ThreadPanel:
    def __init__(self, app: TuichatApp) -> None:
        self.app = app
        self.state: ChatState = app.state
        self.room_id: str | None = None
        self.view: ThreadView | None = None
        self.draft: Draft | None = None
        self._offset = 0
        self._loading = False
        self.list_screen: ThreadListScreen | MyThreadsScreen | None = None

    @property
    def pane(self) -> ThreadPane:
        return self.app.main.thread_pane

    @property
    def service(self) -> MatrixService | None:
        return self.app.service

    @property
    def root(self) -> str | None:
        return self.view.root if self.view is not None else None

    # -- opening and closing -------------------------------------------------------------

    def open_for(self, item: TimelineItem) -> None:
        """The thread `item` is the root of, or replies in (a new thread
        starts on any message of the main timeline)."""
        root = item.thread_root or item.event_id
        if root is None or item.is_local_echo:
            self.app.main.feedback.show(trusted("This message is not sent yet."), error=True)
            return
        self.open(root)

    def open(self, root: str) -> None:
        room_id = self.state.current_room_id
        if room_id is None:
            return
        if self.view is not None:
            self.view.close()
        timeline = self.state.timeline(room_id)
        self.room_id = room_id
        self.view = ThreadView(timeline, root)
        self.draft = None
        self._offset = self.view.offset
        pane = self.pane
        pane.panel = self
        pane.add_class("-open")
        pane.show_draft_text(None)
        pane.timeline.set_items(self.view)
        self.view.changes()  # drawn by set_items
        self._show_title()
        pane.composer.focus()
        thread = timeline.thread(root)
        if timeline.root_item(root) is None:
            self.app.chat.parent_missing(root)
        if thread.next_token is None and thread.has_more:
            self._load(None)
        self._show_history()
        self._mark_read()

    def close(self) -> None:
        if self.view is not None:
            self.view.close()
        self.view = None
        self.room_id = None
        self.draft = None
        pane = self.pane
        pane.remove_class("-open")
        pane.timeline.set_items(())
        self.app.main.composer.focus()

    def cancelled(self) -> None:
        """Escape in the pane's composer: drop the draft, else close."""
        if self.draft is not None:
            if self.draft.kind is DraftKind.EDIT:
                self.pane.composer.clear()
            self.draft = None
            self.pane.show_draft_text(None)
        else:
            self.close()

    def fit(self, columns: int) -> None:
        """Beside the main timeline when wide enough, else below it."""
        self.app.main.panes.set_class(columns < SIDE_BY_SIDE_COLUMNS, "-stacked")

    # -- drawing -----------------------------------------------------------------------------

    def draw(self, changes: Changes) -> None:
        """After an applied event: the open thread's changes, the thread
        list, and closing the pane when its room is no longer shown."""
        screen = self.list_screen
        if (
            screen is not None
            and changes.threads
            and (screen.room_id is None or screen.room_id in changes.threads)
        ):
            screen.refresh_threads()
        view = self.view
        if view is None:
            return
        if self.room_id != self.state.current_room_id:
            self.close()
            return
        if self.room_id in changes.threads:  # a page, or the server's counts
            self._loading = False
            self._show_history()
            if view.thread.server_counts != (0, 0):
                # Counted before our receipt for the open thread reached it.
                view.thread.server_counts = (0, 0)
                self.app.main.timeline.apply_change(
                    self.state.timeline(self.room_id or "").refresh_roots([view.root])
                )
        pending = view.changes()
        if not pending:
            return
        timeline = self.pane.timeline
        structural = [c for c in pending if c.kind is not ChangeKind.REPLACED]
        if view.offset != self._offset or (structural and len(pending) > 1):
            # The root came, or several changes at once: each change is
            # relative to the one before, but the view is already at the
            # end of all of them.
            self._offset = view.offset
            timeline.apply_change(TimelineChange(ChangeKind.RESET))
        else:
            for change in pending:
                timeline.apply_change(change)
        self._show_title()
        self._mark_read()  # the open thread is read, as the room shown is

    def _show_history(self) -> None:
        """The line above the replies: more to load, loading, or the start."""
        view = self.view
        if view is None:
            return
        if self._loading:
            state = HistoryState.LOADING
        elif view.thread.has_more and view.thread.next_token is not None:
            state = HistoryState.MORE
        else:
            state = HistoryState.START
        self.pane.timeline.set_history(state)

    def _show_title(self) -> None:
        view, room_id = self.view, self.room_id
        if view is None or room_id is None:
            return
        summary = self.state.timeline(room_id).thread_summary(view.root)
        count = summary.count if summary is not None else 0
        self.pane.show_title(
            safe_line(f"Thread · {count} repl{'y' if count == 1 else 'ies'} · Escape closes")
        )

    def _mark_read(self) -> None:
        room_id, root, service = self.room_id, self.root, self.service
        if room_id is None or root is None:
            return
        timeline = self.state.timeline(room_id)
        marker = timeline.mark_thread_read(root)
        if marker is None:
            return
        change = timeline.refresh_roots([root])
        self.app.main.timeline.apply_change(change)
        self.state.rooms.set_counts(room_id, *timeline.unread_counts(self.state.user_id))
        self.app.chat.refresh_room_list()
        if service is not None:
            self.app.chat.run_service_call(service.send_thread_receipt(room_id, marker, root))

    def near_top(self) -> None:
        view = self.view
        if view is None or self._loading:
            return
        thread = view.thread
        if thread.has_more and thread.next_token is not None:
            self._load(thread.next_token)
            self._show_history()

    def _load(self, token: str | None) -> None:
        room_id, root, service = self.room_id, self.root, self.service
        if room_id is None or root is None or service is None:
            return
        self._loading = True

        async def run() -> None:
            try:
                await service.load_thread(room_id, root, token)
            finally:
                self._loading = False
                self._show_history()

        self.app.run_worker(run(), group="threads", exit_on_error=False)

    # -- writing -------------------------------------------------------------------------------

    def item_action(self, item: TimelineItem, action: str) -> None:
        own = item.sender == self.state.user_id
        if action in ("reply", "thread") or (action == "open" and item.attachment is None):
            if item.event_id is None:
                return
            self._set_draft(Draft(DraftKind.REPLY, item))
        elif action == "edit":
            if not own or item.kind not in EDITABLE_KINDS or item.event_id is None:
                self.app.main.feedback.show(
                    trusted("Only your own messages can be edited."), error=True
                )
                return
            self._set_draft(Draft(DraftKind.EDIT, item))
            composer = self.pane.composer
            composer.text = item.body
            composer.move_cursor(composer.document.end)
        else:
            self.app.chat.item_action(item, action)

    def edit_last(self) -> None:
        """Up on the pane's empty composer: edit your newest reply in it."""
        view = self.view
        if view is None:
            return
        timeline = view.thread.timeline
        for index in range(timeline.remote_count - 1, max(-1, timeline.remote_count - 500), -1):
            item = timeline[index]
            if (
                item.sender == self.state.user_id
                and item.kind in EDITABLE_KINDS
                and item.attachment is None
            ):
                self.item_action(item, "edit")
                return

    def _set_draft(self, draft: Draft) -> None:
        self.draft = draft
        item = draft.item
        what = "Replying to" if draft.kind is DraftKind.REPLY else "Editing"
        preview = " ".join(item.body.split())[:60]
        self.pane.show_draft_text(
            safe_line(f"{what} {item.sender_name}: {preview} (Escape cancels)")
        )
        self.pane.composer.focus()

    def submitted(self, text: str, mentions: Mapping[str, str]) -> None:
        room_id, root, service = self.room_id, self.root, self.service
        if text.startswith("/"):
            self.app.chat.submitted(text, mentions)
            return
        if room_id is None or root is None:
            return
        if service is None:
            self.app.main.feedback.show(trusted("Not connected yet."), error=True)
            return
        draft, self.draft = self.draft, None
        self.pane.show_draft_text(None)
        if draft is not None and draft.kind is DraftKind.EDIT and draft.item.event_id:
            service.edit_message(
                room_id,
                draft.item.event_id,
                text,
                emote=draft.item.kind is ItemKind.EMOTE,
                mentions=dict(mentions),
            )
            return
        reply = draft.item if draft is not None else None
        thread = self.state.timeline(room_id).thread(root)
        latest = thread.timeline.last_event_id or root
        self.pane.timeline.jump_to_latest()
        service.send_thread_message(
            room_id,
            root,
            text,
            latest=latest,
            reply_to=reply.event_id if reply is not None else None,
            reply_sender=reply.sender if reply is not None else None,
            mentions=dict(mentions),
        )

    # -- the thread list ---------------------------------------------------------------------

    def open_list(self, *, participated: bool = False) -> None:
        room_id = self.state.current_room_id
        if room_id is None:
            self.app.chat.choose_a_room()
            return
        from tuichat.ui.screens.thread_list import ThreadListScreen

        screen = self.list_screen = ThreadListScreen(self, room_id, participated=participated)
        self.app.push_screen(screen, self._chosen)

    def _chosen(self, root: str | None) -> None:
        self.list_screen = None
        if root:
            self.open(root)

    def open_mine(self) -> None:
        """Your threads in every room, unread first."""
        from tuichat.ui.screens.thread_list import MyThreadsScreen

        screen = self.list_screen = MyThreadsScreen(self)
        self.app.push_screen(screen, self._chosen_anywhere)

    def _chosen_anywhere(self, choice: str | None) -> None:
        self.list_screen = None
        if not choice:
            return
        room_id, _, root = choice.partition(" ")
        self.app.chat.switch_room(room_id)
        if self.state.current_room_id == room_id:
            self.open(root)
