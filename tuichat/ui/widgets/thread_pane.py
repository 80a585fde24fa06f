"""The thread pane: one thread beside the main timeline (below it on a
narrow terminal), with a title, the same `TimelineView` as the room's and a
composer of its own.

What its timeline and composer report stops here and goes to the threads
controller (`tuichat/ui/controllers/thread_panel.py`), so the main screen's
handlers only ever see the room's own timeline and composer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import getters, on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tuichat.model.sanitize import SafeText
from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.timeline_view import TimelineView

if TYPE_CHECKING:
    from tuichat.ui.controllers.thread_panel import ThreadPanel


class ThreadPane(Vertical):
    """A thread's replies and a composer that writes in the thread."""

    DEFAULT_CSS = """
    ThreadPane { display: none; width: 1fr; height: 1fr; border-left: tall $primary 40%; }
    .-stacked > ThreadPane { border-left: none; border-top: tall $primary 40%; }
    ThreadPane.-open { display: block; }
    ThreadPane #thread-title { height: 1; background: $boost; text-style: bold; }
    ThreadPane #thread-draft { height: auto; color: $text-muted; display: none; }
    ThreadPane #thread-draft.-visible { display: block; }
    ThreadPane #thread-timeline { height: 1fr; }
    ThreadPane #thread-composer { height: auto; max-height: 8; }
    """

    title = getters.query_one("#thread-title", Static)
    draft_line = getters.query_one("#thread-draft", Static)
    timeline = getters.query_one("#thread-timeline", TimelineView)
    composer = getters.query_one("#thread-composer", Composer)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.panel: ThreadPanel | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="thread-title")
        timeline = TimelineView(id="thread-timeline")
        timeline.start_text = "This is the beginning of the thread"
        yield timeline
        yield Static(id="thread-draft")
        yield Composer(id="thread-composer")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def show_title(self, text: SafeText) -> None:
        self.title.update(Text(text))

    def show_draft_text(self, text: SafeText | None) -> None:
        line = self.draft_line
        if text is None:
            line.remove_class("-visible")
        else:
            line.update(Text(text))
            line.add_class("-visible")

    # -- what the inner widgets report ----------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, message: Composer.Submitted) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.submitted(message.text, message.mentions)

    @on(Composer.Cancelled)
    def _cancelled(self, message: Composer.Cancelled) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.cancelled()

    @on(Composer.EditLast)
    def _edit_last(self, message: Composer.EditLast) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.edit_last()

    @on(Composer.ScrollTimeline)
    def _scroll(self, message: Composer.ScrollTimeline) -> None:
        message.stop()
        if message.where == "page_up":
            self.timeline.scroll_page_up(animate=False)
        elif message.where == "page_down":
            self.timeline.scroll_page_down(animate=False)
        else:
            self.timeline.jump_to_latest()

    @on(Composer.Changed)
    def _changed(self, message: Composer.Changed) -> None:
        message.stop()

    @on(TimelineView.ItemAction)
    def _item_action(self, message: TimelineView.ItemAction) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.item_action(message.item, message.action)

    @on(TimelineView.Left)
    def _left(self, message: TimelineView.Left) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.close()

    @on(TimelineView.NearTop)
    def _near_top(self, message: TimelineView.NearTop) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.near_top()

    @on(TimelineView.ParentMissing)
    def _parent_missing(self, message: TimelineView.ParentMissing) -> None:
        message.stop()
        if self.panel is not None:
            self.panel.app.chat.parent_missing(message.event_id)
