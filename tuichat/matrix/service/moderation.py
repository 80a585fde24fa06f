"""Managing a room: creating one with a name, its topic, name and
encryption, kicking, banning, power levels, forgetting it, display names.

Each change is checked against the room's power levels here first
(`tuichat.model.power_levels`), so a refusal is told before anything is
sent; what the server refuses anyway is told as a sentence too. Results
come back as `Notice`s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nio import (
    ProfileSetDisplayNameResponse,
    RoomBanResponse,
    RoomCreateResponse,
    RoomForgetResponse,
    RoomKickResponse,
    RoomPutStateResponse,
    RoomUnbanResponse,
)
from nio.api import RoomPreset, RoomVisibility

from tuichat.matrix.crypto.nio_extensions import MEGOLM
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.calls import quietly
from tuichat.matrix.service.room_admin import RoomAdmin
from tuichat.model.events import Notice
from tuichat.model.power_levels import (
    PowerLevels,
    check_member_action,
    check_set_level,
    check_state,
    creators_are_privileged,
    with_user_level,
)
from tuichat.model.rooms import Membership

if TYPE_CHECKING:
    from tuichat.matrix.content.room_state import RoomState
    from tuichat.matrix.crypto.nio_extensions import TuichatClient

log = logging.getLogger(__name__)


def _refusal(response: Any) -> str:
    """The server's reason, or that it could not be reached."""
    if response is None:
        return "the server could not be reached"
    message = getattr(response, "message", "") or ""
    code = getattr(response, "status_code", "") or ""
    if code == "M_FORBIDDEN":
        return f"the server refused ({message or 'not allowed'})"
    return message or code or "the server refused"


def room_levels(state: RoomState | None) -> PowerLevels:
    """The room's power levels as its state says (no event: the creator's)."""
    if state is None:
        return PowerLevels({})
    event = state.events.get(("m.room.power_levels", ""))
    creator = ""
    privileged: frozenset[str] = frozenset()
    create = state.events.get(("m.room.create", ""))
    if create is not None:
        create_content = create.get("content")
        create_content = create_content if isinstance(create_content, dict) else {}
        given = create_content.get("creator")
        sender = str(create.get("sender") or "")
        creator = given if isinstance(given, str) else sender
        version = create_content.get("room_version")
        if creators_are_privileged(version if isinstance(version, str) else "1"):
            extra = create_content.get("additional_creators")
            extra = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
            privileged = frozenset([sender, *extra])
    content = event.get("content") if event is not None else None
    return PowerLevels(content if isinstance(content, dict) else None, creator, privileged)


