"""TuichatApp: the wiring of the terminal client.

It builds the model (`ChatState`), the main screen and the controllers that
act on it, reads the local cache for the first frame (through
`StartupReader`, before nio is imported), then starts the Matrix service in
a worker. The cache reader and the service report domain events to one
sink: an inbox drained by one message, each event applied by `ChatState`
and drawn by the chat controller. User actions go back as calls on the
service.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tuichat.config import Config, user_theme_dir
from tuichat.matrix.service import Profile, ProfileError
from tuichat.model.connection import ConnectionState
from tuichat.model.keys import KeyScope, in_scope, keys_label
from tuichat.model.pacing import SLICE_SECONDS
from tuichat.model.sanitize import safe_text
from tuichat.ui import terminal_keys
from tuichat.ui.bindings import app_bindings
from tuichat.ui.controllers.alerts import Alerts
from tuichat.ui.controllers.attachments import Attachments
from tuichat.ui.controllers.chat import ChatController
from tuichat.ui.controllers.people import People
from tuichat.ui.controllers.searching import Searching
from tuichat.ui.controllers.thread_panel import ThreadPanel
from tuichat.ui.messages import MatrixEventsReady
from tuichat.ui.notifications import Notifier
from tuichat.ui.screens.main import MainScreen
from tuichat.ui.themes import DEFAULT_THEME, load_themes
from tuichat.ui.widgets.timeline_view import MembershipDisplay
from tuichat.ui.worker_errors import report_failure

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService, StartupReader
    from tuichat.model.events import DomainEvent


class TuichatApp(App[int]):
    TITLE = "tuichat"
    # Absolute: subclasses (benchmarks, tests) live in other directories.
    CSS_PATH = Path(__file__).with_name("tuichat.tcss")

    # From the key table; every binding has an id: `[keys]` in the config
    # changes its keys.
    BINDINGS = app_bindings()

    def __init__(
        self,
        profile: Profile,
        *,
        connect: bool = True,
        sync_timeout_ms: int | None = None,
        config: Config | None = None,
        config_errors: Sequence[str] = (),
    ) -> None:
        # The state (and, in `on_load`, the cache reader) bring the domain
        # events, which `import tuichat.ui.app` does without: they come with
        # the App that applies them.
        from tuichat.model.state import ChatState

        super().__init__()
        self.config = config or Config()
        self._startup_errors = list(config_errors)
        self.profile = profile
        session = profile.load_session(tokens=False)
        if session is None:
            raise ProfileError(f"no session in {profile.root}")
        self.user_id = session.user_id
        self.connect = connect
        self.sync_timeout_ms = sync_timeout_ms
        self.service: MatrixService | None = None
        self.reader: StartupReader | None = None
        self.state = ChatState(self.user_id)
        self.chat = ChatController(self)
        self.files = Attachments(self)
        self.people = People(self)
        self.alerts = Alerts(self)
        self.threads = ThreadPanel(self)  # threads (issue 21)
        self.searching = Searching(self)  # search (issue 24)
        self.main = MainScreen(self.chat, self.files)
        self._inbox: deque[DomainEvent] = deque()
        self._inbox_posted = False
        # Themes before the first style pass: setting one after mounting
        # would restyle every widget once more.
        user_dir = user_theme_dir(self.config.path) if self.config.path else None
        loaded = load_themes(user_dir)
        for theme in loaded.themes:
            self.register_theme(theme)
        self._startup_errors += loaded.errors
        if self.config.theme in self.available_themes:
            self.theme = self.config.theme
        else:
            self._startup_errors.append(
                f"theme {self.config.theme!r} not found; using {DEFAULT_THEME} "
                f"(themes: {', '.join(t.name for t in loaded.themes)})"
            )
            self.theme = DEFAULT_THEME
        if self.config.keys:
            self.set_keymap(self.config.keys)
        terminal_keys.install()  # Alt+Enter as tmux and most terminals send it
        self.notifier = Notifier(self.config, self._write_to_terminal)

    # -- start-up ----------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        return self.main

    def on_load(self) -> None:
        from tuichat.matrix.service import StartupReader  # see `__init__`

        # From here until the cache is read, without garbage collection.
        self.reader = StartupReader(self.profile, self.user_id, self.sink)

    def on_mount(self) -> None:
        for error in self._startup_errors:
            self.notify(
                safe_text(error), title="Config", severity="warning", timeout=15, markup=False
            )

    def _write_to_terminal(self, sequence: str) -> None:
        """Escape sequences of tuichat's own (bell, desktop notifications),
        written between frames."""
        driver = self._driver
        if driver is not None and not self.is_headless:
            driver.write(sequence)
            driver.flush()

    @on(MainScreen.Composed)
    def _main_composed(self) -> None:
        # Filled from the cache before the first frame is drawn.
        self._load()

    def _load(self) -> None:
        view = self.main.timeline
        view.time_format = self.config.time_format
        view.membership_display = MembershipDisplay(self.config.membership)
        view.previews_enabled = self.config.previews
        view.set_show_hidden_events(self.config.show_hidden_events)
        assert self.reader is not None
        self.reader.read_start()
        self.apply_inbox_now()
        self.chat.show_status()
        self.main.composer.focus()
        # After the first frame: the rest of the cache, then nio.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        self.main.show_footer()
        self._read_other_rooms()
        if self.connect:
            self._start_service()

    @work(group="cache", exit_on_error=False)
    async def _read_other_rooms(self) -> None:
        if self.reader is not None:
            await self.reader.read_rest([room.room_id for room in self.state.rooms.ordered()])

    def read_cached_room(self, room_id: str) -> None:
        """A room's recent history from the cache, if not read yet, applied
        at once (the room is about to be shown)."""
        if self.reader is not None and self.reader.read_room(room_id):
            self.apply_inbox_now()

    @work(exclusive=True, group="service")
    async def _start_service(self) -> None:
        # Imported in a thread: nio costs half a second, and the UI keeps
        # drawing meanwhile (the first frame was painted from the cache).
        module = await asyncio.to_thread(importlib.import_module, "tuichat.matrix.service")
        service_class: type[MatrixService] = module.MatrixService
        reader = self.reader
        assert reader is not None
        kwargs = {}
        if self.sync_timeout_ms is not None:
            kwargs["sync_timeout_ms"] = self.sync_timeout_ms
        try:
            service = service_class(
                self.profile, self.sink, snapshot=reader.snapshot, cache=reader.cache, **kwargs
            )
            self.service = service
            service.set_private_receipts(self.config.private_receipts)
            service.set_sync_mode(self.config.sync_mode)  # issue 25
            await service.start()
            service.index_history(self.config.search_fetch_history)  # search (issue 24)
            self.main.timeline.ask_again()
        except ProfileError as error:
            from tuichat.model.events import ConnectionChanged  # see `__init__`

            # Through the inbox, behind the "loading" the service reported
            # before it failed (applied directly, that came after it).
            self.sink(ConnectionChanged(ConnectionState.STOPPED, str(error)))
            self.main.feedback.show(safe_text(str(error)), error=True)
            # Nothing will decrypt the cached messages: they say so.
            reader.settle_waiting("no_store")

    # -- the one event path --------------------------------------------------------------

    def sink(self, event: DomainEvent) -> None:
        """Events queue in an inbox that one message drains: a sync with
        hundreds of rooms must not become hundreds of messages handled back
        to back without a frame in between."""
        self._inbox.append(event)
        if not self._inbox_posted:
            self._inbox_posted = True
            self.post_message(MatrixEventsReady())

    @on(MatrixEventsReady)
    async def _drain_inbox(self, message: MatrixEventsReady) -> None:
        self._inbox_posted = False
        deadline = time.perf_counter() + SLICE_SECONDS
        while self._inbox:
            if not self.is_running:
                # Shutting down: the screens' widgets are being removed, and
                # what is still reported has nowhere to go.
                return
            self._apply(self._inbox.popleft())
            if time.perf_counter() > deadline:
                await asyncio.sleep(0)  # a frame may be drawn
                deadline = time.perf_counter() + SLICE_SECONDS

    def apply_inbox_now(self) -> None:
        """Apply what waits in the inbox, in order, without yielding (what
        the cache reader just reported is about to be shown)."""
        while self._inbox:
            self._apply(self._inbox.popleft())

    def _apply(self, event: DomainEvent) -> None:
        changes = self.state.apply(event)
        self.chat.draw(changes)
        self.alerts.after(changes)
        self.threads.draw(changes)
        if changes.devices:
            self.people.devices_changed(changes.devices)
        for view in changes.verifications:
            self.people.verification_changed(view)
        if changes.recovery_offered is not None:
            self.people.recovery_offered(changes.recovery_offered)

    async def on_unmount(self) -> None:
        reader, service = self.reader, self.service
        if reader is not None:  # the collector back on; the service closes the cache it took
            reader.close(close_cache=service is None)
        if service is not None:
            await service.stop()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker of the App that fails is logged and shown here (the
        one place: they run with `exit_on_error=False`)."""
        if event.state is WorkerState.ERROR:
            report_failure(self, event.worker)

    # -- keys and the command palette ----------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The command palette (Ctrl+P) lists every action, with its key."""
        yield from super().get_system_commands(screen)
        for action in in_scope(KeyScope.APP):
            if action.palette:
                yield SystemCommand(
                    action.description,
                    action.palette.format(key=self.key_label(action.id)),
                    getattr(self, f"action_{action.id}"),
                )
        yield SystemCommand(
            "Recover encrypted history", "Recovery key or passphrase", self.people.open_recovery
        )
        # The account page (issue 20: OAuth 2.0 API).
        yield SystemCommand(
            "Account page",
            "Your account's page on the server (/account)",
            lambda: self.chat.submitted("/account", {}),
        )
        for mode in MembershipDisplay:
            yield SystemCommand(
                f"Membership changes: {mode.value}",
                "How joins and leaves appear in the timeline",
                lambda mode=mode: self.chat.set_membership_display(mode),
            )
        # issue 22: lines naming only an event's type (`show_hidden_events`).
        view = self.main.timeline
        yield SystemCommand(
            f"Hidden events: {'hide' if view.show_hidden_events else 'show'}",
            "Lines naming only the type of an event tuichat has no rendering for",
            lambda: view.set_show_hidden_events(not view.show_hidden_events),
        )

    def key_label(self, binding_id: str) -> str:
        """The keys of an action in the key table as people write them
        ("Ctrl+T"), after `[keys]` in the config."""
        return keys_label(binding_id, self.config.keys)

    def action_help(self) -> None:
        from tuichat.ui.screens.help import HelpScreen  # dialogs: see controllers/chat.py

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_rooms(self) -> None:
        self.main.toggle_room_list()

    def action_switch_room(self) -> None:
        self.people.choose_room()

    def action_next_room(self) -> None:
        self.chat.step_room(1)

    def action_previous_room(self) -> None:
        self.chat.step_room(-1)

    def action_next_space(self) -> None:
        self.people.next_space()

    def action_new_dm(self) -> None:
        self.people.new_dm()

    def action_members(self) -> None:
        self.people.members()

    def action_own_devices(self) -> None:
        self.people.open_devices(self.user_id, "you")

    def action_retry_failed(self) -> None:
        self.chat.retry_failed()

    def action_select_message(self) -> None:
        self.chat.select_message()

    def action_upload(self) -> None:
        self.files.choose_upload()

    def action_next_activity(self) -> None:
        self.alerts.next_activity()

    def action_mentions(self) -> None:
        self.alerts.open_mentions()

    def action_threads(self) -> None:
        self.threads.open_list()

    def action_my_threads(self) -> None:
        self.threads.open_mine()

    def action_search(self) -> None:  # search (issue 24)
        self.searching.open()
