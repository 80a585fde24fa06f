"""What the cache holds, turned into room states and timeline items.

Loaded before nio is imported, so the first frame can show the room list and
recent history at once. Encrypted events come back as "decrypting…"
placeholders; the service decrypts them as soon as the crypto store is open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuichat.matrix.cache import Cache
from tuichat.matrix.convert import Decryption, Viewer, to_item
from tuichat.matrix.direct_messages import parse_direct
from tuichat.matrix.room_state import RoomState
from tuichat.model.items import MESSAGE_KINDS, TimelineItem
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
    timelines: dict[str, list[TimelineItem]] = field(default_factory=dict)
    # Encrypted events still to decrypt, by room, oldest first.
    encrypted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    read_markers: dict[str, str] = field(default_factory=dict)
    has_older: dict[str, bool] = field(default_factory=dict)
    m_direct: dict[str, list[str]] = field(default_factory=dict)
    own_display_name: str = ""

    def summaries(self, own_user_id: str) -> list[RoomSummary]:
        return [
            state.summary(own_user_id, last_activity(self.timelines.get(room_id, [])))
            for room_id, state in self.states.items()
        ]


def load_snapshot(
    cache: Cache, own_user_id: str, events_per_room: int = EVENTS_PER_ROOM
) -> Snapshot:
    m_direct = parse_direct(cache.account_data("m.direct"))
    direct = {room for rooms in m_direct.values() for room in rooms}
    snapshot = Snapshot(sync_token=cache.sync_token, m_direct=m_direct)
    rooms = []
    for cached in cache.load_rooms(events_per_room):
        try:
            membership = Membership(cached.membership)
        except ValueError:
            continue
        state = RoomState(cached.room_id, membership)
        for event in cached.state:
            state.apply(event)
        state.merge_summary(cached.summary)
        state.is_direct = cached.room_id in direct
        snapshot.states[cached.room_id] = state
        own_name = state.content("m.room.member", own_user_id).get("displayname")
        if isinstance(own_name, str) and own_name and not snapshot.own_display_name:
            snapshot.own_display_name = own_name
        if cached.read_marker:
            snapshot.read_markers[cached.room_id] = cached.read_marker
        snapshot.has_older[cached.room_id] = cached.has_older or bool(cached.prev_batch)
        rooms.append((cached, state))
    viewer = Viewer(own_user_id, snapshot.own_display_name)
    waiting = Decryption(None, "decrypting")
    for cached, state in rooms:
        items = []
        encrypted = []
        for event in cached.events:
            is_encrypted = event.get("type") == "m.room.encrypted"
            item = to_item(event, state, viewer, waiting if is_encrypted else None)
            if item is None:
                continue
            items.append(item)
            if is_encrypted and item.utd_reason is not None:
                encrypted.append(event)
        snapshot.timelines[cached.room_id] = items
        if encrypted:
            snapshot.encrypted[cached.room_id] = encrypted
    return snapshot
