"""Room summaries and the room list's ordering and counters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuichat.model.space_tree import SpaceChild


class Membership(StrEnum):
    JOIN = "join"
    INVITE = "invite"


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room_id: str
    name: str
    membership: Membership = Membership.JOIN
    topic: str = ""
    is_direct: bool = False
    encrypted: bool = False
    inviter: str = ""  # display name or user id of who invited us
    unread: int = 0
    highlight: int = 0
    last_activity: int = 0  # ms timestamp of the newest message
    # Encrypted rooms: devices of members (not this one) that are neither
    # verified nor blacklisted, and whether keys go to verified devices only.
    unverified_devices: int = 0
    verified_only: bool = False
    # Devices of members (not this one) that keys can go to (not
    # blacklisted), and members known to have none: their messages are
    # readable by nobody on their side.
    devices: int = 0
    members_without_devices: int = 0
    # Notifications (issue 23): the room's own push-rule setting ("" when
    # none: a `RoomMode` value otherwise), and marked unread by a client.
    notify_mode: str = ""
    marked_unread: bool = False
    # issue 22: spaces. A space's rooms (its m.space.child events), and
    # the spaces a room names as its parents (m.space.parent).
    is_space: bool = False
    space_children: tuple[SpaceChild, ...] = ()
    space_parents: tuple[str, ...] = ()
    # The room that replaced this one (its tombstone's), if any.
    successor: str = ""
    # Pinned messages' event ids (m.room.pinned_events), newest pin last.
    pinned: tuple[str, ...] = ()

    def evolve(self, **changes: object) -> RoomSummary:
        return replace(self, **changes)  # type: ignore[arg-type]


class RoomList:
    """The rooms the account knows, in display order.

    Invites come first (their own section), then joined rooms by most recent
    activity, ties broken by name so the order is stable.
    """

    def __init__(self) -> None:
        self._rooms: dict[str, RoomSummary] = {}

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, room_id: object) -> bool:
        return room_id in self._rooms

    def __iter__(self) -> Iterator[RoomSummary]:
        return iter(self.ordered())

    def get(self, room_id: str) -> RoomSummary | None:
        return self._rooms.get(room_id)

    def upsert(self, summaries: Iterable[RoomSummary]) -> None:
        """Add or replace summaries; unread counters are kept by the model."""
        for summary in summaries:
            old = self._rooms.get(summary.room_id)
            if old is not None:
                summary = summary.evolve(
                    unread=old.unread,
                    highlight=old.highlight,
                    notify_mode=old.notify_mode,
                    marked_unread=old.marked_unread,
                    last_activity=max(old.last_activity, summary.last_activity),
                )
            self._rooms[summary.room_id] = summary

    def remove(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def set_counts(self, room_id: str, unread: int, highlight: int) -> None:
        room = self._rooms.get(room_id)
        if room is not None:
            self._rooms[room_id] = room.evolve(unread=unread, highlight=highlight)

    def set_flags(self, room_id: str, **flags: object) -> bool:
        """Set `notify_mode` / `marked_unread`; False if the room is unknown."""
        room = self._rooms.get(room_id)
        if room is None:
            return False
        self._rooms[room_id] = room.evolve(**flags)
        return True

    def touch(self, room_id: str, timestamp: int) -> None:
        room = self._rooms.get(room_id)
        if room is not None and timestamp > room.last_activity:
            self._rooms[room_id] = room.evolve(last_activity=timestamp)

    def ordered(self) -> list[RoomSummary]:
        invites = [r for r in self._rooms.values() if r.membership is Membership.INVITE]
        joined = [r for r in self._rooms.values() if r.membership is Membership.JOIN]
        invites.sort(key=lambda r: (-r.last_activity, r.name.casefold()))
        joined.sort(key=lambda r: (-r.last_activity, r.name.casefold()))
        return invites + joined
