"""TuichatApp: the one place where service events are applied to the model.

Start-up paints from the local cache first (no nio import needed), then a
worker imports and starts the Matrix service. The service reports through
`MatrixEvent` messages; user actions go back as calls on the service.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tuichat.config import Config, user_theme_dir
from tuichat.matrix.account.session import Profile, ProfileError
from tuichat.matrix.storage.cache import Cache
from tuichat.matrix.storage.snapshot import Snapshot, load_snapshot
from tuichat.model.connection import ConnectionState
from tuichat.model.draft import Draft, DraftKind
from tuichat.model.items import ItemKind, SendState, TimelineItem
from tuichat.model.keys import KeyScope, in_scope, keys_label
from tuichat.model.rooms import Membership, RoomList, RoomSummary
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted
from tuichat.model.timeline import EDITABLE_KINDS, Timeline, TimelineChange
from tuichat.ui import terminal_keys
from tuichat.ui.bindings import app_bindings
from tuichat.ui.messages import MatrixEvent, MatrixEventsReady
from tuichat.ui.notifications import Notifier
from tuichat.ui.screens.main import MainScreen
from tuichat.ui.themes import DEFAULT_THEME, load_themes
from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.room_list import RoomListView
from tuichat.ui.widgets.status_line import CURRENT, status_text
from tuichat.ui.widgets.timeline_view import HistoryState, MembershipDisplay, TimelineView

if TYPE_CHECKING:
    from tuichat.matrix.service import MatrixService
    from tuichat.model.events import DomainEvent, TimelineAppended
    from tuichat.model.verification import VerificationView
    from tuichat.ui.screens.devices import DevicesScreen
    from tuichat.ui.screens.members import MembersDialog
    from tuichat.ui.screens.recovery import RecoveryDialog
    from tuichat.ui.screens.verification import VerificationDialog

# Dialogs are imported where they open, not at start-up: none of them is on
# the first frame. Their messages reach the handlers below by name
# (`on_<screen>_<message>`), which needs no import either.

log = logging.getLogger(__name__)

# UI work done between two chances to draw a frame.
SLICE_SECONDS = 0.004
# While the user types, "typing" is sent again this often (it lasts 30 s).
TYPING_REFRESH_SECONDS = 20.0
# Unsolicited verification requests kept for /verifications (oldest dropped).
MAX_PENDING_VERIFICATIONS = 20


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
        self.rooms = RoomList()
        self.timelines: dict[str, Timeline] = {}
        self.current_room_id: str | None = None
        self.service: MatrixService | None = None
        self.connection = ConnectionState.CONNECTING
        self.connection_detail = ""
        self.cache: Cache | None = None
        self.snapshot: Snapshot | None = None
        self.main = MainScreen()
        # A reply or edit being written.
        self.draft: Draft | None = None
        self.typing: dict[str, tuple[str, ...]] = {}  # room id -> names typing
        # Unsolicited verification requests not opened yet (/verifications).
        self.pending_verifications: dict[str, VerificationView] = {}
        self._typing_sent: tuple[str, float] | None = None  # (room id, when)
        self._parents_wanted: set[tuple[str, str]] = set()
        # Image previews made so far, by (room id, event id): a room switch
        # does not fetch them again.
        self._previews: dict[tuple[str, str], list[Any]] = {}
        self._failed_uploads: list[tuple[str, Path]] = []
        # Rooms whose failed messages are being sent again: the line saying so.
        self._retrying: dict[str, SafeText] = {}
        self._inbox: list[DomainEvent] = []
        self._inbox_posted = False
        self._room_list_due = False
        self._gc_paused = False  # see `on_load`
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
        # No garbage collection during start-up (until `_load_other_rooms`
        # has read the cache and frozen it): start-up allocates thousands of
        # lasting objects (widgets, room states, items), and each collection
        # they trigger walks the whole heap of Textual's and tuichat's
        # objects, about half of what reading the cache for the first frame
        # costs.
        self._gc_paused = gc.isenabled()
        gc.disable()

    def _resume_gc(self) -> None:
        if self._gc_paused:
            self._gc_paused = False
            gc.enable()

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
            "Recover encrypted history", "Recovery key or passphrase", self._open_recovery
        )
        for mode in MembershipDisplay:
            yield SystemCommand(
                f"Membership changes: {mode.value}",
                "How joins and leaves appear in the timeline",
                lambda mode=mode: self._set_membership_display(mode),
            )

    def key_label(self, binding_id: str) -> str:
        """The keys of an action in the key table as people write them
        ("Ctrl+T"), after `[keys]` in the config."""
        return keys_label(binding_id, self.config.keys)

    def action_help(self) -> None:
        from tuichat.ui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_rooms(self) -> None:
        self.main.toggle_room_list()

    def _set_membership_display(self, mode: MembershipDisplay) -> None:
        self.main.timeline.set_membership_display(mode)

    @on(MainScreen.Composed)
    def _main_composed(self) -> None:
        # Filled from the cache before the first frame is drawn.
        self._load()

    def _load(self) -> None:
        view = self.main.timeline
        view.time_format = self.config.time_format
        view.membership_display = MembershipDisplay(self.config.membership)
        view.previews_enabled = self.config.previews
        self.cache = Cache(self.profile.cache_file)
        self.snapshot = load_snapshot(self.cache, self.user_id)
        self._load_snapshot(self.snapshot)
        self._show_status()
        self.main.composer.focus()
        # After the first frame: the rest of the cache, then nio.
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        self.main.show_footer()
        self._load_other_rooms()
        if self.connect:
            self._start_service()

    def _load_snapshot(self, snapshot: Snapshot) -> None:
        for room_id in snapshot.timelines:
            self._adopt_cached_timeline(room_id)
        self.rooms.upsert(snapshot.summaries(self.user_id))
        ordered = [r for r in self.rooms.ordered() if r.membership is Membership.JOIN]
        if ordered:
            self.switch_room(ordered[0].room_id)
        else:
            self._refresh_room_list()

    def ensure_timeline_loaded(self, room_id: str) -> None:
        """Read a room's recent history from the cache if it was not yet."""
        snapshot, cache = self.snapshot, self.cache
        if snapshot is None or cache is None or room_id in snapshot.timelines:
            return
        if snapshot.load_room(cache, room_id) is None:
            return
        self._adopt_cached_timeline(room_id)
        if self.service is not None:
            self.service.decrypt_cached_events()

    def _adopt_cached_timeline(self, room_id: str) -> None:
        assert self.snapshot is not None
        snapshot = self.snapshot
        items = snapshot.timelines.get(room_id, [])
        timeline = self._timeline(room_id)
        if len(timeline):
            # Newer events came by sync before the cache was read: the cached
            # ones they do not repeat are older.
            change = timeline.prepend(items)
        else:
            change = timeline.append(items)
            timeline.read_marker = snapshot.read_markers.get(room_id)
            if timeline.read_marker is None:
                timeline.mark_read()
        timeline.has_more_history = snapshot.has_older.get(room_id, True)
        receipts = snapshot.receipts.get(room_id)
        if receipts:
            timeline.set_receipts(receipts)
        if room_id == self.current_room_id:
            self.main.timeline.apply_change(change)
        else:
            self._update_counts(room_id)

    @work(group="cache", exit_on_error=False)
    async def _load_other_rooms(self) -> None:
        """Read the other rooms' recent history in small slices, so unread
        counts fill in without holding up a frame; then freeze what was
        loaded so the garbage collector stops walking it, and let it run
        again (paused since `on_load`: a collection mid-way would walk all
        of it, tens of milliseconds in one slice)."""
        try:
            if self.snapshot is None:
                return
            pending = [
                r.room_id for r in self.rooms.ordered() if r.room_id not in self.snapshot.timelines
            ]
            deadline = time.perf_counter() + SLICE_SECONDS
            for room_id in pending:
                self.ensure_timeline_loaded(room_id)
                if time.perf_counter() > deadline:
                    self._refresh_room_list()
                    await asyncio.sleep(0)
                    deadline = time.perf_counter() + SLICE_SECONDS
            if pending:
                self._refresh_room_list()
        finally:
            gc.collect()
            gc.freeze()
            self._resume_gc()

    @work(exclusive=True, group="service")
    async def _start_service(self) -> None:
        # Imported in a thread: nio costs half a second, and the UI keeps
        # drawing meanwhile (the first frame was painted from the cache).
        import importlib

        module = await asyncio.to_thread(importlib.import_module, "tuichat.matrix.service")
        service_class: type[MatrixService] = module.MatrixService

        assert self.snapshot is not None and self.cache is not None
        kwargs = {}
        if self.sync_timeout_ms is not None:
            kwargs["sync_timeout_ms"] = self.sync_timeout_ms
        try:
            service = service_class(
                self.profile,
                self._sink,
                snapshot=self.snapshot,
                cache=self.cache,
                **kwargs,
            )
            self.service = service
            await service.start()
            self.main.timeline.ask_again()
        except ProfileError as error:
            from tuichat.model.events import ConnectionChanged

            # Through the inbox, behind the "loading" the service reported
            # before it failed (applied directly, that came after it).
            self._sink(ConnectionChanged(ConnectionState.STOPPED, str(error)))
            self.main.feedback.show(safe_text(str(error)), error=True)
            # Nothing will decrypt the cached messages: they say so.
            self.snapshot.waiting_reason = "no_store"
            for room_id, timeline in self.timelines.items():
                self._timeline_changed(room_id, timeline.settle_waiting("no_store"))

    def _sink(self, event: DomainEvent) -> None:
        """Service events queue in an inbox that one message drains: a sync
        with hundreds of rooms must not become hundreds of messages handled
        back to back without a frame in between."""
        self._inbox.append(event)
        if not self._inbox_posted:
            self._inbox_posted = True
            self.post_message(MatrixEventsReady())

    @on(MatrixEventsReady)
    async def _drain_inbox(self, message: MatrixEventsReady) -> None:
        self._inbox_posted = False
        events, self._inbox = self._inbox, []
        deadline = time.perf_counter() + SLICE_SECONDS
        for event in events:
            if not self.is_running:
                # Shutting down: the screens' widgets are being removed, and
                # what the service still reports has nowhere to go.
                return
            self._apply(event)
            if time.perf_counter() > deadline:
                await asyncio.sleep(0)  # a frame may be drawn
                deadline = time.perf_counter() + SLICE_SECONDS

    async def on_unmount(self) -> None:
        self._resume_gc()  # if the first frame never came
        if self.service is not None:
            await self.service.stop()
        elif self.cache is not None:
            self.cache.close()

    # -- applying service events ----------------------------------------------------

    @on(MatrixEvent)
    def _on_matrix_event(self, message: MatrixEvent) -> None:
        if self.is_running:
            self._apply(message.event)

    def _apply(self, event: DomainEvent) -> None:
        # Imported with the first event: the first frame (painted from the
        # cache before the service starts) needs none of them.
        from tuichat.model import events as ev

        if isinstance(event, ev.TimelineAppended):
            self._notify_new(event)
            timeline = self._timeline(event.room_id)
            change = timeline.reset(event.items) if event.limited else timeline.append(event.items)
            self._timeline_changed(event.room_id, change)
            if event.limited:
                self._show_history_state(event.room_id)  # a gap: load what came before
            for item in event.items:
                self.rooms.touch(event.room_id, item.timestamp)
            self._refresh_room_list()
        elif isinstance(event, ev.ItemsReplaced):
            change = self._timeline(event.room_id).replace(event.items, event.hidden)
            self._timeline_changed(event.room_id, change)
            self._refresh_room_list()
        elif isinstance(event, ev.TimelinePrepended):
            timeline = self._timeline(event.room_id)
            timeline.has_more_history = event.has_more
            self._timeline_changed(event.room_id, timeline.prepend(event.items))
            self._show_history_state(event.room_id)
        elif isinstance(event, ev.LocalEchoAdded):
            change = self._timeline(event.room_id).add_local_echo(event.item)
            self._timeline_changed(event.room_id, change)
        elif isinstance(event, ev.SendStateChanged):
            change = self._timeline(event.room_id).update_local_echo(
                event.txn_id, event.state, event.event_id
            )
            self._timeline_changed(event.room_id, change)
            retrying = self._retrying.get(event.room_id)
            if retrying is not None and not any(
                echo.send_state is SendState.PENDING
                for echo in self._timeline(event.room_id).local_echoes
            ):
                del self._retrying[event.room_id]
                self.main.feedback.end(retrying, event.room_id)
            if event.state is SendState.FAILED:
                self.main.feedback.show(
                    safe_text(
                        f"Message not sent: {event.error}. "
                        f"{self.key_label('retry_failed')} (or /retry) sends it again."
                    ),
                    error=True,
                    room=event.room_id,
                )
        elif isinstance(event, ev.RoomsChanged):
            self.rooms.upsert(event.rooms)
            if self.current_room_id is None:
                joined = [r for r in event.rooms if r.membership is Membership.JOIN]
                if joined:
                    self.switch_room(joined[0].room_id)
            self._refresh_room_list()
            self._refresh_header()
            if any(r.room_id == self.current_room_id for r in event.rooms):
                self._update_members(self.current_room_id or "")
        elif isinstance(event, ev.RoomRemoved):
            self._remove_room(event.room_id)
        elif isinstance(event, ev.ConnectionChanged):
            self.connection = event.state
            self.connection_detail = event.detail
            self._show_status()
        elif isinstance(event, ev.Notice):
            self.main.feedback.show(
                safe_text(event.text), error=event.error, room=event.room_id or CURRENT
            )
        elif isinstance(event, ev.SwitchToRoom):
            self.switch_room(event.room_id)
        elif isinstance(event, ev.DevicesChanged):
            from tuichat.ui.screens.devices import DevicesScreen

            for screen in self.screen_stack:
                if isinstance(screen, DevicesScreen) and screen.user_id in event.user_ids:
                    self._load_devices(screen)
        elif isinstance(event, ev.VerificationChanged):
            self._verification_changed(event.view)
        elif isinstance(event, ev.RecoveryOffered):
            from tuichat.ui.screens.recovery import RecoveryDialog

            self.push_screen(RecoveryDialog(has_secret_storage=True, backup_count=event.count))
        elif isinstance(event, ev.ReceiptsChanged):
            change = self._timeline(event.room_id).set_receipts(event.receipts)
            if event.room_id == self.current_room_id:
                self.main.timeline.apply_change(change)
        elif isinstance(event, ev.TypingChanged):
            self.typing[event.room_id] = event.names
            if event.room_id == self.current_room_id:
                self.main.typing.show(tuple(safe_line(name) for name in event.names))
        elif isinstance(event, ev.ContextFetched):
            change = self._timeline(event.room_id).add_context(event.items)
            if event.room_id == self.current_room_id:
                self.main.timeline.apply_change(change)
        elif isinstance(event, ev.ReadMarkers):
            for room_id, event_id in event.markers.items():
                self._read_elsewhere(room_id, event_id)

    def _notify_new(self, event: TimelineAppended) -> None:
        """Bell / desktop notification for a mention or a direct message in
        a room not on screen, once synced (not for the backlog)."""
        if event.room_id == self.current_room_id and self.app_focus:
            return
        if self.connection is not ConnectionState.SYNCED:
            return
        summary = self.rooms.get(event.room_id)
        if summary is None:
            return
        known = self._timeline(event.room_id)
        for item in event.items:
            if (
                item.sender != self.user_id
                and item.is_message
                and item.relation is None
                and (item.highlight or summary.is_direct)
                and (item.event_id is None or known.index_of(item.event_id) is None)
            ):
                self.notifier.message(summary.name, item)
                return

    def _timeline(self, room_id: str) -> Timeline:
        timeline = self.timelines.get(room_id)
        if timeline is None:
            timeline = self.timelines[room_id] = Timeline(room_id, self.user_id)
        return timeline

    def _read_elsewhere(self, room_id: str, event_id: str) -> None:
        """Another of our devices read up to `event_id`: the room's unread
        count follows, if that is further than read here."""
        timeline = self._timeline(room_id)
        new = timeline.index_of(event_id)
        old = timeline.index_of(timeline.read_marker) if timeline.read_marker else None
        if new is not None and (old is None or new > old):
            timeline.read_marker = event_id
            if room_id != self.current_room_id:
                self._update_counts(room_id)
                self._refresh_room_list()

    def _timeline_changed(self, room_id: str, change: TimelineChange) -> None:
        if room_id == self.current_room_id:
            self.main.timeline.apply_change(change)
            self._mark_read(room_id)
        else:
            self._update_counts(room_id)

    def _update_counts(self, room_id: str) -> None:
        timeline = self.timelines.get(room_id)
        if timeline is not None:
            unread, highlight = timeline.unread_counts(self.user_id)
            self.rooms.set_counts(room_id, unread, highlight)

    def _mark_read(self, room_id: str) -> None:
        timeline = self._timeline(room_id)
        before = timeline.read_marker
        timeline.mark_read()
        self.rooms.set_counts(room_id, 0, 0)
        if timeline.read_marker and timeline.read_marker != before:
            if self.service is not None:
                self.service.set_read_marker(room_id, timeline.read_marker)
            elif self.cache is not None:
                self.cache.set_read_marker(room_id, timeline.read_marker)

    def _remove_room(self, room_id: str) -> None:
        self.rooms.remove(room_id)
        self.timelines.pop(room_id, None)
        if self.current_room_id == room_id:
            self.current_room_id = None
            self.main.feedback.set_room(None)
            joined = [r for r in self.rooms.ordered() if r.membership is Membership.JOIN]
            if joined:
                self.switch_room(joined[0].room_id)
            else:
                self.main.timeline.set_items(())
                self._refresh_header()
        self._refresh_room_list()

    # -- views ---------------------------------------------------------------------

    @property
    def current_summary(self) -> RoomSummary | None:
        return self.rooms.get(self.current_room_id) if self.current_room_id else None

    def _refresh_room_list(self) -> None:
        """Redraw the room list once, after the events at hand are applied."""
        if not self._room_list_due:
            self._room_list_due = True
            self.call_after_refresh(self._show_room_list)

    def _show_room_list(self) -> None:
        self._room_list_due = False
        self.main.room_list.show_rooms(self.rooms.ordered(), self.current_room_id)

    def _refresh_header(self) -> None:
        self.main.header.show_room(self.current_summary)

    def _show_status(self) -> None:
        self.main.status.update(
            status_text(safe_line(self.user_id), self.connection, safe_line(self.connection_detail))
        )

    def switch_room(self, room_id: str) -> None:
        summary = self.rooms.get(room_id)
        if summary is None:
            return
        if summary.membership is Membership.INVITE:
            self._answer_invite(summary)
            return
        previous = self.current_room_id
        if previous != room_id:
            self._stop_typing()
            self._set_draft(None)
        self.current_room_id = room_id
        self.main.feedback.set_room(room_id)
        self.ensure_timeline_loaded(room_id)
        timeline = self._timeline(room_id)
        self.main.timeline.set_items(timeline, unread_after=timeline.read_marker)
        self.main.typing.show(tuple(safe_line(name) for name in self.typing.get(room_id, ())))
        self._update_members(room_id)
        self._show_history_state(room_id)
        self._mark_read(room_id)
        self._refresh_header()
        self._refresh_room_list()

    def _show_history_state(self, room_id: str) -> None:
        """The marker above the shown room's timeline: more to load, or its start."""
        if room_id == self.current_room_id:
            more = self._timeline(room_id).has_more_history
            self.main.timeline.set_history(HistoryState.MORE if more else HistoryState.START)

    @on(TimelineView.NearTop)
    def _near_top(self, message: TimelineView.NearTop) -> None:
        room_id = self.current_room_id
        if room_id is None or self.service is None or not self.main.timeline.still_near_top():
            return
        timeline = self._timeline(room_id)
        if not timeline.has_more_history:
            return
        oldest = next((item.event_id for item in timeline if item.event_id), None)
        self.main.timeline.set_history(HistoryState.LOADING)
        self._load_older(room_id, oldest)

    @work(group="history", exit_on_error=False)
    async def _load_older(self, room_id: str, before_event_id: str | None) -> None:
        """Older history arrives as TimelinePrepended; the marker at the top
        says "loading" until it has."""
        if self.service is not None:
            await self.service.load_older(room_id, before_event_id)

    @on(RoomListView.RoomChosen)
    def _room_chosen(self, message: RoomListView.RoomChosen) -> None:
        self.switch_room(message.room_id)
        self.main.composer.focus()

    # -- actions -------------------------------------------------------------------

    def action_switch_room(self) -> None:
        def chosen(room_id: str | None) -> None:
            if room_id:
                self.switch_room(room_id)
            self.main.composer.focus()

        from tuichat.ui.screens.room_switcher import RoomSwitcher

        self.push_screen(RoomSwitcher(self.rooms.ordered()), chosen)

    def _answer_invite(self, summary: RoomSummary) -> None:
        def decided(decision: str | None) -> None:
            service = self.service
            if decision is None or service is None:
                return
            if decision == "accept":
                self._with_progress(
                    safe_text(f"Joining {summary.name}…"), service.accept_invite(summary.room_id)
                )
            else:
                self.main.feedback.show(safe_text(f"Declined the invite to {summary.name}."))
                self._run_service_call(service.decline_invite(summary.room_id))

        from tuichat.ui.screens.invite import InviteDialog

        self.push_screen(InviteDialog(summary), decided)

    def action_new_dm(self) -> None:
        service = self.service
        if service is None:
            self.main.feedback.show("Not connected yet.", error=True)
            return

        def chosen(user_id: str | None) -> None:
            if user_id:
                self._with_progress(
                    safe_text(f"Opening an encrypted DM with {user_id}…"),
                    service.create_dm([user_id]),
                )
            self.main.composer.focus()

        from tuichat.ui.screens.new_dm import NewDmDialog

        self.push_screen(NewDmDialog(service.lookup_profile), chosen)

    # -- devices and verification ------------------------------------------------------

    def _display_name(self, user_id: str) -> str:
        state = self.service.room_state(self.current_room_id or "") if self.service else None
        if state is not None and state.membership_of(user_id):
            return state.member_name(user_id)
        return user_id

    def open_devices(self, user_id: str, display_name: str | None = None) -> None:
        from tuichat.ui.screens.devices import DevicesScreen

        screen = DevicesScreen(user_id, safe_line(display_name or self._display_name(user_id)))
        self.push_screen(screen)
        self._load_devices(screen)

    @work(group="devices", exit_on_error=False)
    async def _load_devices(self, screen: DevicesScreen, refresh: bool = False) -> None:
        if self.service is None:
            screen.show_status("Not connected yet.", error=True)
            return
        screen.show_devices(await self.service.devices(screen.user_id, refresh=refresh))
        screen.show_identity(self.service.identity_state(screen.user_id))

    def action_own_devices(self) -> None:
        self.open_devices(self.user_id, "you")

    def action_members(self) -> None:
        room_id = self.current_room_id
        state = self.service.room_state(room_id) if self.service and room_id else None
        if state is None:
            self.main.feedback.show("No room to list members of.", error=True)
            return
        members = [
            (user, state.member_name(user), state.membership_of(user) or "")
            for user in state.members(("join", "invite"))
        ]
        summary = self.current_summary
        from tuichat.ui.screens.members import MembersDialog

        title = safe_line(summary.name if summary else room_id)
        self.push_screen(MembersDialog(title, members))

    def on_members_dialog_member_chosen(self, message: MembersDialog.MemberChosen) -> None:
        self.open_devices(message.user_id, message.display_name)

    def on_devices_screen_trust_requested(self, message: DevicesScreen.TrustRequested) -> None:
        if self.service is None:
            return
        if not self.service.set_device_trust(message.user_id, message.device_id, message.action):
            self.main.feedback.show(safe_text(f"Unknown device {message.device_id}"), error=True)

    def on_devices_screen_identity_acknowledged(
        self, message: DevicesScreen.IdentityAcknowledged
    ) -> None:
        if self.service is not None:
            self.service.acknowledge_identity(message.user_id)

    def on_devices_screen_refresh_requested(self, message: DevicesScreen.RefreshRequested) -> None:
        from tuichat.ui.screens.devices import DevicesScreen

        if isinstance(self.screen, DevicesScreen):
            self._load_devices(self.screen, refresh=True)

    def on_devices_screen_verification_requested(
        self, message: DevicesScreen.VerificationRequested
    ) -> None:
        self._start_verification(message.user_id, message.device_id)

    @work(group="verification", exit_on_error=False)
    async def _start_verification(self, user_id: str, device_id: str | None) -> None:
        """A device (to-device), your own devices, or a person (in your DM)."""
        if self.service is None:
            return
        if device_id is None and user_id != self.user_id:
            await self.service.request_user_verification(user_id)
        else:
            await self.service.request_verification(user_id, device_id)

    def _verification_dialog(self, transaction_id: str) -> VerificationDialog | None:
        from tuichat.ui.screens.verification import VerificationDialog

        for screen in self.screen_stack:
            if isinstance(screen, VerificationDialog) and screen.transaction_id == transaction_id:
                return screen
        return None

    def _verification_changed(self, view: VerificationView) -> None:
        dialog = self._verification_dialog(view.transaction_id)
        if dialog is not None:
            dialog.update_view(view)
            return
        from tuichat.model.verification import Phase

        if view.unsolicited:
            self._unsolicited_verification(view)
            return
        opens = view.we_requested or view.phase is not Phase.CANCELLED
        if opens and view.phase is not Phase.DONE:
            from tuichat.ui.screens.verification import VerificationDialog

            self.push_screen(VerificationDialog(view, self._display_name(view.other_user)))

    def _unsolicited_verification(self, view: VerificationView) -> None:
        """Kept for /verifications with a notice, never a dialog by itself."""
        from tuichat.model.verification import Phase
        from tuichat.ui.screens.verification import unsolicited_notice

        if view.phase in (Phase.DONE, Phase.CANCELLED):
            self.pending_verifications.pop(view.transaction_id, None)
            return
        pending = self.pending_verifications
        if view.transaction_id in pending:
            pending[view.transaction_id] = view
            return
        pending[view.transaction_id] = view
        while len(pending) > MAX_PENDING_VERIFICATIONS:  # a stranger's flood
            pending.pop(next(iter(pending)))
        if len(pending) == 1:
            text = safe_line(unsolicited_notice(view, self._display_name(view.other_user)))
            self.notify(text, title="Verification request", timeout=20, markup=False)
        else:
            # One toast, not one per request: anyone can send requests.
            text = safe_line(
                f"{len(pending)} verification requests are waiting; /verifications opens them."
            )
        self.main.feedback.show(text)

    def open_pending_verification(self) -> None:
        """Open the oldest unsolicited request still waiting (/verifications)."""
        from tuichat.ui.screens.verification import VerificationDialog

        if not self.pending_verifications:
            self.main.feedback.show("No verification request is waiting.")
            return
        transaction_id = next(iter(self.pending_verifications))
        view = self.pending_verifications.pop(transaction_id)
        self.push_screen(VerificationDialog(view, self._display_name(view.other_user)))

    def on_verification_dialog_choice(self, message: VerificationDialog.Choice) -> None:
        service = self.service
        if service is None:
            return
        calls = {
            "accept": service.accept_verification,
            "decline": service.cancel_verification,
            "match": service.confirm_verification,
            "mismatch": service.reject_verification,
            "cancel": service.cancel_verification,
        }
        call = calls.get(message.choice)
        if call is not None:
            self._run_service_call(call(message.transaction_id))

    # -- recovery ------------------------------------------------------------------------

    @work(group="recovery", exit_on_error=False)
    async def _open_recovery(self) -> None:
        from tuichat.matrix.transport.http import MatrixHttpError
        from tuichat.matrix.transport.network import NETWORK_ERRORS

        if self.service is None:
            self.main.feedback.show("Not connected yet.", error=True)
            return
        try:
            status = await self.service.recovery_status()
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            self.main.feedback.show(safe_text(f"Could not check recovery: {error}"), error=True)
            return
        from tuichat.ui.screens import recovery

        count = status.backup.count if status.backup else 0
        self.push_screen(
            recovery.RecoveryDialog(
                has_secret_storage=status.has_secret_storage, backup_count=count
            )
        )

    def on_recovery_dialog_restore_requested(
        self, message: RecoveryDialog.RestoreRequested
    ) -> None:
        self._run_recovery(message.secret, message.is_passphrase)

    @work(group="recovery", exclusive=True, exit_on_error=False)
    async def _run_recovery(self, secret: str, is_passphrase: bool) -> None:
        from tuichat.matrix.crypto.key_backup import BackupError
        from tuichat.matrix.crypto.secret_storage import SecretStorageError
        from tuichat.matrix.transport.http import MatrixHttpError
        from tuichat.matrix.transport.network import NETWORK_ERRORS
        from tuichat.ui.screens.recovery import RecoveryDialog

        dialog = next((s for s in self.screen_stack if isinstance(s, RecoveryDialog)), None)
        if self.service is None or dialog is None:
            return
        try:
            kwargs = {"passphrase": secret} if is_passphrase else {"recovery_key": secret}
            result = await self.service.recover(progress=dialog.show_progress, **kwargs)
        except (SecretStorageError, BackupError) as error:
            dialog.show_error(safe_text(str(error)))
            return
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            dialog.show_error(safe_text(f"The server could not be reached: {error}"))
            return
        dialog.show_done(
            safe_text(
                f"Restored {result.imported} room keys from your backup. "
                "Encrypted history fills in as it is decrypted."
            )
        )

    def on_recovery_dialog_setup_requested(self, message: RecoveryDialog.SetupRequested) -> None:
        self._run_setup(message.password)

    @work(group="recovery", exclusive=True, exit_on_error=False)
    async def _run_setup(self, password: str) -> None:
        from tuichat.matrix.crypto.secret_storage import SecretStorageError
        from tuichat.matrix.transport.http import MatrixHttpError
        from tuichat.matrix.transport.network import NETWORK_ERRORS
        from tuichat.ui.screens.recovery import RecoveryDialog

        dialog = next((s for s in self.screen_stack if isinstance(s, RecoveryDialog)), None)
        if self.service is None or dialog is None:
            return
        try:
            recovery_key = await self.service.setup_recovery(password=password or None)
        except SecretStorageError as error:
            dialog.show_error(safe_text(str(error)))
            return
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            dialog.show_error(safe_text(f"Setting up recovery failed: {error}"))
            return
        dialog.show_recovery_key(recovery_key)

    # -- selecting, replying, editing, reacting, deleting -----------------------------

    def _update_members(self, room_id: str) -> None:
        """The composer completes the names of the room's members."""
        state = self.service.room_state(room_id) if self.service else None
        if state is None:
            self.main.composer.members = []
            return
        members = state.members(("join", "invite"))
        self.main.composer.members = sorted(
            ((state.member_name(user), user) for user in members if user != self.user_id),
            key=lambda pair: pair[0].lower(),
        )

    def action_select_message(self) -> None:
        view = self.main.timeline
        view.focus()
        view.select_last()

    @on(TimelineView.Left)
    def _timeline_left(self, message: TimelineView.Left) -> None:
        self.main.composer.focus()

    @on(TimelineView.ParentMissing)
    def _parent_missing(self, message: TimelineView.ParentMissing) -> None:
        room_id = self.current_room_id
        if room_id is None or self.service is None:
            return
        wanted = (room_id, message.event_id)
        if wanted not in self._parents_wanted:
            self._parents_wanted.add(wanted)
            self._run_service_call(self.service.fetch_event(room_id, message.event_id))

    @on(TimelineView.ItemAction)
    def _item_action(self, message: TimelineView.ItemAction) -> None:
        item, feedback = message.item, self.main.feedback
        own = item.sender == self.user_id
        if message.action == "reply":
            self._set_draft(Draft(DraftKind.REPLY, item))
        elif message.action == "edit":
            if not own or item.kind not in EDITABLE_KINDS:
                feedback.show("Only your own messages can be edited.", error=True)
                return
            self._start_edit(item)
        elif message.action == "react":
            if item.kind not in EDITABLE_KINDS:
                feedback.show("Only messages can be reacted to.", error=True)
                return
            from tuichat.ui.screens.reaction_picker import ReactionPicker

            self.push_screen(ReactionPicker(), lambda key: self._react(item, key))
        elif message.action in ("open", "view"):
            if item.attachment is None:
                if message.action == "open":
                    self._set_draft(Draft(DraftKind.REPLY, item))  # Enter on a message: answer it
                return
            if message.action == "view" and item.attachment.is_image:
                self._view_image(item)
            else:
                self._download(item)
        elif message.action == "delete":
            if not own or item.kind is ItemKind.REDACTED:
                feedback.show("Only your own messages can be deleted.", error=True)
                return
            from tuichat.ui.screens.confirm import ConfirmDialog

            preview = item.body if len(item.body) < 200 else item.body[:200] + "…"
            self.push_screen(
                ConfirmDialog(trusted("Delete this message for everyone?"), safe_text(preview)),
                lambda yes: self._delete(item, bool(yes)),
            )

    # -- attachments -------------------------------------------------------------------

    def download_dir(self) -> Path:
        from platformdirs import user_downloads_path

        return self.config.download_dir or user_downloads_path()

    @on(TimelineView.PreviewWanted)
    def _preview_wanted(self, message: TimelineView.PreviewWanted) -> None:
        room_id, item = self.current_room_id, message.item
        if room_id is None or item.event_id is None:
            return
        cached = self._previews.get((room_id, item.event_id))
        if cached is not None:
            self.main.timeline.set_preview(item.key, cached)
        else:
            self._fetch_preview(room_id, item)

    @work(group="previews", exit_on_error=False)
    async def _fetch_preview(self, room_id: str, item: TimelineItem) -> None:
        from tuichat.ui.graphics import inline_images
        from tuichat.ui.widgets.image_preview import preview_or_note

        if self.service is None or item.attachment is None or item.event_id is None:
            return
        data = await self.service.preview_data(item.attachment)
        kitty = inline_images()
        # Data that is no image gets a line saying so, not a silent gap.
        lines = await asyncio.to_thread(preview_or_note, data, kitty=kitty) if data else None
        if lines:
            self._previews[(room_id, item.event_id)] = lines
            if room_id == self.current_room_id:
                self.main.timeline.set_preview(item.key, lines)

    @work(group="downloads", exit_on_error=False)
    async def _download(self, item: TimelineItem, data: bytes | None = None) -> None:
        """Save the file (`data`: already fetched and checked, by the
        viewer), then offer to open it."""
        from tuichat.matrix.content.file_messages import AttachmentError

        feedback, room = self.main.feedback, self.current_room_id
        if self.service is None or item.attachment is None:
            feedback.show("Not connected yet.", error=True)
            return
        feedback.show(safe_text(f"Downloading {item.attachment.name}…"), room=room)
        try:
            path = await self.service.download(item.attachment, self.download_dir(), data)
        except (AttachmentError, OSError) as error:
            feedback.show(safe_text(f"Not saved: {error}"), error=True, room=room)
            return
        from tuichat.ui.screens.confirm import ConfirmDialog

        feedback.show(safe_text(f"Saved to {path}"), room=room)
        self.push_screen(
            ConfirmDialog(
                safe_line(f"Saved {path.name}. Open it?"), safe_line(str(path)), yes=trusted("Open")
            ),
            lambda yes: open_with_system(path) if yes else None,
        )

    @work(group="downloads", exit_on_error=False)
    async def _view_image(self, item: TimelineItem) -> None:
        from tuichat.matrix.content.file_messages import AttachmentError
        from tuichat.ui.screens.image_viewer import ImageViewer

        if self.service is None or item.attachment is None:
            return
        try:
            data = await self.service.fetch_attachment(item.attachment)
        except AttachmentError as error:
            self.main.feedback.show(safe_text(f"Cannot show the image: {error}"), error=True)
            return
        choice = await self.push_screen_wait(ImageViewer(item.attachment.name, data))
        if choice == "save":
            self._download(item, data)  # not fetched a second time

    def action_upload(self) -> None:
        from tuichat.ui.screens.file_picker import FilePicker

        def chosen(path: Path | None) -> None:
            self.main.composer.focus()
            if path is not None and self.current_room_id is not None:
                self._upload(self.current_room_id, path)

        self.push_screen(FilePicker(Path.cwd()), chosen)

    @work(group="uploads", exit_on_error=False)
    async def _upload(self, room_id: str, path: Path) -> None:
        from tuichat.matrix.content.file_messages import AttachmentError

        feedback, bar = self.main.feedback, self.main.upload_bar
        if self.service is None:
            feedback.show("Not connected yet.", error=True, room=room_id)
            return
        if not await asyncio.to_thread(path.exists):
            # Nothing to try again: say what is wrong.
            feedback.show(
                safe_text(f"Upload failed: no such file: {path}"), error=True, room=room_id
            )
            return
        bar.start(path.name, 1)
        try:
            await self.service.send_file(room_id, path, bar.advance)
        except AttachmentError as error:
            self._failed_uploads.append((room_id, path))
            feedback.show(
                safe_text(f"Upload failed: {error}. {self.key_label('retry_failed')} tries again."),
                error=True,
                room=room_id,
            )
        else:
            feedback.hide(room_id)
        finally:
            bar.finish()

    def _set_draft(self, draft: Draft | None) -> None:
        if draft is None and self.draft is not None and self.draft.kind is DraftKind.EDIT:
            self.main.composer.clear()
        self.draft = draft
        if draft is None:
            self.main.draft_bar.hide()
        else:
            self.main.draft_bar.show_draft(draft)
            self.main.composer.focus()

    @on(Composer.Cancelled)
    def _composer_cancelled(self, message: Composer.Cancelled) -> None:
        self._set_draft(None)

    @on(Composer.EditLast)
    def _edit_last(self, message: Composer.EditLast) -> None:
        """Up on an empty composer edits your newest message in this room
        (Element's habit), looking back a bounded number of items."""
        if self.current_room_id is None:
            return
        timeline = self._timeline(self.current_room_id)
        for index in range(timeline.remote_count - 1, max(-1, timeline.remote_count - 2001), -1):
            item = timeline[index]
            if (
                item.sender == self.user_id
                and item.kind in EDITABLE_KINDS
                and item.event_id is not None
                and item.attachment is None
            ):
                self._start_edit(item)
                return

    def _start_edit(self, item: TimelineItem) -> None:
        self._set_draft(Draft(DraftKind.EDIT, item))
        composer = self.main.composer
        composer.text = item.body
        composer.move_cursor(composer.document.end)

    def _react(self, item: TimelineItem, key: str | None) -> None:
        room_id, service = self.current_room_id, self.service
        if key and room_id and service and item.event_id:
            mine = self._timeline(room_id).own_reaction(item.event_id, key)
            if mine is not None:
                self._run_service_call(service.redact(room_id, mine))  # reacting again: undo
            else:
                service.react(room_id, item.event_id, key)
        self.main.timeline.focus()

    def _delete(self, item: TimelineItem, yes: bool) -> None:
        room_id, service = self.current_room_id, self.service
        if yes and room_id and service and item.event_id:
            self._run_service_call(service.redact(room_id, item.event_id))
        self.main.timeline.focus()

    @on(Composer.Changed, "#composer")
    def _composer_changed(self, message: Composer.Changed) -> None:
        """Typing notifications: on while there is text (sent again every 20
        s), off when the composer is emptied."""
        room_id, service = self.current_room_id, self.service
        if room_id is None or service is None:
            return
        text = self.main.composer.text
        if not text or text.startswith("/"):
            self._stop_typing()
            return
        now = time.monotonic()
        sent = self._typing_sent
        if sent is None or sent[0] != room_id or now - sent[1] > TYPING_REFRESH_SECONDS:
            self._typing_sent = (room_id, now)
            self._run_service_call(service.set_typing(room_id, True))

    def _stop_typing(self) -> None:
        if self._typing_sent is not None and self.service is not None:
            self._run_service_call(self.service.set_typing(self._typing_sent[0], False))
        self._typing_sent = None

    def _step_room(self, step: int) -> None:
        order = [r.room_id for r in self.rooms.ordered() if r.membership is Membership.JOIN]
        if not order:
            return
        index = order.index(self.current_room_id) if self.current_room_id in order else -1
        self.switch_room(order[(index + step) % len(order)])

    def action_next_room(self) -> None:
        self._step_room(1)

    def action_previous_room(self) -> None:
        self._step_room(-1)

    def action_retry_failed(self) -> None:
        room_id = self.current_room_id
        if room_id is None or self.service is None:
            return
        failed = [
            echo.txn_id
            for echo in self._timeline(room_id).local_echoes
            if echo.send_state is SendState.FAILED and echo.txn_id
        ]
        for txn_id in failed:
            self.service.retry(room_id, txn_id)
        uploads = [path for room, path in self._failed_uploads if room == room_id]
        self._failed_uploads = [(r, p) for r, p in self._failed_uploads if r != room_id]
        for path in uploads:
            self._upload(room_id, path)
        feedback = self.main.feedback
        if failed:
            # Ends when the last of them is sent or fails again (see _apply).
            text = safe_line(f"Sending {len(failed)} message(s) again…")
            self._retrying[room_id] = text
            feedback.show(text, room=room_id)
        elif uploads:
            pass  # each upload shows its own progress and outcome
        else:
            feedback.show(trusted("Nothing to retry in this room."))

    @on(Composer.Submitted)
    async def _composer_submitted(self, message: Composer.Submitted) -> None:
        # With the first thing sent, not at start-up.
        from tuichat.model import commands
        from tuichat.ui.commands import run_command, send_text

        feedback = self.main.feedback
        feedback.hide()
        parsed = commands.parse(message.text)
        if isinstance(parsed, commands.CommandError):
            feedback.show(safe_text(parsed.message), error=True)
        elif isinstance(parsed, commands.Message):
            send_text(self, parsed.text, message.mentions, emote=False, markdown=True)
        else:
            run_command(self, parsed, message.mentions)

    def _run_service_call(self, call: object) -> None:
        self.run_worker(call, group="commands", exit_on_error=False)  # type: ignore[arg-type]

    @work(group="commands", exit_on_error=False)
    async def _with_progress(self, text: SafeText, call: Awaitable[object]) -> None:
        """A service call with a line saying it is under way, in the room
        where it was started, that goes when the call ends (unless its
        result or an error has taken its place)."""
        feedback, room = self.main.feedback, self.current_room_id
        feedback.show(text, room=room)
        try:
            await call
        finally:
            feedback.end(text, room)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Every worker of the App that fails is logged and shown here (the
        one place: they run with `exit_on_error=False`)."""
        if event.state is WorkerState.ERROR:
            from tuichat.ui.worker_errors import report_failure

            report_failure(self, event.worker)


def open_with_system(path: Path) -> None:
    """Open a downloaded file with the desktop's opener (never a shell)."""
    import os
    import subprocess
    import sys

    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        subprocess.Popen(
            [opener, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        log.info("could not open %s: %s", path, error)
