"""ChatState: what the client knows of the account's chats, and how each
domain event changes it.

The rooms, their timelines, the room shown, read markers and unread counts,
who is typing, the draft being written, the connection and the messages
being sent again live here, as plain Python. `ChatState.apply(event)` looks
the event's type up in `HANDLERS` and returns a `Changes`: what the UI has
to redraw or tell (it holds no widget and decides nothing about drawing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tuichat.model import events as ev
from tuichat.model.connection import ConnectionState
from tuichat.model.draft import Draft
from tuichat.model.items import SendState, TimelineItem
from tuichat.model.packed_timeline import settle_packing
from tuichat.model.rooms import Membership, RoomList, RoomSummary
from tuichat.model.search_query import IndexProgress
from tuichat.model.threads import RoomTimeline
from tuichat.model.timeline import Timeline, TimelineChange
from tuichat.model.verification import VerificationView


@dataclass(frozen=True)
class NewMessage:
    """A message worth a bell or a desktop notification (a mention, or a
    direct message) in `room_id`, once synced."""

    room_id: str
    room_name: str
    item: TimelineItem


@dataclass
class Changes:
    """What one event changed, for the UI to redraw and tell."""

    timeline: list[TimelineChange] = field(default_factory=list)  # of the room shown
    rooms: bool = False  # the room list
    header: bool = False  # the room shown: name, topic
    status: bool = False  # the connection line
    members: bool = False  # the room shown's members (for completion)
    history: bool = False  # the marker above the room shown: more, or its start
    typing: bool = False  # who types in the room shown
    left: bool = False  # the room shown went (`switch_to` says which room follows, if any)
    switch_to: str | None = None  # a room to show
    read_markers: list[tuple[str, str]] = field(default_factory=list)  # (room, event) read here
    cached_rooms: list[str] = field(default_factory=list)  # rooms read from the cache
    notices: list[ev.Notice] = field(default_factory=list)
    send_failures: list[ev.SendStateChanged] = field(default_factory=list)
    retries_ended: list[tuple[str, int]] = field(default_factory=list)  # (room, how many)
    new_messages: list[NewMessage] = field(default_factory=list)
    devices: frozenset[str] = frozenset()  # users whose devices or trust changed
    verifications: list[VerificationView] = field(default_factory=list)
    recovery_offered: int | None = None  # sessions in the backup, if offered
    # Notifications (issue 23): rooms whose marked-unread flag reading cleared
    # (to tell the server), and whether room settings or keywords changed.
    unmarked: list[str] = field(default_factory=list)
    push_settings: bool = False
    threads: list[str] = field(default_factory=list)  # rooms whose thread list changed


class ChatState:
    """The model of the chats one account sees; the UI loop's only writer."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.rooms = RoomList()
        self.timelines: dict[str, RoomTimeline] = {}
        self.current_room_id: str | None = None
        self.connection = ConnectionState.CONNECTING
        self.connection_detail = ""
        self.typing: dict[str, tuple[str, ...]] = {}  # room id -> names typing
        self.draft: Draft | None = None  # a reply or edit being written
        # Rooms whose failed messages are being sent again: how many.
        self.retrying: dict[str, int] = {}
        # Notifications (issue 23): rooms' own push-rule settings (room id ->
        # `RoomMode` value), keywords, and rooms marked unread.
        self.room_modes: dict[str, str] = {}
        self.keywords: tuple[str, ...] = ()
        self.group_default = "all"
        self.marked_unread: set[str] = set()
        self.unmarked: list[str] = []  # cleared by reading, not yet told
        # Clear-text rooms: the server's (notifications, highlights).
        self.server_counts: dict[str, tuple[int, int]] = {}
        # Search (issue 24): how far indexing the existing history has come.
        self.search_progress = IndexProgress()

    # -- reading -----------------------------------------------------------------------

    @property
    def current_summary(self) -> RoomSummary | None:
        return self.rooms.get(self.current_room_id) if self.current_room_id else None

    def timeline(self, room_id: str) -> RoomTimeline:
        timeline = self.timelines.get(room_id)
        if timeline is None:
            timeline = self.timelines[room_id] = RoomTimeline(room_id, self.user_id)
        return timeline

    def joined(self) -> list[str]:
        """Joined rooms' ids, in the room list's order."""
        return [r.room_id for r in self.rooms.ordered() if r.membership is Membership.JOIN]

    def step_room(self, step: int) -> str | None:
        """The joined room `step` places after (or before) the room shown."""
        order = self.joined()
        if not order:
            return None
        index = order.index(self.current_room_id) if self.current_room_id in order else -1
        return order[(index + step) % len(order)]

    def failed_echoes(self, room_id: str) -> list[str]:
        """Transaction ids of this room's messages that failed to send."""
        return [
            echo.txn_id
            for echo in self.timeline(room_id).local_echoes
            if echo.send_state is SendState.FAILED and echo.txn_id
        ]

    # -- the user's doing ------------------------------------------------------------------

    def select_room(self, room_id: str) -> bool:
        """Show `room_id`; True if it was not the room shown (the draft goes)."""
        previous, self.current_room_id = self.current_room_id, room_id
        if previous != room_id:
            self.draft = None
            return True
        return False

    def mark_read(self, room_id: str) -> str | None:
        """The user sees the room's newest message: its counts go to zero.
        Returns the new read marker if it moved (to tell the server)."""
        timeline = self.timeline(room_id)
        before = timeline.read_marker
        timeline.mark_read()
        self.rooms.set_counts(room_id, 0, 0)
        self.server_counts.pop(room_id, None)
        if room_id in self.marked_unread:
            self.marked_unread.discard(room_id)
            self.rooms.set_flags(room_id, marked_unread=False)
            self.unmarked.append(room_id)
        if timeline.read_marker and timeline.read_marker != before:
            return timeline.read_marker
        return None

    # -- applying events ---------------------------------------------------------------------

    def apply(self, event: ev.DomainEvent) -> Changes:
        changes = Changes()
        HANDLERS[type(event)](self, event, changes)
        # Between events: timelines unused for a while are packed (never
        # the room shown).
        settle_packing((self.timelines.get(self.current_room_id or ""),))
        return changes

    def _timeline_changed(self, room_id: str, change: TimelineChange, changes: Changes) -> None:
        """The room shown redraws and counts as read; another counts unread."""
        if room_id == self.current_room_id:
            changes.timeline.append(change)
            marker = self.mark_read(room_id)
            if marker is not None:
                changes.read_markers.append((room_id, marker))
            changes.unmarked.extend(self.unmarked)
            self.unmarked.clear()
        else:
            self._update_counts(room_id)

    def _update_counts(self, room_id: str) -> None:
        timeline = self.timelines.get(room_id)
        if timeline is not None:
            unread, highlight = timeline.unread_counts(self.user_id)
            server = self.server_counts.get(room_id)
            if server is not None and not timeline.has_read_marker_here():
                # Not every event since the marker is here: the server
                # counted them (clear-text rooms only).
                unread, highlight = max(unread, server[0]), max(highlight, server[1])
            if self.room_modes.get(room_id) == "mute":
                unread = highlight = 0  # also what came before it was muted
            self.rooms.set_counts(room_id, unread, highlight)

    def _new_message(self, event: ev.TimelineAppended) -> NewMessage | None:
        """The first of the event's items that earns a notification (the
        UI skips it if the room is on screen and the terminal has focus)."""
        if self.connection is not ConnectionState.SYNCED:
            return None
        summary = self.rooms.get(event.room_id)
        if summary is None:
            return None
        known = self.timeline(event.room_id)
        for item in event.items:
            if (
                item.sender != self.user_id
                and item.is_message
                and item.relation is None
                and (item.rings if item.notify is not None else item.highlight or summary.is_direct)
                and (item.event_id is None or known.index_of(item.event_id) is None)
            ):
                return NewMessage(event.room_id, summary.name, item)
        return None

    def _decrypted_message(self, event: ev.ItemsReplaced) -> NewMessage | None:
        """A placeholder that decrypted to a message the push rules ring for
        (they are evaluated again on the decrypted event)."""
        summary = self.rooms.get(event.room_id)
        if self.connection is not ConnectionState.SYNCED or summary is None:
            return None
        known = self.timeline(event.room_id)
        for item in event.items:
            old = known.get(item.event_id) if item.event_id else None
            if (
                old is not None
                and old.utd_reason is not None
                and item.utd_reason is None
                and item.sender != self.user_id
                and item.is_message
                and item.relation is None
                and item.notify is not None
                and item.rings
                and not known_read(known, item.event_id)
            ):
                return NewMessage(event.room_id, summary.name, item)
        return None

    def _on_appended(self, event: ev.TimelineAppended, changes: Changes) -> None:
        new = self._new_message(event)
        if new is not None:
            changes.new_messages.append(new)
        timeline = self.timeline(event.room_id)
        change = timeline.reset(event.items) if event.limited else timeline.append(event.items)
        self._timeline_changed(event.room_id, change, changes)
        if event.limited:  # a gap: load what came before
            changes.history = event.room_id == self.current_room_id
        for item in event.items:
            self.rooms.touch(event.room_id, item.timestamp)
        changes.rooms = True

    def _on_replaced(self, event: ev.ItemsReplaced, changes: Changes) -> None:
        new = self._decrypted_message(event)
        if new is not None:
            changes.new_messages.append(new)
        change = self.timeline(event.room_id).replace(event.items, event.hidden)
        self._timeline_changed(event.room_id, change, changes)
        changes.rooms = True

    def _on_prepended(self, event: ev.TimelinePrepended, changes: Changes) -> None:
        timeline = self.timeline(event.room_id)
        timeline.has_more_history = event.has_more
        self._timeline_changed(event.room_id, timeline.prepend(event.items), changes)
        changes.history = event.room_id == self.current_room_id

    def _on_echo(self, event: ev.LocalEchoAdded, changes: Changes) -> None:
        change = self.timeline(event.room_id).add_local_echo(event.item)
        self._timeline_changed(event.room_id, change, changes)

    def _on_send_state(self, event: ev.SendStateChanged, changes: Changes) -> None:
        timeline = self.timeline(event.room_id)
        change = timeline.update_local_echo(event.txn_id, event.state, event.event_id)
        self._timeline_changed(event.room_id, change, changes)
        retrying = self.retrying.get(event.room_id)
        if retrying is not None and not any(
            echo.send_state is SendState.PENDING for echo in timeline.local_echoes
        ):
            del self.retrying[event.room_id]
            changes.retries_ended.append((event.room_id, retrying))
        if event.state is SendState.FAILED:
            changes.send_failures.append(event)

    def _on_rooms(self, event: ev.RoomsChanged, changes: Changes) -> None:
        self.rooms.upsert(event.rooms)
        self._flag_rooms(event.rooms)
        if self.current_room_id is None:
            joined = [r for r in event.rooms if r.membership is Membership.JOIN]
            if joined:
                changes.switch_to = joined[0].room_id
        changes.rooms = changes.header = True
        changes.members = any(r.room_id == self.current_room_id for r in event.rooms)

    def _on_removed(self, event: ev.RoomRemoved, changes: Changes) -> None:
        self.rooms.remove(event.room_id)
        self.timelines.pop(event.room_id, None)
        if self.current_room_id == event.room_id:
            self.current_room_id = None
            changes.left = True
            joined = self.joined()
            if joined:
                changes.switch_to = joined[0]
            else:
                changes.header = True
        changes.rooms = True

    def _on_connection(self, event: ev.ConnectionChanged, changes: Changes) -> None:
        self.connection = event.state
        self.connection_detail = event.detail
        changes.status = True

    def _on_notice(self, event: ev.Notice, changes: Changes) -> None:
        changes.notices.append(event)

    def _on_switch(self, event: ev.SwitchToRoom, changes: Changes) -> None:
        changes.switch_to = event.room_id

    def _on_devices(self, event: ev.DevicesChanged, changes: Changes) -> None:
        changes.devices = event.user_ids

    def _on_verification(self, event: ev.VerificationChanged, changes: Changes) -> None:
        changes.verifications.append(event.view)

    def _on_recovery(self, event: ev.RecoveryOffered, changes: Changes) -> None:
        changes.recovery_offered = event.count

    def _on_receipts(self, event: ev.ReceiptsChanged, changes: Changes) -> None:
        change = self.timeline(event.room_id).set_receipts(event.receipts)
        if event.room_id == self.current_room_id:
            changes.timeline.append(change)

    def _on_typing(self, event: ev.TypingChanged, changes: Changes) -> None:
        self.typing[event.room_id] = event.names
        changes.typing = event.room_id == self.current_room_id

    def _on_context(self, event: ev.ContextFetched, changes: Changes) -> None:
        change = self.timeline(event.room_id).add_context(event.items)
        if event.room_id == self.current_room_id:
            changes.timeline.append(change)

    def _on_read_markers(self, event: ev.ReadMarkers, changes: Changes) -> None:
        """Another of our devices read up to a marker: the room's unread
        count follows, if that is further than read here."""
        for room_id, event_id in event.markers.items():
            timeline = self.timeline(room_id)
            new = timeline.index_of(event_id)
            old = timeline.index_of(timeline.read_marker) if timeline.read_marker else None
            if new is not None and (old is None or new > old):
                timeline.read_marker = event_id
                if room_id != self.current_room_id:
                    self._update_counts(room_id)
                    changes.rooms = True

    def _on_cached_rooms(self, event: ev.CachedRoomsRead, changes: Changes) -> None:
        self.rooms.upsert(event.rooms)
        self._flag_rooms(event.rooms)
        if self.current_room_id is None:
            joined = self.joined()
            if joined:
                changes.switch_to = joined[0]
        changes.rooms = True

    def _on_cached_timeline(self, event: ev.CachedTimelineRead, changes: Changes) -> None:
        room_id = event.room_id
        timeline = self.timeline(room_id)
        if len(timeline):
            # Newer events came by sync before the cache was read: the cached
            # ones they do not repeat are older. The cache may not hold that
            # sync's writes yet (nor the token before its events): only a
            # history load, which waits for them, says nothing lies before.
            change = timeline.prepend(event.items)
            timeline.has_more_history = timeline.has_more_history or event.has_older
        else:
            change = timeline.append(event.items)
            timeline.note_origin(event.items)
            timeline.read_marker = event.read_marker
            if timeline.read_marker is None:
                timeline.mark_read()
            timeline.has_more_history = event.has_older
        if event.receipts:
            timeline.set_receipts(event.receipts)
        if room_id == self.current_room_id:
            changes.timeline.append(change)
        else:
            self._update_counts(room_id)
        changes.cached_rooms.append(room_id)
        changes.rooms = True

    def _on_waiting_settled(self, event: ev.WaitingSettled, changes: Changes) -> None:
        for room_id, timeline in self.timelines.items():
            self._timeline_changed(room_id, timeline.settle_waiting(event.reason), changes)

    # -- notifications and unread state (issue 23) -----------------------------------------

    def _flag_rooms(self, summaries: list[RoomSummary]) -> None:
        """Settings and flags known before the rooms were (a room's timeline
        read from the cache before its summary: its counts too)."""
        for summary in summaries:
            if summary.room_id in self.timelines and summary.room_id != self.current_room_id:
                self._update_counts(summary.room_id)
            self.rooms.set_flags(
                summary.room_id,
                notify_mode=self.room_modes.get(summary.room_id, ""),
                marked_unread=summary.room_id in self.marked_unread,
            )

    def _on_push_settings(self, event: ev.PushSettingsChanged, changes: Changes) -> None:
        before = self.room_modes
        self.room_modes = dict(event.room_modes)
        self.keywords = event.keywords
        self.group_default = event.group_default
        for room_id in set(before) | set(self.room_modes):
            self.rooms.set_flags(room_id, notify_mode=self.room_modes.get(room_id, ""))
            if room_id != self.current_room_id:
                self._update_counts(room_id)
        changes.rooms = changes.push_settings = True

    def _on_server_counts(self, event: ev.ServerCounts, changes: Changes) -> None:
        summary = self.rooms.get(event.room_id)
        if summary is not None and summary.encrypted:
            return  # the server cannot read these: our own evaluation counts
        self.server_counts[event.room_id] = (event.notifications, event.highlights)
        if event.room_id != self.current_room_id:
            self._update_counts(event.room_id)
            changes.rooms = True

    def _on_marked_unread(self, event: ev.MarkedUnread, changes: Changes) -> None:
        if event.unread:
            self.marked_unread.add(event.room_id)
        else:
            self.marked_unread.discard(event.room_id)
        self.rooms.set_flags(event.room_id, marked_unread=event.unread)
        changes.rooms = True

    # -- threads (issue 21) ------------------------------------------------------------

    def _on_thread_page(self, event: ev.ThreadPage, changes: Changes) -> None:
        timeline = self.timeline(event.room_id)
        change = timeline.add_thread_page(
            event.root, event.items, has_more=event.has_more, next_token=event.next_token
        )
        if event.room_id == self.current_room_id:
            changes.timeline.append(change)
        changes.threads.append(event.room_id)

    def _on_threads_listed(self, event: ev.ThreadsListed, changes: Changes) -> None:
        timeline = self.timeline(event.room_id)
        timeline.threads_listed = True
        timeline.threads_have_more = event.has_more
        change = timeline.add_thread_roots(event.roots)
        if event.room_id == self.current_room_id:
            changes.timeline.append(change)
        changes.threads.append(event.room_id)

    def _on_thread_receipts(self, event: ev.ThreadReceipts, changes: Changes) -> None:
        timeline = self.timeline(event.room_id)
        roots = [root for root, event_id in event.receipts.items() if root in timeline.threads]
        for root in roots:
            timeline.mark_thread_read(root, event.receipts[root])
        change = timeline.refresh_roots(roots)
        if event.room_id == self.current_room_id:
            changes.timeline.append(change)
        else:
            self._update_counts(event.room_id)
        changes.rooms = True
        changes.threads.append(event.room_id)

    def _on_thread_counts(self, event: ev.ThreadCounts, changes: Changes) -> None:
        timeline = self.timeline(event.room_id)
        change = timeline.set_server_counts(event.counts)
        if change is None:
            return
        if event.room_id == self.current_room_id:
            changes.timeline.append(change)
        else:
            self._update_counts(event.room_id)
            changes.rooms = True
        changes.threads.append(event.room_id)

    def _on_thread_readers(self, event: ev.ThreadReaders, changes: Changes) -> None:
        thread = self.timeline(event.room_id).thread(event.root)
        thread.note(thread.timeline.set_receipts(event.receipts))

    # -- search (issue 24) -------------------------------------------------------------

    def _on_search_progress(self, event: ev.SearchIndexProgress, changes: Changes) -> None:
        self.search_progress = event.progress


