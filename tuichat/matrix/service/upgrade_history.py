"""History stitched across room upgrades: when scrolling back reaches the
start of a room that replaces another (its `m.room.create` names a
predecessor) and you are, or were, in that room, older history continues
with the predecessor's events before its tombstone, below a divider line
"Earlier messages in the previous room". `History` reads the predecessor
through its own cache and /messages pages; these are the pieces it uses
(`other_events.readable_predecessor` says whether a room continues so).
"""

from __future__ import annotations

from typing import Any

from tuichat.model.items import ItemKind, TimelineItem


def before_tombstone(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A predecessor's events without its tombstone (the successor's own
    first line says where it came from)."""
    return [e for e in events if e.get("type") != "m.room.tombstone"]


def divider(predecessor: str, timestamp: int) -> TimelineItem:
    """The line between the successor's history and its predecessor's."""
    key = f"upgrade:{predecessor}"  # an id the timeline keeps, no server's
    return TimelineItem(
        key=key,
        event_id=key,
        sender="",
        sender_name="",
        timestamp=timestamp,
        kind=ItemKind.STATE,
        body="Earlier messages in the previous room",
        link_room=predecessor,
    )
