"""What the UI is told about rooms: their summaries (with the trust state of
their members' devices), DM flags and names, and events decrypted after
they were shown as placeholders, replaced in place."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tuichat.matrix.content.convert import Decryption, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.service.account_context import AccountContext
from tuichat.model.events import ItemsReplaced, RoomsChanged
from tuichat.model.items import TimelineItem
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.sanitize import clean_line

if TYPE_CHECKING:
    from tuichat.matrix.crypto.engine import Redecrypted


class RoomViews:
    """Room summaries and in-place replacements, emitted to the sink."""

    def __init__(self, context: AccountContext) -> None:
        self._context = context
        # Display names found by profile look-ups (already sanitised).
        self.profile_names: dict[str, str] = {}

    def summary(self, room_id: str) -> RoomSummary:
        """The room's summary, with the trust state of its members' devices."""
        context = self._context
        state = context.states[room_id]
        summary = state.summary(context.user_id, context.activity(room_id))
        if state.is_direct and not (state.name or state.canonical_alias):
            summary = self._named_after_partners(room_id, state, summary)
        crypto = context.crypto
        if state.encrypted and crypto is not None:
            members = state.members()
            devices, keyless = crypto.devices_and_keyless(members)
            summary = summary.evolve(
                unverified_devices=crypto.unverified_devices(members),
                verified_only=crypto.verified_only(room_id),
                devices=devices,
                members_without_devices=keyless,
            )
        return summary

    def _named_after_partners(
        self, room_id: str, state: RoomState, summary: RoomSummary
    ) -> RoomSummary:
        """A DM whose state names nobody else yet (a sync can bring a new
        room's first events before the invite) is named after the people
        m.direct lists it under, not "Empty Room"."""
        user_id = self._context.user_id
        if state.heroes(user_id):
            return summary
        partners = [user for user in self._context.direct.partners(room_id) if user != user_id]
        if not partners:
            return summary
        names = [self.profile_names.get(user) or clean_line(user) for user in partners]
        return summary.evolve(name=", ".join(names))

    def emit_summaries(self, room_ids: set[str]) -> None:
        states = self._context.states
        changed = [self.summary(r) for r in room_ids if r in states]
        if changed:
            self._context.emit(RoomsChanged(changed))

    async def emit_summaries_in_slices(self, room_ids: set[str], batch: int = 50) -> None:
        """`emit_summaries` for hundreds of rooms (a large sync): a batch at
        a time, with the loop free to draw between batches."""
        states = self._context.states
        pending = [r for r in room_ids if r in states]
        for start in range(0, len(pending), batch):
            if start:
                await asyncio.sleep(0)
            self._context.emit(
                RoomsChanged([self.summary(r) for r in pending[start : start + batch]])
            )

    def rooms_with(self, users: set[str]) -> set[str]:
        """The encrypted rooms we are in that any of `users` is in."""
        return {
            room_id
            for room_id, state in self._context.states.items()
            if state.encrypted
            and state.membership is Membership.JOIN
            and users.intersection(state.members())
        }

    def set_direct(self, content: object, changed: set[str]) -> None:
        """New `m.direct` account data: mark the rooms it lists as DMs (and
        unmark the others); rooms whose flag changed go into `changed`."""
        direct = self._context.direct
        direct.replace(content)
        room_ids = direct.room_ids()
        for room_id, state in self._context.states.items():
            if state.is_direct != (room_id in room_ids):
                state.is_direct = room_id in room_ids
                changed.add(room_id)

    def emit_redecrypted(self, results: list[Redecrypted]) -> None:
        """Turn re-decrypted events into in-place replacements, per room."""
        by_room: dict[str, list[tuple[dict[str, Any], Decryption]]] = {}
        for result in results:
            by_room.setdefault(result.room_id, []).append((result.event, result.decryption))
        for room_id, decrypted in by_room.items():
            self.emit_decrypted(room_id, decrypted)

    def emit_decrypted(
        self, room_id: str, decrypted: Iterable[tuple[dict[str, Any], Decryption]]
    ) -> None:
        """Events shown as placeholders, decrypted now (or failed for a
        reason): replaced in place, or taken out when what they decrypted
        to is not shown, the same decision as for an event that arrives
        decrypted (one `to_item` for both). Every placeholder handed here
        ends as one or the other."""
        state = self._context.states.get(room_id)
        if state is None:
            return
        items: list[TimelineItem] = []
        hidden: list[str] = []
        for event, decryption in decrypted:
            item = to_item(event, state, self._context.viewer, decryption)
            if item is not None:
                items.append(item)
            elif isinstance(event.get("event_id"), str):
                hidden.append(event["event_id"])
        if items or hidden:
            self._context.emit(ItemsReplaced(room_id, items, tuple(hidden)))
