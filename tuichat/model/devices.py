"""Devices and trust as the Devices screen, the timeline and `tuichat devices`
show them: a device's trust, the actions that change it, a message's trust
marker, a user's cross-signing identity state and the key-sharing rule.

The same concept as `tuichat/ui/screens/devices.py`, seen from the other
side: these are the values, that screen shows them and reports actions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Trust(StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    BLACKLISTED = "blacklisted"
    IGNORED = "ignored"
    # The server now reports different identity keys for a known device:
    # tuichat refuses to encrypt to it until the person looks into it.
    KEYS_CHANGED = "keys changed"


class TrustAction(StrEnum):
    """What the user can do to a device's trust (Devices screen, commands)."""

    VERIFY = "verify"
    UNVERIFY = "unverify"
    BLACKLIST = "blacklist"
    UNBLACKLIST = "unblacklist"
    IGNORE = "ignore"
    UNIGNORE = "unignore"


class MessageTrust(StrEnum):
    """How a decrypted message is bound to its sender's device: the marker
    the timeline shows beside it."""

    OWN = "own"  # sent by this device
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    # The sender has a cross-signing identity and did not sign this device.
    UNSIGNED = "unsigned"
    # A device whose list was not fetched yet: checked again once it is.
    UNKNOWN_DEVICE = "unknown_device"


class IdentityState(StrEnum):
    """A user's cross-signing identity as seen from here."""

    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    CHANGED = "changed"  # another master key than the one first seen
    NONE = "none"  # no cross-signing identity


class SignedOnly(StrEnum):
    """Which devices keys go to by their owners' cross-signing: for people
    you verified only their signed devices (the default, as Element), for
    everyone only signed devices, or no such rule."""

    VERIFIED = "verified"
    ALL = "all"
    OFF = "off"


@dataclass(frozen=True)
class DeviceInfo:
    user_id: str
    device_id: str
    display_name: str
    ed25519: str
    curve25519: str
    trust: Trust
    this_device: bool = False
    # Signed by its owner's cross-signing keys (None: the owner has none).
    cross_signed: bool | None = None
    last_seen_ts: int | None = None  # ms; own devices only
    last_seen_ip: str | None = None

    @property
    def fingerprint(self) -> str:
        return format_fingerprint(self.ed25519)


def format_fingerprint(key: str) -> str:
    """A session key in groups of four, as Element shows it."""
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))
