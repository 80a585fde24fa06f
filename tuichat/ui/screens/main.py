"""The main screen: room list, header, timeline, composer, status line.

What its widgets report (a room chosen, text submitted, an action on the
selected message, older history wanted) goes to the chat controllers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events, getters, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.draft_bar import DraftBar
from tuichat.ui.widgets.room_header import RoomHeader
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.status_line import Feedback, StatusLine
from tuichat.ui.widgets.thread_pane import ThreadPane
from tuichat.ui.widgets.timeline_view import TimelineView
from tuichat.ui.widgets.typing_line import TypingLine
from tuichat.ui.widgets.upload_bar import UploadBar

if TYPE_CHECKING:
    from tuichat.ui.controllers.attachments import Attachments
    from tuichat.ui.controllers.chat import ChatController

# Below this many columns the room list is hidden (F4 shows it): at 80
# columns a 32-column list left the messages 25, and at 30 the timeline none.
NARROW_COLUMNS = 70


def room_list_width(columns: int) -> int:
    """The room list's width for a terminal this wide: a quarter of it,
    between 16 and 32 columns."""
    return max(16, min(32, columns // 4))


class MainScreen(Screen[None]):
    """Holds the widgets; the controllers update them through these getters,
    which keep working while a modal screen is on top."""

    room_list = getters.query_one(RoomListView)
    header = getters.query_one(RoomHeader)
    timeline = getters.query_one("#timeline", TimelineView)
    feedback = getters.query_one(Feedback)
    composer = getters.query_one("#composer", Composer)
    draft_bar = getters.query_one(DraftBar)
    typing = getters.query_one(TypingLine)
    upload_bar = getters.query_one(UploadBar)
    status = getters.query_one(StatusLine)
    thread_pane = getters.query_one(ThreadPane)  # threads (issue 21)
    panes = getters.query_one("#panes", Horizontal)

    DEFAULT_CSS = """
    MainScreen #footer-slot { dock: bottom; height: 1; }
    MainScreen #panes { width: 1fr; }
    MainScreen #panes.-stacked { layout: vertical; }
    """

    # None: shown or hidden by the width; True/False: the user's choice (F4).
    _room_list_wanted: bool | None = None

    class Composed(Message):
        """The widgets exist: the App can fill them before the first frame."""

    def __init__(self, chat: ChatController, files: Attachments) -> None:
        super().__init__()
        self.chat = chat
        self.files = files

    def on_mount(self) -> None:
        self.app.post_message(self.Composed())

    # -- what the widgets report -----------------------------------------------------------

    @on(RoomListView.RoomChosen)
    def _room_chosen(self, message: RoomListView.RoomChosen) -> None:
        self.chat.switch_room(message.room_id)
        self.composer.focus()

    @on(Composer.Submitted)
    def _submitted(self, message: Composer.Submitted) -> None:
        self.chat.submitted(message.text, message.mentions)

    @on(Composer.Changed, "#composer")
    def _composer_changed(self) -> None:
        self.chat.composer_changed()

    @on(Composer.Cancelled)
    def _composer_cancelled(self) -> None:
        self.chat.set_draft(None)

    @on(Composer.EditLast)
    def _edit_last(self) -> None:
        self.chat.edit_last()

    @on(TimelineView.Left)
    def _timeline_left(self) -> None:
        self.composer.focus()

    @on(TimelineView.NearTop)
    def _near_top(self) -> None:
        self.chat.near_top()

    @on(TimelineView.ParentMissing)
    def _parent_missing(self, message: TimelineView.ParentMissing) -> None:
        self.chat.parent_missing(message.event_id)

    @on(TimelineView.ItemAction)
    def _item_action(self, message: TimelineView.ItemAction) -> None:
        item, action = message.item, message.action
        # Threads (issue 21): the thread key on any message, or Enter on a root.
        if action == "thread" or (action == "open" and item.thread is not None):
            self.chat.app.threads.open_for(item)
            return
        if action == "vote":  # issue 22: a digit on a poll
            self.chat.vote_by_key(item, message.number)
            return
        self.chat.item_action(item, action)

    @on(TimelineView.PreviewWanted)
    def _preview_wanted(self, message: TimelineView.PreviewWanted) -> None:
        self.files.preview_wanted(message.item)

    @on(Composer.ScrollTimeline)
    def _scroll_timeline(self, message: Composer.ScrollTimeline) -> None:
        """PageUp/PageDown/Ctrl+End typed in the composer move the timeline."""
        timeline = self.timeline
        if message.where == "page_up":
            timeline.scroll_page_up(animate=False)
        elif message.where == "page_down":
            timeline.scroll_page_down(animate=False)
        else:
            timeline.jump_to_latest()

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield RoomListView(id="rooms")
            with Horizontal(id="panes"):
                with Vertical(id="conversation"):
                    yield RoomHeader(id="room-header")
                    yield TimelineView(id="timeline")
                    yield TypingLine(id="typing")
                    yield Feedback(id="feedback")
                    yield UploadBar(id="upload-bar")
                    yield DraftBar(id="draft-bar")
                    yield Composer(id="composer")
                yield ThreadPane(id="thread-pane")
        yield StatusLine(id="status")
        # The key bar's row, kept until `show_footer`: Textual's Footer makes
        # a widget per key and composes them again when the focus first
        # moves, about a fifth of the first frame; the room list, timeline
        # and composer are drawn without waiting for it.
        yield Static(id="footer-slot")

    def on_resize(self, event: events.Resize) -> None:
        self._fit_room_list(event.size.width)
        self.chat.app.threads.fit(event.size.width)

    def _fit_room_list(self, columns: int) -> None:
        rooms = self.room_list
        rooms.styles.width = room_list_width(columns)
        wanted = self._room_list_wanted
        rooms.display = columns >= NARROW_COLUMNS if wanted is None else wanted

    def toggle_room_list(self) -> None:
        """Show or hide the room list (F4); a width change keeps the choice."""
        self._room_list_wanted = not self.room_list.display
        self._fit_room_list(self.size.width)
        if not self.room_list.display and self.room_list.has_focus:
            self.composer.focus()

    def show_footer(self) -> None:
        if not self.is_attached or self.query(Footer):
            return  # closing already (an exit right after the first frame), or shown
        footer = Footer()
        with self.app.batch_update():
            self.query_one("#footer-slot").remove()
            self.mount(footer)
        # The Footer shows keys once told the bindings changed (Textual tells
        # it on focus moves); here they did not change, so tell it once it
        # listens.
        footer.call_after_refresh(self.refresh_bindings)
