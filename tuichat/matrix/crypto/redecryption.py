"""Decrypting room events, and decrypting them again when that can change.

An event that fails for a reason a later key can cure waits (with its
ciphertext, `undecryptable.py`) and its key is asked for: from the sender's
devices (`key_requests.py`) and from the key backup (`backup_upkeep.py`).
When a key arrives, or the sender says it withholds it, or the sender's
device list or trust changes, the affected events are decrypted again and
returned as `Redecrypted` records; turning them into timeline items is the
service's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.key_requests import KeyRequests
from tuichat.matrix.crypto.megolm import MegolmDecryptor
from tuichat.matrix.crypto.nio_extensions import TuichatOlm
from tuichat.matrix.crypto.trust_refresh import UntrustedRecent
from tuichat.matrix.crypto.types import (
    RETRYABLE,
    Decryption,
    Redecrypted,
    UtdReason,
    withheld_code,
)
from tuichat.matrix.crypto.undecryptable import UndecryptableEvents, WaitingEvent
from tuichat.model.devices import MessageTrust
from tuichat.model.items import WithheldCode

# Message trust that verifying the sender changes (see trust_refresh.py).
_RETRUSTABLE = {MessageTrust.UNVERIFIED, MessageTrust.UNSIGNED}
_WITHHELD_TYPES = ("m.room_key.withheld", "org.matrix.room_key.withheld")


class Redecryption:
    def __init__(
        self,
        olm: TuichatOlm,
        decryptor: MegolmDecryptor,
        extras: CryptoExtrasStore,
        requests: KeyRequests,
        clock: Callable[[], float],
    ) -> None:
        self.olm = olm
        self.decryptor = decryptor
        self.extras = extras
        self.requests = requests
        self.clock = clock
        self.waiting = UndecryptableEvents()
        self.untrusted = UntrustedRecent()
        # Told of each session an event waits for (the key backup looks it up).
        self.on_waiting: Callable[[str, str], None] = lambda session_id, room_id: None

    def decrypt_page(self, room_id: str, events: list[dict[str, Any]]) -> list[Decryption]:
        """Decrypt a page of older history (oldest first), as `decrypt` does
        one event; see `MegolmDecryptor.history_sessions`."""
        copies = self.decryptor.history_sessions(room_id, events)
        return [self.decrypt(room_id, event, copies) for event in events]

    def decrypt(
        self,
        room_id: str,
        event: dict[str, Any],
        copies: dict[tuple[str, str], Any] | None = None,
    ) -> Decryption:
        """Decrypt, and remember the event if a later key could help."""
        decryption = self._with_withheld(
            room_id, event, self.decryptor.decrypt(room_id, event, copies)
        )
        session_id = decryption.session_id
        if session_id is None:
            return decryption
        if decryption.payload is None and (
            decryption.reason in RETRYABLE or decryption.withheld_code is not None
        ):
            waiting = self.waiting.add(room_id, event, session_id, decryption.reason or "")
            self.on_waiting(session_id, room_id)
            if decryption.reason in RETRYABLE:
                self.requests.missing(
                    room_id,
                    session_id,
                    waiting.sender_key,
                    waiting.sender,
                    waiting.sender_device,
                    self.clock(),
                )
        elif decryption.payload is not None:
            self._watch_trust(room_id, event, session_id, decryption)
        return decryption

    def _watch_trust(
        self, room_id: str, event: dict[str, Any], session_id: str, decryption: Decryption
    ) -> None:
        """A decrypted message whose marker can still change: from a device
        not known yet, or not verified yet."""
        if decryption.trust == MessageTrust.UNKNOWN_DEVICE:
            self.waiting.add_unknown_device(room_id, event, session_id)
        elif decryption.trust in _RETRUSTABLE:
            self.untrusted.add(room_id, event)

    def retrust(self, users: Iterable[str]) -> list[Redecrypted]:
        """Decrypt again the recent messages of `users`, whose trust changed,
        so their markers show the new state."""
        results = []
        for room_id, event in self.untrusted.take(users):
            decryption = self.decrypt(room_id, event)
            if decryption.payload is not None:
                results.append(Redecrypted(room_id, event, decryption))
        return results

    def _with_withheld(
        self, room_id: str, event: dict[str, Any], decryption: Decryption
    ) -> Decryption:
        """A missing key the sender said it withholds gets its reason: a
        notice from the event's sender for the event's session (creator
        key and id) in this room."""
        session_id = decryption.session_id
        if decryption.reason != UtdReason.MISSING_KEY or not session_id:
            return decryption
        content = event.get("content")
        sender_key = content.get("sender_key") if isinstance(content, dict) else None
        sender = event.get("sender")
        if not isinstance(sender_key, str) or not isinstance(sender, str):
            return decryption
        code = self.extras.withheld_code(room_id, sender_key, session_id, sender)
        if code is None:
            return decryption
        return Decryption.withheld(code, session_id)

    def retry(self, waiting: Iterable[WaitingEvent]) -> list[Redecrypted]:
        """Decrypt these waiting events again: what opens or fails otherwise
        now is returned (a withheld reason is not replaced by another)."""
        results = []
        for item in waiting:
            decryption = self._with_withheld(
                item.room_id, item.event, self.decryptor.decrypt(item.room_id, item.event)
            )
            if decryption.payload is not None:
                self.waiting.discard(item.event_id, item.session_id)
                self._watch_trust(item.room_id, item.event, item.session_id, decryption)
                results.append(Redecrypted(item.room_id, item.event, decryption))
            elif decryption.reason != item.reason and withheld_code(item.reason) is None:
                item.reason = decryption.reason or item.reason
                results.append(Redecrypted(item.room_id, item.event, decryption))
        return results

    def devices_fetched(self, users: Iterable[str]) -> list[Redecrypted]:
        """Events shown as from an unknown device of `users`, whose device
        lists just came: decrypted again, now bound or refused."""
        return self.retry(self.waiting.take_unknown_device(users))

    def keys_arrived(self) -> list[Redecrypted]:
        """Retry every event waiting for a session that just arrived."""
        arrived = {session_id for _, session_id in self.olm.arrived_sessions}
        self.olm.arrived_sessions.clear()
        if not arrived:
            return []
        results = self.retry(self.waiting.waiting_for(arrived))
        still_waiting = self.waiting.session_ids()
        for session_id in arrived:
            if session_id not in still_waiting:
                self.requests.arrived(session_id)
        return results

    def handle_withheld(self, to_device: list[dict[str, Any]]) -> list[Redecrypted]:
        """Keep the m.room_key.withheld notices among a sync's to-device
        events, and give their reason to the events they explain."""
        results = []
        for event in to_device:
            if event.get("type") not in _WITHHELD_TYPES:
                continue
            content = event.get("content")
            if not isinstance(content, dict):
                continue
            # The server vouches for the to-device sender (the user, not the
            # device); the notice then speaks only for sessions that user's
            # device with `sender_key` created. m.no_olm without a session
            # names none and is not used.
            sender = event.get("sender")
            names = (sender, content.get("room_id"), content.get("sender_key"))
            session_id = content.get("session_id")
            if not all(_short_string(value) for value in (*names, session_id)):
                continue
            sender, room_id, sender_key = names
            # Only a code the spec defines is kept; any other is UNKNOWN. The
            # free-text `reason` is not kept or shown.
            code = WithheldCode.parse(content.get("code"))
            # Kept: the event it explains may come in this sync or later.
            self.extras.set_withheld(room_id, sender_key, session_id, sender, code)
            for waiting in self.waiting.mark_withheld(
                room_id, sender, sender_key, session_id, code
            ):
                results.append(
                    Redecrypted(
                        waiting.room_id, waiting.event, Decryption.withheld(code, session_id)
                    )
                )
        return results


def _short_string(value: object) -> bool:
    """A non-empty string of a sane length: user ids, room ids, keys and
    session ids are all far shorter (user and room ids at most 255 bytes)."""
    return isinstance(value, str) and 0 < len(value) <= 255