def known_read(timeline: Timeline, event_id: str | None) -> bool:
    """Whether `event_id` is at or before the timeline's read marker."""
    if event_id is None or timeline.read_marker is None:
        return False
    marker, index = timeline.index_of(timeline.read_marker), timeline.index_of(event_id)
    return marker is not None and index is not None and index <= marker


Handler = Callable[[ChatState, Any, Changes], None]

# Each domain event type and the method that applies it. A test checks that
# every type in `DomainEvent` has a row.
HANDLERS: dict[type, Handler] = {
    ev.TimelineAppended: ChatState._on_appended,
    ev.ItemsReplaced: ChatState._on_replaced,
    ev.TimelinePrepended: ChatState._on_prepended,
    ev.LocalEchoAdded: ChatState._on_echo,
    ev.SendStateChanged: ChatState._on_send_state,
    ev.RoomsChanged: ChatState._on_rooms,
    ev.RoomRemoved: ChatState._on_removed,
    ev.ConnectionChanged: ChatState._on_connection,
    ev.Notice: ChatState._on_notice,
    ev.SwitchToRoom: ChatState._on_switch,
    ev.DevicesChanged: ChatState._on_devices,
    ev.VerificationChanged: ChatState._on_verification,
    ev.RecoveryOffered: ChatState._on_recovery,
    ev.ReceiptsChanged: ChatState._on_receipts,
    ev.TypingChanged: ChatState._on_typing,
    ev.ContextFetched: ChatState._on_context,
    ev.ReadMarkers: ChatState._on_read_markers,
    ev.CachedRoomsRead: ChatState._on_cached_rooms,
    ev.CachedTimelineRead: ChatState._on_cached_timeline,
    ev.WaitingSettled: ChatState._on_waiting_settled,
    # notifications and unread state (issue 23)
    ev.PushSettingsChanged: ChatState._on_push_settings,
    ev.MarkedUnread: ChatState._on_marked_unread,
    ev.ServerCounts: ChatState._on_server_counts,
    # threads (issue 21)
    ev.ThreadPage: ChatState._on_thread_page,
    ev.ThreadsListed: ChatState._on_threads_listed,
    ev.ThreadReceipts: ChatState._on_thread_receipts,
    ev.ThreadCounts: ChatState._on_thread_counts,
    ev.ThreadReaders: ChatState._on_thread_readers,
    # search (issue 24)
    ev.SearchIndexProgress: ChatState._on_search_progress,
}
