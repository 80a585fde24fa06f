"""Decrypting room events with the Megolm sessions in nio's store.

tuichat decrypts timeline events itself instead of letting nio replace them
during sync: that way the ciphertext stays available for the cache (no
plaintext on disk) and a failed event keeps a precise reason, so it can be
retried when its key arrives (nio never retries).
"""

from __future__ import annotations

import logging
from typing import Any

from nio import AsyncClient, MegolmEvent
from nio.events.misc import BadEvent, UnknownBadEvent
from nio.exceptions import EncryptionError

from tuichat.matrix.convert import Decryption

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"


def _reason_for(error: Exception) -> str:
    text = str(error)
    if "no session found" in text:
        return "missing_key"
    if "Duplicate message index" in text:
        return "replay"
    if "unknown message index" in text.lower() or "UnknownMessageIndex" in text:
        return "unknown_index"
    if "mismatch" in text:
        return "sender_mismatch"
    return "undecodable"


def decrypt_room_event(client: AsyncClient, room_id: str, event: dict[str, Any]) -> Decryption:
    """Decrypt one `m.room.encrypted` event dict of `room_id`."""
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    session_id = content.get("session_id") if isinstance(content.get("session_id"), str) else None
    if content.get("algorithm") != MEGOLM:
        return Decryption(None, "unsupported", session_id)
    if client.olm is None:
        return Decryption(None, "missing_key", session_id)
    parsed = MegolmEvent.from_dict(event)
    if not isinstance(parsed, MegolmEvent):
        return Decryption(None, "undecodable", session_id)
    parsed.room_id = room_id
    try:
        decrypted = client.olm.decrypt_megolm_event(parsed, room_id)
    except EncryptionError as error:
        return Decryption(None, _reason_for(error), session_id)
    except Exception:  # a malformed ciphertext must not break the sync loop
        log.warning("decrypting %s failed", event.get("event_id"), exc_info=True)
        return Decryption(None, "undecodable", session_id)
    if isinstance(decrypted, (BadEvent, UnknownBadEvent)):
        payload = decrypted.source if isinstance(decrypted.source, dict) else None
        if payload is None:
            return Decryption(None, "undecodable", session_id)
        return Decryption(
            {"type": payload.get("type"), "content": payload.get("content")}, None, session_id
        )
    source = decrypted.source
    return Decryption(
        {"type": source.get("type"), "content": source.get("content")}, None, session_id
    )
