"""Recent messages shown as from a device not (yet) verified, kept so that
their marker can change when their sender's trust does.

A message's trust (verified, unverified, unsigned) is decided when it is
decrypted. When you then verify its sender (emoji verification, a manual
"verify", a cross-signing change), the messages already on screen must show
the new state, as Element's shields do. The engine keeps the newest such
events here, with their ciphertext, and decrypts them again for the users
whose trust changed; older ones get the new state when they are next
decrypted (a restart, or scrolling back through history).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

# Enough for every message on a few screens of every open room.
KEPT = 2000


class UntrustedRecent:
    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        # event id -> (room id, sender, event): oldest first.
        self._events: OrderedDict[str, tuple[str, str, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def add(self, room_id: str, event: dict[str, Any]) -> None:
        event_id, sender = event.get("event_id"), event.get("sender")
        if not isinstance(event_id, str) or not isinstance(sender, str):
            return
        self._events[event_id] = (room_id, sender, event)
        self._events.move_to_end(event_id)
        if len(self._events) > self._kept:
            self._events.popitem(last=False)

    def take(self, senders: Iterable[str]) -> list[tuple[str, dict[str, Any]]]:
        """(room id, event) of every kept event from `senders`, forgotten
        here: decrypting them again adds back those still not verified."""
        wanted = set(senders)
        if not wanted:
            return []
        taken = [eid for eid, (_, sender, _) in self._events.items() if sender in wanted]
        return [self._pop(event_id) for event_id in taken]

    def _pop(self, event_id: str) -> tuple[str, dict[str, Any]]:
        room_id, _, event = self._events.pop(event_id)
        return room_id, event
