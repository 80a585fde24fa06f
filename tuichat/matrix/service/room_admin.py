"""Rooms, DMs and invites: joining, leaving, creating, inviting."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from nio import (
    JoinError,
    ProfileGetResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomLeaveError,
)
from nio.api import RoomPreset

from tuichat.matrix.account.identifiers import InvalidIdentifier, parse_user
from tuichat.matrix.content.direct_messages import ProfileLookup, direct_partners
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.nio_extensions import MEGOLM
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.calls import quietly
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import (
    Notice,
    SwitchToRoom,
)
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import clean_line

if TYPE_CHECKING:
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

log = logging.getLogger(__name__)


class RoomAdmin:
    """Joining, leaving, creating rooms and DMs, invites."""

    def __init__(self, context: AccountContext, views: RoomViews) -> None:
        self._context = context
        self._views = views
        self.user_id = context.user_id
        self.direct = context.direct
        self.cache = context.cache
        self.emit = context.emit

    @property
    def client(self) -> TuichatClient | None:
        return self._context.client

    @property
    def states(self) -> dict[str, RoomState]:
        return self._context.states

    async def join(self, room: str) -> str | None:
        """Join `#alias:server` or `!id:server`; the UI switches there once the
        room arrives in sync."""
        assert self.client is not None
        response = await quietly(self.client.join(room), f"joining {room}")
        if response is None or isinstance(response, JoinError):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not join {room}: {message}", error=True))
            return None
        room_id = str(response.room_id)
        state = self.states.get(room_id)
        if state is not None and state.membership is Membership.JOIN:
            self.emit(SwitchToRoom(room_id))
        else:
            self._context.pending_switch = room_id
        return room_id

    async def create_room(
        self,
        *,
        name: str | None = None,
        invite: tuple[str, ...] = (),
        encrypted: bool = True,
        direct: bool = False,
    ) -> str | None:
        """Create a private room (encrypted from its first event unless asked
        otherwise) and invite `invite`; returns its id, or None (and a Notice)."""
        assert self.client is not None
        initial_state = []
        if encrypted:
            initial_state.append(
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        response = await quietly(
            self.client.room_create(
                name=name,
                invite=list(invite),
                is_direct=direct,
                preset=RoomPreset.trusted_private_chat if direct else RoomPreset.private_chat,
                initial_state=initial_state,
            ),
            "creating a room",
        )
        if not isinstance(response, RoomCreateResponse):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not create the room: {message}", error=True))
            return None
        self._context.pending_switch = response.room_id
        return str(response.room_id)

    async def lookup_profile(self, user_id: str) -> ProfileLookup:
        """Check a user id and fetch the person's display name."""
        assert self.client is not None
        try:
            parse_user(user_id, require_server=True)
        except InvalidIdentifier as error:
            return ProfileLookup(user_id, None, str(error))
        response = await quietly(self.client.get_profile(user_id), "looking up a profile")
        if isinstance(response, ProfileGetResponse):
            name = clean_line(response.displayname) or None
            if name:
                self._views.profile_names[user_id] = name
            return ProfileLookup(user_id, name, None)
        if response is None:
            return ProfileLookup(user_id, None, "the server could not be reached")
        transport = getattr(response, "transport_response", None)
        if getattr(response, "status_code", "") == "M_NOT_FOUND" or (
            transport is not None and transport.status == 404
        ):
            return ProfileLookup(user_id, None, f"there is no user {user_id}")
        return ProfileLookup(user_id, None, getattr(response, "message", "") or "lookup failed")

    async def create_dm(self, user_ids: list[str]) -> str | None:
        """Open an encrypted DM with `user_ids` (or switch to the existing DM
        with that one person); returns the room id, or None with a Notice."""
        assert self.client is not None
        wanted = list(dict.fromkeys(u.strip() for u in user_ids if u.strip()))
        if not wanted:
            self.emit(Notice("Usage: /dm @user:server [@user2:server …]", error=True))
            return None
        for user_id in wanted:
            lookup = await self.lookup_profile(user_id)
            if lookup.error:
                self.emit(Notice(f"No DM created: {lookup.error}", error=True))
                return None
            if user_id == self.user_id:
                self.emit(Notice("No DM created: that is you", error=True))
                return None
        if len(wanted) == 1:
            existing = self.direct.find_existing(wanted[0], self.states)
            if existing is not None:
                self.emit(SwitchToRoom(existing))
                return existing
        room_id = await self.create_room(invite=tuple(wanted), encrypted=True, direct=True)
        if room_id is not None:
            await self._record_direct(wanted, room_id)
        return room_id

    async def _record_direct(self, user_ids: list[str], room_id: str) -> None:
        """Add the room to m.direct on the server (and here, at once)."""
        assert self.client is not None
        content = self.direct.with_room(user_ids, room_id)
        method, path, body = self.direct.account_data_request(content)
        headers = {"Authorization": f"Bearer {self.client.access_token}"}
        try:
            response = await self.client.send(method, path, body, headers)
            ok = response.status == 200
            response.release()
        except NETWORK_ERRORS as error:
            log.warning("updating m.direct failed: %s", error)
            ok = False
        if not ok:
            self.emit(Notice("Could not record the DM in your account data", error=True))
            return
        changed: set[str] = set()
        self._views.set_direct(content, changed)
        self.cache.set_account_data("m.direct", content)
        self._views.emit_summaries(changed)

    async def accept_invite(self, room_id: str) -> bool:
        state = self.states.get(room_id)
        direct = state is not None and state.invited_as_direct(self.user_id)
        partners = direct_partners(state, self.user_id) if state is not None else []
        joined = await self.join(room_id)
        if joined is None:
            return False
        if direct and partners:
            await self._record_direct(partners, room_id)
        return True

    async def decline_invite(self, room_id: str) -> bool:
        return await self.leave(room_id)

    async def invite(self, room_id: str, user_id: str) -> bool:
        assert self.client is not None
        lookup = await self.lookup_profile(user_id)
        if lookup.error:
            self.emit(Notice(f"Nobody invited: {lookup.error}", error=True))
            return False
        response = await quietly(self.client.room_invite(room_id, user_id), "inviting")
        if not isinstance(response, RoomInviteResponse):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not invite {user_id}: {message}", error=True))
            return False
        self.emit(Notice(f"Invited {lookup.display_name or user_id}."))
        return True

    async def leave(self, room_id: str) -> bool:
        assert self.client is not None
        response = await quietly(self.client.room_leave(room_id), "leaving")
        if response is None or isinstance(response, RoomLeaveError):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not leave the room: {message}", error=True))
            return False
        return True
