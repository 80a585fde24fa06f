"""Direct messages: the `m.direct` account data, and finding an existing DM.

`m.direct` maps each user id to the rooms that are DMs with them (spec:
"Direct Messaging"). tuichat keeps the latest content it saw (from the
cache, then from sync) and updates it on the server when it creates or
accepts a DM, as Element does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from tuichat.matrix.content.room_state import RoomState
from tuichat.model.rooms import Membership


@dataclass(frozen=True)
class ProfileLookup:
    """A user id checked against the server: display name, or why not."""

    user_id: str
    display_name: str | None
    error: str | None


def parse_direct(content: object) -> dict[str, list[str]]:
    """A clean copy of an m.direct content: user id -> room ids."""
    result: dict[str, list[str]] = {}
    if isinstance(content, dict):
        for user_id, rooms in content.items():
            if isinstance(user_id, str) and isinstance(rooms, list):
                result[user_id] = [r for r in rooms if isinstance(r, str)]
    return result


class DirectMessages:
    def __init__(self, own_user_id: str, content: object = None) -> None:
        self.own_user_id = own_user_id
        self.content = parse_direct(content)

    def room_ids(self) -> set[str]:
        return {room for rooms in self.content.values() for room in rooms}

    def partners(self, room_id: str) -> list[str]:
        """The people m.direct lists this room under."""
        return [user for user, rooms in self.content.items() if room_id in rooms]

    def replace(self, content: object) -> None:
        self.content = parse_direct(content)

    def with_room(self, user_ids: Iterable[str], room_id: str) -> dict[str, list[str]]:
        """The content with `room_id` listed under each of `user_ids`."""
        updated = {user: list(rooms) for user, rooms in self.content.items()}
        for user_id in user_ids:
            rooms = updated.setdefault(user_id, [])
            if room_id not in rooms:
                rooms.append(room_id)
        return updated

    def find_existing(self, user_id: str, states: Mapping[str, RoomState]) -> str | None:
        """A joined DM whose only other member is `user_id`, who is joined too."""
        for room_id in self.content.get(user_id, []):
            state = states.get(room_id)
            if state is None or state.membership is not Membership.JOIN:
                continue
            if state.membership_of(user_id) != "join":
                continue
            if set(state.members(("join", "invite"))) == {self.own_user_id, user_id}:
                return room_id
        return None

    def account_data_request(self, content: dict[str, list[str]]) -> tuple[str, str, str]:
        """(method, path, body) for PUT /user/{me}/account_data/m.direct."""
        path = f"/_matrix/client/v3/user/{quote(self.own_user_id, safe='')}/account_data/m.direct"
        return "PUT", path, json.dumps(content)


def direct_partners(state: RoomState, own_user_id: str) -> list[str]:
    """The people an invite to a DM is with: the inviter."""
    event = state.events.get(("m.room.member", own_user_id))
    sender = event.get("sender") if event else None
    return [sender] if isinstance(sender, str) and sender != own_user_id else []
