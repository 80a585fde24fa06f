"""StartupReader: what the cache holds, told as domain events at start-up.

Before nio is imported, the reader opens the cache and reads it into a
`Snapshot`, and reports it through the sink the service will use
(`CachedRoomsRead`, `CachedTimelineRead`), so the first frame shows the
rooms and the open room's recent history. The other rooms follow in short
slices after the first frame (`read_rest`), and any room on demand
(`read_room`). The cache and snapshot are then handed to the service.

It also holds the garbage collector off while start-up allocates its lasting
objects (widgets, room states, items): each collection they would trigger
walks the whole heap, about half of what reading the cache for the first
frame costs. `read_rest` ends the pause, after freezing what was read so
collections stop walking it.

No nio import here: a test imports this module in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable

from tuichat.matrix.account.session import Profile
from tuichat.matrix.storage.cache import Cache
from tuichat.matrix.storage.snapshot import Snapshot, load_snapshot
from tuichat.matrix.transport.gc_pause import GcPause
from tuichat.model.events import (
    CachedRoomsRead,
    CachedTimelineRead,
    PushSettingsChanged,
    Sink,
    WaitingSettled,
)
from tuichat.model.pacing import SLICE_SECONDS


class StartupReader:
    def __init__(self, profile: Profile, user_id: str, sink: Sink) -> None:
        self.profile = profile
        self.user_id = user_id
        self._sink = sink
        self._cache: Cache | None = None
        self._snapshot: Snapshot | None = None
        self._gc = GcPause()
        self._gc.pause()

    @property
    def cache(self) -> Cache:
        assert self._cache is not None, "read_start first"
        return self._cache

    @property
    def snapshot(self) -> Snapshot:
        assert self._snapshot is not None, "read_start first"
        return self._snapshot

    def read_start(self) -> None:
        """Open the cache; report the room read for the first frame (the one
        with the latest activity), then every room's summary."""
        self._cache = Cache(self.profile.cache_file)
        self._snapshot = load_snapshot(self._cache, self.user_id)
        # Notifications: the cached rooms' settings before their counts.
        rules = self._snapshot.viewer().push_rules
        if rules is not None and not rules.is_default:
            self._sink(
                PushSettingsChanged(
                    rules.room_settings(), tuple(rules.keywords()), rules.group_default()
                )
            )
        for room_id in self._snapshot.timelines:
            self._report(room_id)
        self._sink(CachedRoomsRead(self._snapshot.summaries(self.user_id)))

    def read_room(self, room_id: str) -> bool:
        """Report a room's recent history if it was not read yet; False if it
        was, or the cache does not know the room."""
        snapshot, cache = self._snapshot, self._cache
        if snapshot is None or cache is None or room_id in snapshot.timelines:
            return False
        if snapshot.load_room(cache, room_id) is None:
            return False
        self._report(room_id)
        return True

    def _report(self, room_id: str) -> None:
        snapshot = self.snapshot
        self._sink(
            CachedTimelineRead(
                room_id,
                snapshot.timelines.get(room_id, []),
                read_marker=snapshot.read_markers.get(room_id),
                has_older=snapshot.has_older.get(room_id, True),
                receipts=snapshot.receipts.get(room_id, {}),
            )
        )

    async def read_rest(self, room_ids: Iterable[str]) -> None:
        """Read these rooms (those not read yet) in slices of a few
        milliseconds, so unread counts fill in without holding up a frame;
        then freeze what was read and let the garbage collector run again."""
        try:
            deadline = time.perf_counter() + SLICE_SECONDS
            for room_id in room_ids:
                self.read_room(room_id)
                if time.perf_counter() > deadline:
                    await asyncio.sleep(0)
                    deadline = time.perf_counter() + SLICE_SECONDS
        finally:
            gc.collect()
            self._gc.freeze_after = True
            self._gc.resume()

    def settle_waiting(self, reason: str) -> None:
        """Nothing will decrypt the cached messages (`reason`, e.g.
        "no_store"): rooms read from now on, and those read already, say so."""
        if self._snapshot is not None:
            self._snapshot.waiting_reason = reason
        self._sink(WaitingSettled(reason))

    def record_read_marker(self, room_id: str, event_id: str) -> None:
        """Read here before the service runs: the cache keeps the marker."""
        if self._cache is not None:
            self._cache.set_read_marker(room_id, event_id)

    def close(self, *, close_cache: bool = True) -> None:
        """Resume the garbage collector (if `read_rest` never ran) and close
        the cache, unless the service took it over (`close_cache=False`)."""
        self._gc.resume()
        if close_cache and self._cache is not None:
            self._cache.close()
