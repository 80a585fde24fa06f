"""The values the crypto parts hand to the rest of tuichat.

`Decryption` is what decrypting one `m.room.encrypted` event gives (the
content conversion turns it into a timeline item); `Redecrypted` is an event
decrypted again because something changed (a key arrived, a sender's trust
changed); `ImportResult` counts a key import. A failure's reason is a
`UtdReason`, or for a key its sender withheld, `withheld_reason(code)`:
the text `withheld:<code>` that timeline items carry and the model explains
(`TimelineItem.utd_text`).

This module imports neither nio nor any crypto library: the content
conversion, which the first frame uses, imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tuichat.model.devices import MessageTrust
from tuichat.model.items import WithheldCode


class UtdReason(StrEnum):
    """Why an event could not be decrypted (besides a withheld key)."""

    MISSING_KEY = "missing_key"
    UNKNOWN_INDEX = "unknown_index"  # the key we hold starts later
    BEFORE_DEVICE = "before_device"  # sent before this device existed
    BLACKLISTED = "blacklisted"
    UNSUPPORTED = "unsupported"
    UNDECODABLE = "undecodable"
    REPLAY = "replay"
    SENDER_MISMATCH = "sender_mismatch"


# Failures a later key can cure. Replays, bad payloads and sender
# mismatches are final.
RETRYABLE = frozenset({UtdReason.MISSING_KEY, UtdReason.UNKNOWN_INDEX, UtdReason.BEFORE_DEVICE})

_WITHHELD_PREFIX = "withheld:"


def withheld_reason(code: WithheldCode) -> str:
    """The reason an event carries when its sender withheld the key."""
    return f"{_WITHHELD_PREFIX}{WithheldCode.parse(code).value}"


def withheld_code(reason: str | None) -> WithheldCode | None:
    """The code in a withheld reason, None for any other reason."""
    if reason is None or not reason.startswith(_WITHHELD_PREFIX):
        return None
    return WithheldCode.parse(reason[len(_WITHHELD_PREFIX) :])


@dataclass(frozen=True, slots=True)
class Decryption:
    """The outcome of decrypting an `m.room.encrypted` event."""

    payload: dict[str, Any] | None  # the decrypted {"type", "content"} or None
    reason: str | None = None  # a UtdReason or a withheld reason, when payload is None
    session_id: str | None = None
    trust: MessageTrust | None = None  # for a decrypted event
    key_source: str | None = None  # "forwarded", "imported", "backup", "dehydrated" or None

    @classmethod
    def withheld(cls, code: WithheldCode, session_id: str | None) -> Decryption:
        return cls(None, withheld_reason(code), session_id)

    @property
    def withheld_code(self) -> WithheldCode | None:
        return withheld_code(self.reason)


@dataclass(frozen=True)
class Redecrypted:
    room_id: str
    event: dict[str, Any]
    decryption: Decryption


@dataclass(frozen=True)
class ImportResult:
    total: int
    imported: int  # new sessions, or better copies of known ones
    invalid: int


Progress = Callable[[int, int], None]
