"""Decrypting room events: the checks nio does, and the ones it does not.

tuichat decrypts timeline events itself rather than through nio's
`decrypt_megolm_event`, for three reasons: a failure must keep a precise
reason (so the placeholder can say why, and the event can be retried when
its key arrives); replay protection must survive restarts (nio keeps its
message-index record in memory); and the event must be bound to its
sender (nio does not check that the Megolm session belongs to a device of
the user the event claims to come from). Trust lookups use the in-memory
device store, not a database query per event.

Checks, in order: algorithm; session lookup by room, sender key and session
id; the sender's device not blacklisted; decryption (unknown message index
is its own reason); replay (same session and index, another event);
payload room id equals the room; sender binding and trust.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import vodozemac

from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.nio_extensions import MEGOLM, TuichatOlm, group_session_cipher
from tuichat.matrix.crypto.types import Decryption, UtdReason
from tuichat.matrix.transport import fastjson
from tuichat.model.devices import MessageTrust

log = logging.getLogger(__name__)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class MegolmDecryptor:
    def __init__(
        self, olm: TuichatOlm, extras: CryptoExtrasStore, device_created_ms: int = 0
    ) -> None:
        self.olm = olm
        self.extras = extras
        self.device_created_ms = device_created_ms
        identity = olm.account.identity_keys
        self._own_curve = identity["curve25519"]
        self._own_ed = identity["ed25519"]
        # Device -> verified, unverified or unsigned (its owner has a
        # cross-signing identity and did not sign it); set by the engine.
        self.device_trust: Callable[[Any], MessageTrust] = lambda device: (
            MessageTrust.VERIFIED if device.verified else MessageTrust.UNVERIFIED
        )

    def history_sessions(
        self, room_id: str, events: list[dict[str, Any]]
    ) -> dict[tuple[str, str], vodozemac.InboundGroupSession]:
        """Working copies of the sessions a page of older events uses, each
        starting at the lowest message index the page has.

        vodozemac moves a session's ratchet forward only: once it decrypted
        a later message, every earlier one is derived again from the
        session's first index (about 20 µs more per event when pages of
        history arrive newest first). A copy exported at the page's lowest
        index decrypts the page in order. Only the ratchet position differs;
        every check in `decrypt` still runs against the stored session."""
        lowest: dict[tuple[str, str], int] = {}
        for event in events:
            content = event.get("content")
            if not isinstance(content, dict) or content.get("algorithm") != MEGOLM:
                continue
            sender_key, session_id = content.get("sender_key"), content.get("session_id")
            ciphertext = content.get("ciphertext")
            if not (_str(sender_key) and _str(session_id) and _str(ciphertext)):
                continue
            try:
                index = vodozemac.MegolmMessage.from_base64(ciphertext).message_index()
            except (vodozemac.DecodeException, ValueError):
                continue
            key = (sender_key, session_id)
            lowest[key] = min(index, lowest.get(key, index))
        copies = {}
        for (sender_key, session_id), index in lowest.items():
            session = self.olm.inbound_group_store.get(room_id, sender_key, session_id)
            if session is None:
                continue
            try:
                exported = group_session_cipher(session).export_at(index)
                copies[(sender_key, session_id)] = vodozemac.InboundGroupSession.import_session(
                    exported
                )
            except (vodozemac.MegolmDecryptionException, ValueError) as error:
                log.debug("no working copy of %s at %d: %s", session_id, index, error)
        return copies

    def decrypt(
        self,
        room_id: str,
        event: dict[str, Any],
        copies: dict[tuple[str, str], vodozemac.InboundGroupSession] | None = None,
    ) -> Decryption:
        """Decrypt one event; `copies` from `history_sessions` for a page of
        older events."""
        content = event.get("content")
        content = content if isinstance(content, dict) else {}
        session_id = _str(content.get("session_id"))
        if content.get("algorithm") != MEGOLM:
            return Decryption(None, UtdReason.UNSUPPORTED, session_id)
        sender_key = _str(content.get("sender_key"))
        ciphertext = _str(content.get("ciphertext"))
        sender = _str(event.get("sender"))
        event_id = _str(event.get("event_id"))
        if not (session_id and sender_key and ciphertext and sender and event_id):
            return Decryption(None, UtdReason.UNDECODABLE, session_id)
        olm = self.olm
        session = olm.inbound_group_store.get(room_id, sender_key, session_id)
        if session is None:
            timestamp = event.get("origin_server_ts")
            if (
                isinstance(timestamp, int)
                and self.device_created_ms
                and timestamp < self.device_created_ms
            ):
                return Decryption(None, UtdReason.BEFORE_DEVICE, session_id)
            return Decryption(None, UtdReason.MISSING_KEY, session_id)
        device = olm.device_store.device_from_sender_key(sender, sender_key)
        if device is not None and device.blacklisted:
            return Decryption(None, UtdReason.BLACKLISTED, session_id)
        try:
            message = vodozemac.MegolmMessage.from_base64(ciphertext)
            inbound = copies.get((sender_key, session_id)) if copies else None
            decrypted = (inbound or group_session_cipher(session)).decrypt(message)
        except vodozemac.MegolmDecryptionException as error:
            if "unknown message index" in str(error).lower():
                return Decryption(None, UtdReason.UNKNOWN_INDEX, session_id)
            log.warning("Megolm decryption of %s failed: %s", event_id, error)
            return Decryption(None, UtdReason.UNDECODABLE, session_id)
        except (vodozemac.DecodeException, ValueError) as error:
            log.warning("malformed Megolm message %s: %s", event_id, error)
            return Decryption(None, UtdReason.UNDECODABLE, session_id)
        origin_ts = event.get("origin_server_ts")
        origin_ts = origin_ts if isinstance(origin_ts, int) else 0
        if not self.extras.check_index(
            sender_key, session_id, decrypted.message_index, event_id, origin_ts
        ):
            log.warning("replayed message index in %s (%s)", event_id, session_id)
            return Decryption(None, UtdReason.REPLAY, session_id)
        try:
            payload = fastjson.loads(decrypted.plaintext)
        except (ValueError, UnicodeDecodeError):
            return Decryption(None, UtdReason.UNDECODABLE, session_id)
        if not isinstance(payload, dict) or payload.get("room_id") != room_id:
            # A payload from another room replayed here.
            return Decryption(None, UtdReason.UNDECODABLE, session_id)
        trust = self._trust(sender, sender_key, session.ed25519, device)
        if trust is None:
            return Decryption(None, UtdReason.SENDER_MISMATCH, session_id)
        return Decryption(
            {"type": payload.get("type"), "content": payload.get("content")},
            None,
            session_id,
            trust=trust,
            key_source=self.extras.key_source(room_id, sender_key, session_id),
        )

    def _belongs_to_another_user(self, sender: str, sender_key: str) -> bool:
        store = self.olm.device_store
        for user_id in store.users:
            if user_id == sender:
                continue
            if store.device_from_sender_key(user_id, sender_key) is not None:
                return True
        return False

    def _trust(
        self, sender: str, sender_key: str, claimed_ed25519: str, device: Any
    ) -> MessageTrust | None:
        """How the event is bound to its sender, or None if it is not."""
        olm = self.olm
        if sender == olm.user_id and sender_key == self._own_curve:
            return MessageTrust.OWN if claimed_ed25519 == self._own_ed else None
        if device is None:
            if self._belongs_to_another_user(sender, sender_key):
                # The session was created by a device of someone else.
                return None
            if sender in olm.tracked_users and sender not in olm.users_for_key_query:
                # The sender's device list is current and no device of
                # theirs holds this key.
                return None
            # A device we have not fetched yet: show the text marked as from
            # an unknown device, fetch the list, and check again afterwards.
            olm.users_for_key_query.add(sender)
            return MessageTrust.UNKNOWN_DEVICE
        if device.ed25519 != claimed_ed25519:
            return None
        return self.device_trust(device)
