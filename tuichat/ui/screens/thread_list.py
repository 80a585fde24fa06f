"""The thread list of a room: every thread (or those you took part in),
newest activity first, unread ones marked; Enter opens one, `p` switches
between all and yours, Escape closes. Pages of the server's list
(`/threads`) load as the last row is reached."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tuichat.model.sanitize import safe_line
from tuichat.model.threads import Thread, preview

if TYPE_CHECKING:
    from tuichat.model.threads import RoomTimeline
    from tuichat.ui.controllers.thread_panel import ThreadPanel

# Rows shown at most (the server's list is paged; the model's is bounded by
# what was loaded).
MAX_ROWS = 500


def thread_row(timeline: RoomTimeline, thread: Thread, own_user_id: str) -> Text:
    """ "● Root text — 3 replies, Ada: latest" (all remote text sanitised)."""
    summary = thread.summary(own_user_id, timeline.baseline())
    root = timeline.root_item(thread.root)
    root_text = preview(root) if root is not None else "(thread root not loaded)"
    count = summary.count
    text = Text()
    text.append("● " if summary.unread else "  ", style="bold red" if summary.unread else "")
    if root is not None:
        text.append(safe_line(root.sender_name) + ": ", style="bold")
    text.append(safe_line(root_text))
    latest = ""
    if summary.latest_sender_name:
        latest = f", {summary.latest_sender_name}: {summary.latest_preview}"
    text.append(safe_line(f" — {count} repl{'y' if count == 1 else 'ies'}{latest}"), style="dim")
    text.truncate(200, overflow="ellipsis")
    return text


def _option(option_id: str, row: Text) -> Option:
    return Option(row, id=option_id)


def room_thread_row(room_name: str, timeline: RoomTimeline, thread: Thread, own: str) -> Text:
    """ "Room · " and the thread's row."""
    row = Text(safe_line(f"{room_name} · "), style="bold")
    row.append_text(thread_row(timeline, thread, own))
    row.truncate(220, overflow="ellipsis")
    return row


class ThreadListScreen(ModalScreen[str | None]):
    """Dismisses with the chosen thread's root, or None."""

    DEFAULT_CSS = """
    ThreadListScreen { align: center top; }
    ThreadListScreen > Vertical {
        width: 80%;
        max-width: 110;
        height: auto;
        max-height: 80%;
        margin-top: 2;
        border: thick $primary;
        background: $surface;
    }
    ThreadListScreen #thread-list-title { height: 1; text-style: bold; }
    ThreadListScreen OptionList { height: auto; max-height: 30; }
    """

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("p", "toggle_participated", "All / yours"),
    ]

    def __init__(self, panel: ThreadPanel, room_id: str, *, participated: bool) -> None:
        super().__init__()
        self.panel = panel
        self.room_id = room_id
        self.participated = participated
        self.next_token: str | None = None
        self.loading = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="thread-list-title")
            yield OptionList(id="thread-list")

    def on_mount(self) -> None:
        self.refresh_threads()
        self.query_one(OptionList).focus()
        self.load()

    def load(self, token: str | None = None) -> None:
        """A page of the server's thread list (the first, or after `token`)."""
        service = self.panel.service
        if service is None or self.loading:
            return
        self.loading = True
        participated = self.participated

        async def run() -> None:
            try:
                self.next_token = await service.list_threads(
                    self.room_id, participated=participated, from_token=token
                )
            finally:
                self.loading = False

        self.app.run_worker(run(), group="threads", exit_on_error=False)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, message: OptionList.OptionHighlighted) -> None:
        """At the last row: the next page, if the server has more."""
        options = message.option_list
        if message.option_index == options.option_count - 1 and self.next_token:
            self.load(self.next_token)

    def refresh_threads(self) -> None:
        state = self.panel.state
        timeline = state.timeline(self.room_id)
        own = state.user_id
        threads = timeline.ordered_threads()
        if self.participated:
            threads = [t for t in threads if t.summary(own, timeline.baseline()).participated]
        title = "Your threads" if self.participated else "Threads"
        more = " (loading…)" if not timeline.threads_listed else ""
        self.query_one("#thread-list-title", Static).update(
            Text(
                safe_line(f"{title} in this room{more} — Enter opens, p: all/yours, Escape closes")
            )
        )
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options(
            Option(thread_row(timeline, thread, own), id=thread.root)
            for thread in threads[:MAX_ROWS]
        )
        if threads:
            options.highlighted = min(highlighted or 0, len(threads) - 1)

    @on(OptionList.OptionSelected)
    def _selected(self, message: OptionList.OptionSelected) -> None:
        self.dismiss(message.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_toggle_participated(self) -> None:
        self.participated = not self.participated
        self.next_token = None
        self.refresh_threads()
        self.load()


# The cross-room view asks the server for your threads in this many of the
# most recently active rooms.
ROOMS_ASKED = 10


class MyThreadsScreen(ModalScreen[str | None]):
    """The threads you took part in, in every room: unread ones first, then
    by latest activity. Dismisses with "<room id> <root>", or None."""

    DEFAULT_CSS = ThreadListScreen.DEFAULT_CSS.replace("ThreadListScreen", "MyThreadsScreen")

    BINDINGS = [Binding("escape", "dismiss_none", "Close")]

    def __init__(self, panel: ThreadPanel) -> None:
        super().__init__()
        self.panel = panel
        self.room_id: str | None = None  # every room

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text("Your threads in every room: unread first. Enter opens, Escape closes"),
                id="thread-list-title",
            )
            yield OptionList(id="thread-list")

    def on_mount(self) -> None:
        self.refresh_threads()
        self.query_one(OptionList).focus()
        service = self.panel.service
        if service is not None:
            for room_id in self.panel.state.joined()[:ROOMS_ASKED]:
                self.app.run_worker(
                    service.list_threads(room_id, participated=True),
                    group="threads",
                    exit_on_error=False,
                )

    def threads(self) -> list[tuple[str, RoomTimeline, Thread]]:
        """(room id, its timeline, thread) of every thread you are in,
        unread first, then newest activity first."""
        state = self.panel.state
        own = state.user_id
        found = []
        for room_id, timeline in state.timelines.items():
            baseline = timeline.baseline()
            for thread in timeline.ordered_threads():
                summary = thread.summary(own, baseline)
                if summary.participated:
                    key = (not summary.unread, -timeline.activity(thread))
                    found.append((key, room_id, timeline, thread))
        found.sort(key=lambda entry: entry[0])
        return [(room_id, timeline, thread) for _, room_id, timeline, thread in found][:MAX_ROWS]

    def refresh_threads(self) -> None:
        state = self.panel.state
        options = self.query_one(OptionList)
        highlighted = options.highlighted
        options.clear_options()
        threads = self.threads()
        for room_id, timeline, thread in threads:
            room = state.rooms.get(room_id)
            row = room_thread_row(room.name if room else room_id, timeline, thread, state.user_id)
            options.add_option(_option(f"{room_id} {thread.root}", row))
        if threads:
            options.highlighted = min(highlighted or 0, len(threads) - 1)

    @on(OptionList.OptionSelected)
    def _selected(self, message: OptionList.OptionSelected) -> None:
        self.dismiss(message.option.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
