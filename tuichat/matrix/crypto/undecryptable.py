"""Events waiting for their key, indexed by Megolm session id.

Every event that fails to decrypt (live, from history or from the cache) is
kept here with its ciphertext, so it can be decrypted again the moment any
source delivers the session: a to-device key, a forwarded key, a key import
or a key backup. Events shown as from an "unknown device" wait here too,
until the sender's device list has been fetched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tuichat.matrix.crypto.types import withheld_reason
from tuichat.model.devices import MessageTrust
from tuichat.model.items import WithheldCode


@dataclass
class WaitingEvent:
    room_id: str
    event: dict[str, Any]
    session_id: str
    reason: str

    @property
    def event_id(self) -> str:
        return str(self.event.get("event_id"))

    @property
    def sender(self) -> str:
        return str(self.event.get("sender"))

    @property
    def sender_key(self) -> str | None:
        content = self.event.get("content")
        value = content.get("sender_key") if isinstance(content, dict) else None
        return value if isinstance(value, str) else None

    @property
    def sender_device(self) -> str | None:
        content = self.event.get("content")
        value = content.get("device_id") if isinstance(content, dict) else None
        return value if isinstance(value, str) else None


class UndecryptableEvents:
    def __init__(self) -> None:
        self._by_session: dict[str, dict[str, WaitingEvent]] = {}
        self._unknown_device: dict[str, WaitingEvent] = {}

    def __len__(self) -> int:
        return sum(len(events) for events in self._by_session.values())

    def add(
        self, room_id: str, event: dict[str, Any], session_id: str, reason: str
    ) -> WaitingEvent:
        waiting = WaitingEvent(room_id, event, session_id, reason)
        self._by_session.setdefault(session_id, {})[waiting.event_id] = waiting
        return waiting

    def discard(self, event_id: str, session_id: str | None) -> None:
        if session_id is not None:
            events = self._by_session.get(session_id)
            if events is not None:
                events.pop(event_id, None)
                if not events:
                    del self._by_session[session_id]
        self._unknown_device.pop(event_id, None)

    def waiting_for(self, session_ids: Iterable[str]) -> list[WaitingEvent]:
        found: list[WaitingEvent] = []
        for session_id in set(session_ids):
            found.extend(self._by_session.get(session_id, {}).values())
        return found

    def all(self) -> list[WaitingEvent]:
        return [w for events in self._by_session.values() for w in events.values()]

    def session_ids(self) -> set[str]:
        return set(self._by_session)

    def mark_withheld(
        self, room_id: str, sender: str, sender_key: str, session_id: str, code: WithheldCode
    ) -> list[WaitingEvent]:
        """Record an m.room_key.withheld code for the events of one session:
        only those `sender` sent in `room_id` from the device with
        `sender_key`; a notice from anyone else explains nothing."""
        events = [
            waiting
            for waiting in self._by_session.get(session_id, {}).values()
            if waiting.room_id == room_id
            and waiting.sender == sender
            and waiting.sender_key == sender_key
        ]
        for waiting in events:
            waiting.reason = withheld_reason(code)
        return events

    # -- events shown from a device we had not fetched yet --------------------------

    def add_unknown_device(self, room_id: str, event: dict[str, Any], session_id: str) -> None:
        waiting = WaitingEvent(room_id, event, session_id, MessageTrust.UNKNOWN_DEVICE)
        self._unknown_device[waiting.event_id] = waiting

    def take_unknown_device(self, senders: Iterable[str]) -> list[WaitingEvent]:
        wanted = set(senders)
        taken = [w for w in self._unknown_device.values() if w.sender in wanted]
        for waiting in taken:
            del self._unknown_device[waiting.event_id]
        return taken
