"""Spaces and the room directory on the server: a space's hierarchy (every
page of it), the public rooms of a server (every page, filtered by search
terms), joining a room through the servers its space or directory names,
creating a space, and adding or removing its rooms.

The hierarchy is read with `/_matrix/client/v1/rooms/{id}/hierarchy`, page
after page to the end (bounded, as remote input must be); what it returns is
cleaned into `HierarchyRoom`s before the UI sees it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from nio import RoomCreateResponse
from nio.api import RoomPreset

from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.calls import RequestRefused, json_request, quietly
from tuichat.matrix.service.moderation import RoomModeration
from tuichat.model.events import Notice, SwitchToRoom
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import clean_line
from tuichat.model.space_tree import HierarchyRoom

if TYPE_CHECKING:
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

log = logging.getLogger(__name__)

# Pages of a hierarchy read at most (of `_PAGE` rooms): enough for the
# largest public spaces, and an end to a server that never stops.
_MAX_PAGES = 100
_PAGE = 100


class SpaceError(Exception):
    """The server could not be asked, or said no: the sentence to show."""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class Spaces:
    def __init__(self, context: AccountContext, moderation: RoomModeration) -> None:
        self._context = context
        self._moderation = moderation
        self.emit = context.emit

    @property
    def client(self) -> TuichatClient | None:
        return self._context.client

    @property
    def server_name(self) -> str:
        return self._context.user_id.partition(":")[2]

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return await json_request(self.client, method, path, body)
        except RequestRefused as error:
            raise SpaceError(str(error)) from error

    async def browse(self, space_id: str) -> list[HierarchyRoom] | None:
        """The hierarchy, or None (told as a Notice) when it cannot be read."""
        try:
            return await self.hierarchy(space_id)
        except SpaceError as error:
            self.emit(Notice(f"Could not read the space's rooms: {error}.", error=True))
            return None

    async def hierarchy(self, space_id: str) -> list[HierarchyRoom]:
        """Every room of the space, nested spaces' too, page after page."""
        rooms: list[dict[str, Any]] = []
        token: str | None = None
        for _page in range(_MAX_PAGES):
            query = {"limit": str(_PAGE)} | ({"from": token} if token else {})
            path = (
                f"/_matrix/client/v1/rooms/{quote(space_id, safe='')}/hierarchy?{urlencode(query)}"
            )
            payload = _dict(await self._request("GET", path))
            page = payload.get("rooms")
            rooms += [r for r in page if isinstance(r, dict)] if isinstance(page, list) else []
            token = (
                payload.get("next_batch") if isinstance(payload.get("next_batch"), str) else None
            )
            if not token:
                break
        else:
            log.warning("hierarchy of %s cut after %d pages", space_id, _MAX_PAGES)
        via: dict[str, tuple[str, ...]] = {}
        suggested: set[str] = set()
        for room in rooms:
            children = room.get("children_state")
            for event in children if isinstance(children, list) else []:
                event = _dict(event)
                content = _dict(event.get("content"))
                servers = content.get("via")
                child = event.get("state_key")
                if isinstance(child, str) and isinstance(servers, list) and servers:
                    via[child] = tuple(clean_line(s) for s in servers if isinstance(s, str))[:10]
                    if content.get("suggested") is True:
                        suggested.add(child)
        states = self._context.states
        result = []
        for room in rooms:
            room_id = room.get("room_id")
            if not isinstance(room_id, str) or room_id == space_id:
                continue
            state = states.get(room_id)
            members = room.get("num_joined_members")
            name = clean_line(room.get("name")) or clean_line(room.get("canonical_alias"))
            result.append(
                HierarchyRoom(
                    room_id=room_id,
                    name=name or clean_line(room_id),
                    topic=clean_line(room.get("topic"), max_length=300),
                    members=members if isinstance(members, int) and members >= 0 else 0,
                    joined=state is not None and state.membership is Membership.JOIN,
                    is_space=room.get("room_type") == "m.space",
                    via=via.get(room_id, ()),
                    suggested=room_id in suggested,
                )
            )
        return result

    async def public_rooms(self, server: str | None, terms: str) -> list[HierarchyRoom]:
        """The directory of `server` (ours when None), every page."""
        query = f"?{urlencode({'server': server})}" if server else ""
        found: list[HierarchyRoom] = []
        since: str | None = None
        states = self._context.states
        for _page in range(_MAX_PAGES):
            body: dict[str, Any] = {"limit": _PAGE}
            if terms:
                body["filter"] = {"generic_search_term": terms}
            if since:
                body["since"] = since
            payload = _dict(
                await self._request("POST", f"/_matrix/client/v3/publicRooms{query}", body)
            )
            chunk = payload.get("chunk")
            for room in chunk if isinstance(chunk, list) else []:
                room = _dict(room)
                room_id = room.get("room_id")
                if not isinstance(room_id, str):
                    continue
                state = states.get(room_id)
                members = room.get("num_joined_members")
                alias = clean_line(room.get("canonical_alias"))
                found.append(
                    HierarchyRoom(
                        room_id=room_id,
                        name=clean_line(room.get("name")) or alias or clean_line(room_id),
                        topic=clean_line(room.get("topic"), max_length=300),
                        members=members if isinstance(members, int) and members >= 0 else 0,
                        joined=state is not None and state.membership is Membership.JOIN,
                        is_space=room.get("room_type") == "m.space",
                        via=(clean_line(server),) if server else (self.server_name,),
                    )
                )
            batch = payload.get("next_batch")
            since = batch if isinstance(batch, str) and batch else None
            if since is None:
                break
        return found

    async def directory(self, server: str | None, terms: str) -> list[HierarchyRoom] | None:
        """The directory, or None (told as a Notice) when it cannot be read."""
        try:
            return await self.public_rooms(server, terms)
        except SpaceError as error:
            self.emit(Notice(f"Could not read the room directory: {error}.", error=True))
            return None

    async def join_via(self, room_id: str, via: tuple[str, ...]) -> bool:
        """Join a room found in a space, through the servers the space names."""
        query = urlencode([("server_name", server) for server in via])
        path = f"/_matrix/client/v3/join/{quote(room_id, safe='')}" + (f"?{query}" if query else "")
        try:
            await self._request("POST", path, {})
        except SpaceError as error:
            self.emit(Notice(f"Could not join the room: {error}.", error=True))
            return False
        state = self._context.states.get(room_id)
        if state is not None and state.membership is Membership.JOIN:
            self.emit(SwitchToRoom(room_id))
        else:
            self._context.pending_switch = room_id
        return True

    async def create_space(self, name: str) -> str | None:
        """A private space (invite only), as Element's "just me" space."""
        client = self.client
        assert client is not None
        response = await quietly(
            client.room_create(name=name, space=True, preset=RoomPreset.private_chat),
            "creating a space",
        )
        if not isinstance(response, RoomCreateResponse):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not create the space: {message}.", error=True))
            return None
        self.emit(Notice(f"Created the space {name}."))
        return str(response.room_id)

    async def set_child(self, space_id: str, room_id: str, add: bool) -> bool:
        """Add a room to a space you administer (the room names the space
        back where you may say so), or take it out."""
        content: dict[str, Any] = {"via": [self.server_name]} if add else {}
        done = "Room added to the space." if add else "Room removed from the space."
        if not await self._moderation.put_state(
            space_id, "m.space.child", content, done, state_key=room_id
        ):
            return False
        parent = {"via": [self.server_name], "canonical": True} if add else {}
        levels = self._moderation.levels(room_id)
        if levels.user_level(self._context.user_id) >= levels.state_level("m.space.parent"):
            await self._moderation.put_state(
                room_id, "m.space.parent", parent, "The room names the space.", state_key=space_id
            )
        return True
