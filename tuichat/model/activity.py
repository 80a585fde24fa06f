"""Where the user's attention is wanted: the next room with a highlight or
unread messages, and the events that highlighted the user across rooms
(the Mentions view). Read from `ChatState`; plain Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuichat.model.items import TimelineItem

if TYPE_CHECKING:
    from tuichat.model.state import ChatState

# The Mentions view lists at most this many events.
MAX_MENTIONS = 200


def next_activity(state: ChatState) -> str | None:
    """The next joined room (after the one shown, in the list's order,
    wrapping) with a highlight; if none, the next with unread messages or
    marked unread. Muted rooms count for neither."""
    order = state.joined()
    if not order:
        return None
    start = order.index(state.current_room_id) + 1 if state.current_room_id in order else 0
    rotated = order[start:] + order[:start]
    rooms = [state.rooms.get(room_id) for room_id in rotated]
    candidates = [r for r in rooms if r is not None and r.room_id != state.current_room_id]
    for room in candidates:
        if room.highlight and room.notify_mode != "mute":
            return room.room_id
    for room in candidates:
        if (room.unread or room.marked_unread) and room.notify_mode != "mute":
            return room.room_id
    return None


@dataclass(frozen=True)
class Mention:
    room_id: str
    room_name: str
    item: TimelineItem


def mentions(state: ChatState, limit: int = MAX_MENTIONS) -> list[Mention]:
    """Events that highlighted the user, in every room whose timeline is
    loaded, newest first."""
    found: list[Mention] = []
    for room_id, timeline in state.timelines.items():
        summary = state.rooms.get(room_id)
        if summary is None:
            continue
        for index in range(len(timeline)):
            item = timeline[index]
            if item.highlight and item.sender != state.user_id and item.event_id is not None:
                found.append(Mention(room_id, summary.name, item))
    found.sort(key=lambda mention: mention.item.timestamp, reverse=True)
    return found[:limit]
