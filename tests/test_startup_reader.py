"""StartupReader: the cache told as domain events, without a terminal."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from tests.test_startup import ME, cached_profile
from tuichat.matrix.storage.startup_reader import StartupReader
from tuichat.model import events as ev


@pytest.fixture(autouse=True)
def _collecting() -> None:
    gc.enable()


def test_start_reports_the_newest_room_then_every_summary(tmp_path: Path) -> None:
    profile = cached_profile(tmp_path / "p", rooms=3)
    told: list[ev.DomainEvent] = []
    reader = StartupReader(profile, ME, told.append)
    assert not gc.isenabled()  # paused from the start
    reader.read_start()
    first, rooms = told
    assert isinstance(first, ev.CachedTimelineRead) and first.room_id == "!room2:example.org"
    assert [i.body for i in first.items][-1] == "hello 2.4"
    assert first.read_marker is None and first.has_older is False
    assert isinstance(rooms, ev.CachedRoomsRead)
    assert sorted(r.room_id for r in rooms.rooms) == [f"!room{n}:example.org" for n in range(3)]
    assert reader.snapshot.user_id == ME and reader.cache is not None
    reader.close()
    assert gc.isenabled()


def test_a_room_is_read_once_and_the_rest_in_slices(tmp_path: Path) -> None:
    profile = cached_profile(tmp_path / "p", rooms=4)
    told: list[ev.DomainEvent] = []
    reader = StartupReader(profile, ME, told.append)
    reader.read_start()
    told.clear()
    assert reader.read_room("!room0:example.org") is True
    assert reader.read_room("!room0:example.org") is False  # read already
    assert reader.read_room("!nowhere:example.org") is False
    asyncio.run(reader.read_rest([f"!room{n}:example.org" for n in range(4)]))
    read = [e.room_id for e in told if isinstance(e, ev.CachedTimelineRead)]
    assert read == ["!room0:example.org", "!room1:example.org", "!room2:example.org"]
    assert gc.isenabled() and gc.get_freeze_count() > 0
    gc.unfreeze()
    reader.close()


def test_a_read_marker_is_kept_in_the_cache_and_read_next_time(tmp_path: Path) -> None:
    profile = cached_profile(tmp_path / "p", rooms=1)
    reader = StartupReader(profile, ME, lambda event: None)
    reader.read_start()
    reader.record_read_marker("!room0:example.org", "$m3-0")
    reader.close()
    told: list[ev.DomainEvent] = []
    again = StartupReader(profile, ME, told.append)
    again.read_start()
    cached = told[0]
    assert isinstance(cached, ev.CachedTimelineRead) and cached.read_marker == "$m3-0"
    again.close()


def test_no_store_settles_the_placeholders_of_rooms_read_later_too(tmp_path: Path) -> None:
    profile = cached_profile(tmp_path / "p", rooms=2)
    told: list[ev.DomainEvent] = []
    reader = StartupReader(profile, ME, told.append)
    reader.read_start()
    reader.settle_waiting("no_store")
    assert told[-1] == ev.WaitingSettled("no_store")
    assert reader.snapshot.waiting_reason == "no_store"
    reader.close()


def test_close_leaves_a_cache_the_service_took(tmp_path: Path) -> None:
    profile = cached_profile(tmp_path / "p", rooms=1)
    reader = StartupReader(profile, ME, lambda event: None)
    reader.read_start()
    reader.close(close_cache=False)
    assert reader.cache.sync_token == "s1"  # still open
    reader.cache.close()
