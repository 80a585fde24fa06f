"""What the cache holds, turned into room states and timeline items.

Loaded before nio is imported, so the first frame can show the room list and
the open room's recent history at once. Only that room's events are read at
start-up: every other room's timeline is read from the cache when it is
first needed (`load_room`), so start-up does not grow with the history.
Encrypted events come back as "decrypting…" placeholders (edits, reactions
and references, never shown on their own, stay hidden); the service
decrypts them once the crypto store is open, and each placeholder then
becomes its message, a placeholder with a reason, or nothing (an event of
a kind no timeline shows), as the same event would live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.direct_messages import parse_direct
from tuichat.matrix.content.other_events import readable_predecessor
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.types import Decryption
from tuichat.matrix.storage.cache import Cache
from tuichat.model.items import MESSAGE_KINDS, TimelineItem
from tuichat.model.packed_timeline import PackedItems
from tuichat.model.push_rules import PushRules
from tuichat.model.rooms import Membership, RoomSummary

EVENTS_PER_ROOM = 100


def last_activity(items: list[TimelineItem]) -> int:
    for item in reversed(items):
        if item.kind in MESSAGE_KINDS:
            return item.timestamp
    return items[-1].timestamp if items else 0


@dataclass
class Snapshot:
    sync_token: str | None
    states: dict[str, RoomState] = field(default_factory=dict)
    # Rooms whose timelines were read from the cache (or that began empty).
    # Kept packed (a room's items are read again only if its timeline is).
    timelines: dict[str, Sequence[TimelineItem]] = field(default_factory=dict)
    # Each room's last activity (newest cached event), loaded or not.
    last_activity: dict[str, int] = field(default_factory=dict)
    # Encrypted events still to decrypt, by room, oldest first.
    encrypted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    read_markers: dict[str, str] = field(default_factory=dict)
    # Other members' read receipts: room -> user id -> (event id, name).
    receipts: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    has_older: dict[str, bool] = field(default_factory=dict)
    m_direct: dict[str, list[str]] = field(default_factory=dict)
    own_display_name: str = ""
    user_id: str = ""
    # The account's push rules (`m.push_rules` content), as last synced.
    push_rules: dict[str, Any] | None = None
    # What cached encrypted events show until the service decrypts them;
    # "no_store" once it cannot (this device's crypto store did not open).
    waiting_reason: str = "decrypting"

    def summaries(self, own_user_id: str) -> list[RoomSummary]:
        return [
            state.summary(own_user_id, self.last_activity.get(room_id, 0))
            for room_id, state in self.states.items()
        ]

    def viewer(self) -> Viewer:
        """Who looks, with the push rules the cache holds."""
        rules = PushRules.from_account_data(self.user_id, self.push_rules)
        return Viewer(self.user_id, self.own_display_name, rules)

    def load_room(
        self, cache: Cache, room_id: str, events_per_room: int = EVENTS_PER_ROOM
    ) -> Sequence[TimelineItem] | None:
        """Read one room's newest events from the cache (once); None if it
        was loaded before or is unknown. Encrypted ones are queued in
        `encrypted` for the service to decrypt."""
        state = self.states.get(room_id)
        if state is None or room_id in self.timelines:
            return None
        events, has_older = cache.load_events(room_id, events_per_room)
        self.has_older[room_id] = (
            has_older
            or cache.prev_batch(room_id) is not None
            # issue 22: past an upgraded room's start, its predecessor's history
            or readable_predecessor(self.states, room_id) is not None
        )
        marker = cache.read_marker(room_id)
        if marker:
            self.read_markers[room_id] = marker
        receipts = cache.receipts(room_id)
        if receipts:
            self.receipts[room_id] = {
                user: (event, state.member_name(user)) for user, event in receipts.items()
            }
        viewer = self.viewer()
        waiting = Decryption(None, self.waiting_reason)
        items = []
        encrypted = []
        for event in events:
            is_encrypted = event.get("type") == "m.room.encrypted"
            item = to_item(event, state, viewer, waiting if is_encrypted else None)
            if item is None:
                continue
            items.append(item)
            if is_encrypted and item.utd_reason is not None:
                encrypted.append(event)
        if encrypted:
            self.encrypted.setdefault(room_id, []).extend(encrypted)
        if items:
            self.last_activity[room_id] = max(
                self.last_activity.get(room_id, 0), last_activity(items)
            )
        kept = self.timelines[room_id] = PackedItems.of(items) or items
        return kept


def load_snapshot(cache: Cache, own_user_id: str) -> Snapshot:
    """Room states and last activity for every room; the timeline of the
    room with the latest activity only."""
    m_direct = parse_direct(cache.account_data("m.direct"))
    direct = {room for rooms in m_direct.values() for room in rooms}
    snapshot = Snapshot(sync_token=cache.sync_token, m_direct=m_direct, user_id=own_user_id)
    snapshot.push_rules = cache.account_data("m.push_rules")
    for cached in cache.load_rooms():
        try:
            membership = Membership(cached.membership)
        except ValueError:
            continue
        state = RoomState(cached.room_id, membership)
        state.load(cached.state)
        state.merge_summary(cached.summary)
        state.is_direct = cached.room_id in direct
        snapshot.states[cached.room_id] = state
        own_name = state.content("m.room.member", own_user_id).get("displayname")
        if isinstance(own_name, str) and own_name and not snapshot.own_display_name:
            snapshot.own_display_name = own_name
    snapshot.last_activity = cache.last_timestamps()
    joined = [r for r, s in snapshot.states.items() if s.membership is Membership.JOIN]
    if joined:
        newest = max(joined, key=lambda r: snapshot.last_activity.get(r, 0))
        snapshot.load_room(cache, newest)
    return snapshot
