"""The connection to the homeserver, as the status line shows it."""

from __future__ import annotations

from enum import StrEnum


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    LOADING = "loading"  # restoring the crypto store and cache
    SYNCING = "syncing"  # first sync under way
    SYNCED = "synced"
    LOADING_ROOMS = "loading rooms"  # sliding sync: the room list still growing (issue 25)
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
