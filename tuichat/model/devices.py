"""Devices as the Devices screen and `tuichat devices` show them."""

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