class RoomModeration:
    """Room management commands, each checked locally and then sent."""

    def __init__(self, context: AccountContext, rooms: RoomAdmin) -> None:
        self._context = context
        self._rooms = rooms
        self.emit = context.emit
        self.user_id = context.user_id
        # The room left last in this session: what a bare /forget forgets
        # (a left room is gone from the list).
        self.last_left: str | None = None

    @property
    def client(self) -> TuichatClient | None:
        return self._context.client

    def levels(self, room_id: str) -> PowerLevels:
        return room_levels(self._context.states.get(room_id))

    def _refuse_locally(self, problem: str | None) -> bool:
        if problem is not None:
            self.emit(Notice(problem, error=True))
            return True
        return False

    # -- creating ---------------------------------------------------------------------

    async def create_named_room(
        self, name: str, *, public: bool = False, invite: tuple[str, ...] = ()
    ) -> str | None:
        """A public room (unencrypted, in the directory) or a private one
        (encrypted from its first event, invite only), as Element makes them."""
        assert self.client is not None
        initial_state: list[dict[str, Any]] = []
        if not public:
            initial_state.append(
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        response = await quietly(
            self.client.room_create(
                visibility=RoomVisibility.public if public else RoomVisibility.private,
                name=name,
                invite=list(invite),
                preset=RoomPreset.public_chat if public else RoomPreset.private_chat,
                initial_state=initial_state,
            ),
            "creating a room",
        )
        if not isinstance(response, RoomCreateResponse):
            self.emit(Notice(f"Could not create the room: {_refusal(response)}.", error=True))
            return None
        self._context.pending_switch = response.room_id
        kind = "public" if public else "encrypted private"
        self.emit(Notice(f"Created the {kind} room {name}."))
        return str(response.room_id)

    # -- state --------------------------------------------------------------------------

    async def put_state(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        done: str,
        state_key: str = "",
    ) -> bool:
        """Send a state event the user may send; `done` is told on success."""
        assert self.client is not None
        if self._refuse_locally(check_state(self.levels(room_id), self.user_id, event_type)):
            return False
        return await self._send_state(room_id, event_type, content, done, state_key)

    async def _send_state(
        self, room_id: str, event_type: str, content: dict[str, Any], done: str, state_key: str
    ) -> bool:
        assert self.client is not None
        response = await quietly(
            self.client.room_put_state(room_id, event_type, content, state_key), event_type
        )
        if not isinstance(response, RoomPutStateResponse):
            self.emit(Notice(f"Not changed: {_refusal(response)}.", error=True))
            return False
        self.emit(Notice(done))
        return True

    async def set_topic(self, room_id: str, topic: str) -> bool:
        return await self.put_state(room_id, "m.room.topic", {"topic": topic}, "Topic changed.")

    async def set_name(self, room_id: str, name: str) -> bool:
        return await self.put_state(room_id, "m.room.name", {"name": name}, "Room renamed.")

    async def enable_encryption(self, room_id: str) -> bool:
        state = self._context.states.get(room_id)
        if state is not None and state.encrypted:
            self.emit(Notice("This room is already encrypted."))
            return True
        return await self.put_state(
            room_id,
            "m.room.encryption",
            {"algorithm": MEGOLM},
            "Encryption is on: new messages in this room are end-to-end encrypted.",
        )

    async def set_power_level(self, room_id: str, target: str, level: int) -> bool:
        levels = self.levels(room_id)
        if self._refuse_locally(check_set_level(levels, self.user_id, target, level)):
            return False
        content = with_user_level(levels.content, target, level)
        return await self._send_state(
            room_id, "m.room.power_levels", content, f"{target} now has power level {level}.", ""
        )

    async def set_pinned(self, room_id: str, event_id: str, pin: bool) -> bool:
        """Pin or unpin a message (m.room.pinned_events)."""
        state = self._context.states.get(room_id)
        pinned = list(state.pinned()) if state is not None else []
        if pin == (event_id in pinned):
            self.emit(Notice("Already pinned." if pin else "That message is not pinned."))
            return True
        pinned = [*pinned, event_id] if pin else [p for p in pinned if p != event_id]
        done = "Message pinned." if pin else "Message unpinned."
        return await self.put_state(room_id, "m.room.pinned_events", {"pinned": pinned}, done)

    # -- members ------------------------------------------------------------------------

    async def kick(self, room_id: str, target: str, reason: str | None = None) -> bool:
        assert self.client is not None
        if self._refuse_locally(
            check_member_action(self.levels(room_id), self.user_id, "kick", target)
        ):
            return False
        response = await quietly(self.client.room_kick(room_id, target, reason), "kicking")
        if not isinstance(response, RoomKickResponse):
            self.emit(Notice(f"Could not kick {target}: {_refusal(response)}.", error=True))
            return False
        self.emit(Notice(f"Removed {target} from the room."))
        return True

    async def ban(self, room_id: str, target: str, reason: str | None = None) -> bool:
        assert self.client is not None
        if self._refuse_locally(
            check_member_action(self.levels(room_id), self.user_id, "ban", target)
        ):
            return False
        response = await quietly(self.client.room_ban(room_id, target, reason), "banning")
        if not isinstance(response, RoomBanResponse):
            self.emit(Notice(f"Could not ban {target}: {_refusal(response)}.", error=True))
            return False
        self.emit(Notice(f"Banned {target}."))
        return True

    async def unban(self, room_id: str, target: str) -> bool:
        assert self.client is not None
        if self._refuse_locally(
            check_member_action(self.levels(room_id), self.user_id, "unban", target)
        ):
            return False
        response = await quietly(self.client.room_unban(room_id, target), "unbanning")
        if not isinstance(response, RoomUnbanResponse):
            self.emit(Notice(f"Could not unban {target}: {_refusal(response)}.", error=True))
            return False
        self.emit(Notice(f"Unbanned {target}."))
        return True

    async def leave(self, room_id: str) -> bool:
        left = await self._rooms.leave(room_id)
        if left:
            self.last_left = room_id
        return left

    async def invite(self, room_id: str, target: str) -> bool:
        problem = check_member_action(self.levels(room_id), self.user_id, "invite", target)
        if self._refuse_locally(problem):
            return False
        return await self._rooms.invite(room_id, target)

    async def forget(self, room_id: str | None) -> bool:
        """Forget a room you left (its history goes from your account)."""
        assert self.client is not None
        room_id = room_id or self.last_left
        if room_id is None:
            self.emit(
                Notice("No room to forget: /forget !room:server, or /leave first.", error=True)
            )
            return False
        state = self._context.states.get(room_id)
        if state is not None and state.membership is Membership.JOIN:
            self.emit(Notice("Leave the room first (/leave), then /forget it.", error=True))
            return False
        response = await quietly(self.client.room_forget(room_id), "forgetting")
        if not isinstance(response, RoomForgetResponse):
            self.emit(Notice(f"Could not forget the room: {_refusal(response)}.", error=True))
            return False
        if self.last_left == room_id:
            self.last_left = None
        self.emit(Notice("Room forgotten."))
        return True

    async def set_display_name(self, name: str, room_id: str | None = None) -> bool:
        """Your display name everywhere (`room_id` None) or in one room."""
        assert self.client is not None
        if room_id is None:
            response = await quietly(self.client.set_displayname(name), "setting a display name")
            if not isinstance(response, ProfileSetDisplayNameResponse):
                self.emit(Notice(f"Name not changed: {_refusal(response)}.", error=True))
                return False
            self.emit(Notice(f"Your display name is now {name}."))
            return True
        state = self._context.states.get(room_id)
        own = dict(state.content("m.room.member", self.user_id)) if state is not None else {}
        own["membership"] = "join"
        own["displayname"] = name
        # Your own member event: always yours to send while joined.
        return await self._send_state(
            room_id, "m.room.member", own, f"In this room you are now {name}.", self.user_id
        )
