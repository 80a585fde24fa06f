"""Members fetched in full where they are needed (issue 25).

Syncs load members lazily (`lazy_load_members`): a room's state then holds
the member events of those who appear in its timeline, not of everyone.
Where the whole list matters, `MemberLists.ensure_complete` fetches it once
(`GET /rooms/{id}/members`) and brings the state's member events up to date:
before a room key is shared (every member's devices must get it), and for
the member list and name completion. A limited sync may leave out member
changes in its gap, so after one the list is fetched again; so it is when
the sync's member counts disagree with the members known.

The fetched list is as new as the state the request began from, or newer:
it replaces those member events (a member who left in a gap that lazy
loading did not show is gone after it, and the room key is rotated), except
where a sync changed a member while the request was under way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from tuichat.matrix.content.room_state import RoomState, StateKey
from tuichat.matrix.crypto.group_sessions import KeyShareError
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.history import TimelineGaps
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.transport.http import MatrixHttpError, path_segment
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import Notice
from tuichat.model.pacing import SLICE_SECONDS

log = logging.getLogger(__name__)

_MEMBER = "m.room.member"


def _content(event: dict[str, Any]) -> dict[str, Any]:
    content = event.get("content")
    return content if isinstance(content, dict) else {}


# Memberships whose devices get the room key.
_CURRENT = ("join", "invite")


class MemberLists:
    """Which rooms' member lists are complete, and fetching the others."""

    def __init__(self, context: AccountContext, gaps: TimelineGaps, views: RoomViews) -> None:
        self._context = context
        self._gaps = gaps
        self._views = views
        # Room -> the number of gaps it had seen when its list was fetched.
        self._fetched: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def is_complete(self, room_id: str) -> bool:
        """Whether the room's state holds every member: fetched since its
        last gap, and the sync's counts agree."""
        fetched = self._fetched.get(room_id)
        if fetched is None or fetched != self._gaps.count(room_id):
            return False
        state = self._context.states.get(room_id)
        if state is None:
            return False
        joined = state.sync_summary.get("m.joined_member_count")
        invited = state.sync_summary.get("m.invited_member_count")
        counts = Counter(
            _content(event).get("membership")
            for (event_type, _key), event in state.events.items()
            if event_type == _MEMBER
        )
        if isinstance(joined, int) and joined > counts["join"]:
            return False
        return not (isinstance(invited, int) and invited > counts["invite"])

    async def ensure_complete(self, room_id: str) -> None:
        """Fetch the room's members unless its list is complete. Raises
        KeyShareError when it cannot be fetched (a room key must wait)."""
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            if self.is_complete(room_id):
                return
            crypto = self._context.crypto
            if crypto is None:
                raise KeyShareError("not connected yet: the member list is unknown")
            generation = self._gaps.count(room_id)
            state = self._context.states.get(room_id)
            if state is None:
                return
            # The member events as they stand now: the fetched list is as
            # new as these or newer; what a sync changes meanwhile is newer.
            before = {key: event for key, event in state.events.items() if key[0] == _MEMBER}
            try:
                reply = await crypto.http.request("GET", f"/rooms/{path_segment(room_id)}/members")
            except (MatrixHttpError, *NETWORK_ERRORS) as error:
                log.warning("fetching the members of %s failed: %s", room_id, error)
                raise KeyShareError(f"the member list could not be fetched: {error}") from None
            if self._context.states.get(room_id) is not state:
                # Left or rejoined meanwhile: asked again when next needed.
                raise KeyShareError("the room changed while its members were fetched")
            changed = await self._take(state, reply, before)
            self._fetched[room_id] = generation
            if changed:
                # The room's shield counts every member's devices now.
                self._views.emit_summaries({room_id})
            log.info("member list of %s fetched: %d member(s) changed", room_id, changed)

    async def load(self, room_id: str, *, quiet: bool = False) -> bool:
        """`ensure_complete` for the interface: False if the list could not
        be fetched, with a notice unless `quiet` (a fetch in the background:
        the failure is logged, and the list is asked for again when used;
        it waits for the first sync if the service is not connected yet)."""
        if quiet and not self._context.first_sync_done.is_set():
            await self._context.first_sync_done.wait()
        try:
            await self.ensure_complete(room_id)
        except KeyShareError as error:
            if not quiet:
                self._context.emit(Notice(f"Could not load the member list: {error}", error=True))
            return False
        return True

    async def _take(
        self, state: RoomState, reply: Any, before: dict[StateKey, dict[str, Any]]
    ) -> int:
        """Apply the fetched member events where no sync changed the member
        since the request; returns how many changed."""
        chunk = reply.get("chunk") if isinstance(reply, dict) else None
        if not isinstance(chunk, list):
            return 0
        new_members, gone = [], []
        deadline = time.perf_counter() + SLICE_SECONDS
        for event in chunk:
            if time.perf_counter() > deadline:
                # A room of thousands: the interface draws in between (a
                # sync handled meanwhile is seen by the check below).
                await asyncio.sleep(0)
                deadline = time.perf_counter() + SLICE_SECONDS
            if not isinstance(event, dict) or event.get("type") != _MEMBER:
                continue
            user_id, content = event.get("state_key"), event.get("content")
            if not isinstance(user_id, str) or not isinstance(content, dict):
                continue
            key = (_MEMBER, user_id)
            held = state.events.get(key)
            if held is not before.get(key):
                continue  # a sync brought something newer meanwhile
            was = state.membership_of(user_id)
            if held is not None and held.get("event_id") == event.get("event_id"):
                continue
            state.apply(event)
            now = content.get("membership")
            if now in _CURRENT and was not in _CURRENT:
                new_members.append(user_id)
            elif was in _CURRENT and now not in _CURRENT:
                gone.append(user_id)  # left in a gap lazy loading did not show
        crypto = self._context.crypto
        if crypto is not None and state.encrypted:
            if gone:
                crypto.rotate(state.room_id, f"{len(gone)} member(s) left")
            # Their devices must be known before a key is shared: queried
            # with the next key query, as nio does for members it saw.
            olm = crypto.olm
            olm.users_for_key_query.update(u for u in new_members if u not in olm.tracked_users)
        return len(new_members) + len(gone)
