"""A key verification as the UI shows it (plain data).

One concept seen from three sides, hence three modules of this name:
`tuichat/matrix/crypto/verification.py` runs the protocol, this module
holds what a verification looks like to the UI, and
`tuichat/ui/screens/verification.py` is the dialog that shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Phase(StrEnum):
    REQUESTED = "requested"  # a request is out (ours) or in (theirs)
    READY = "ready"
    STARTED = "started"
    ACCEPTED = "accepted"
    SHOW_SAS = "show_sas"  # keys exchanged: the people compare the emoji
    QR_SCANNED = "qr_scanned"  # they say they scanned our code: did they?
    CONFIRMED = "confirmed"  # we said they match and sent our MAC
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass
class VerificationView:
    """What the UI shows of one verification (plain data)."""

    transaction_id: str
    other_user: str
    other_device: str | None
    we_requested: bool
    phase: Phase
    emoji: list[tuple[str, str]] = field(default_factory=list)
    decimals: tuple[int, ...] = ()
    cancel_code: str = ""
    cancel_reason: str = ""
    cancelled_by_us: bool = False
    their_mac_received: bool = False
    verified: bool = False
    # A request nobody asked for (from someone you share no room with, or
    # from a device you blacklisted or ignored): a notice to open, not a
    # dialog that opens by itself.
    unsolicited: bool = False
    # The QR code to show while waiting for them to scan it (the spec's
    # binary payload; empty when there is none to show).
    qr: bytes = b""
