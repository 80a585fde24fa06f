"""The local cache: one transaction per sync, restart snapshot, file modes."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from pathlib import Path

from tuichat.matrix.storage.cache import Cache, RoomWrite, SyncWrite
from tuichat.matrix.storage.snapshot import load_snapshot

ME = "@me:x"


def event(n: int, kind: str = "m.room.message") -> dict:
    return {
        "type": kind,
        "event_id": f"${n}",
        "sender": "@bob:x",
        "origin_server_ts": n,
        "content": {"msgtype": "m.text", "body": f"m{n}"},
    }


def test_sync_write_round_trip_and_private_file(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache.sqlite3")
    assert stat.S_IMODE((tmp_path / "cache.sqlite3").stat().st_mode) == 0o600
    name = {
        "type": "m.room.name",
        "state_key": "",
        "sender": "@bob:x",
        "event_id": "$n",
        "content": {"name": "Room"},
    }
    cache.commit_sync(
        SyncWrite(
            "t1",
            rooms={
                "!r": RoomWrite("join", {"m.joined_member_count": 2}, [name], [event(1), event(2)])
            },
        )
    )
    cache.commit_sync(SyncWrite("t2", rooms={"!r": RoomWrite("join", events=[event(2), event(3)])}))
    assert cache.sync_token == "t2"
    events, older = cache.load_events("!r", 10)
    assert [e["event_id"] for e in events] == ["$1", "$2", "$3"] and not older
    events, older = cache.load_events("!r", 2)
    assert [e["event_id"] for e in events] == ["$2", "$3"] and older
    events, _ = cache.load_events("!r", 10, before_event="$3")
    assert [e["event_id"] for e in events] == ["$1", "$2"]
    snapshot = load_snapshot(cache, ME)
    assert snapshot.states["!r"].name == "Room"
    assert [i.body for i in snapshot.timelines["!r"]] == ["m1", "m2", "m3"]


def test_limited_sync_replaces_the_cached_timeline(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.commit_sync(SyncWrite("t1", rooms={"!r": RoomWrite("join", events=[event(1)])}))
    cache.commit_sync(
        SyncWrite("t2", rooms={"!r": RoomWrite("join", events=[event(9)], replace_timeline=True)})
    )
    assert [e["event_id"] for e in cache.load_events("!r", 10)[0]] == ["$9"]


def test_removed_rooms_are_forgotten_and_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.commit_sync(SyncWrite("t1", rooms={"!r": RoomWrite("join", events=[event(1)])}))
    cache.commit_sync(SyncWrite("t2", removed_rooms=["!r"]))
    assert cache.load_rooms() == []
    bad = RoomWrite("join", events=[event(2)])
    bad.state = [{"type": "m.room.name", "state_key": "", "content": object()}]  # not JSON
    with contextlib.suppress(TypeError):
        cache.commit_sync(SyncWrite("t3", rooms={"!s": bad}))
    assert cache.sync_token == "t2" and cache.load_rooms() == []


def test_encrypted_events_load_as_decrypting_placeholders(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    encrypted = {
        "type": "m.room.encrypted",
        "event_id": "$e",
        "sender": "@bob:x",
        "origin_server_ts": 1,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "S", "ciphertext": "x"},
    }
    cache.commit_sync(SyncWrite("t", rooms={"!r": RoomWrite("join", events=[encrypted])}))
    snapshot = load_snapshot(cache, ME)
    assert snapshot.timelines["!r"][0].utd_reason == "decrypting"
    assert snapshot.encrypted["!r"] == [encrypted]


def test_a_cache_from_an_older_schema_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1'), ('sync_token', 'old');"
        "CREATE TABLE rooms (room_id TEXT PRIMARY KEY, membership TEXT NOT NULL,"
        " summary TEXT NOT NULL DEFAULT '{}', read_marker TEXT, prev_batch TEXT);"
        "INSERT INTO rooms (room_id, membership) VALUES ('!old', 'join');"
    )
    db.close()
    cache = Cache(path)
    assert cache.sync_token is None
    assert cache.load_rooms() == []
    cache.commit_sync(SyncWrite("t1", rooms={"!r": RoomWrite("join", events=[event(1)])}))
    assert cache.last_timestamps() == {"!r": event(1)["origin_server_ts"]}


def test_closing_the_cache_closes_its_writer_and_folds_the_log(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache(path)
    cache.commit_sync(SyncWrite("t1", rooms={"!r": RoomWrite("join", events=[event(1)])}))
    cache.close()
    cache.close()  # twice is harmless
    # The last connection to close checkpoints and removes the write-ahead log.
    assert not path.with_name(path.name + "-wal").exists()
    assert Cache(path).sync_token == "t1"


def test_a_redacted_message_is_not_kept_in_the_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    secret = event(1)
    secret["content"]["body"] = "my password is hunter2"
    cache.commit_sync(SyncWrite("t1", rooms={"!r": RoomWrite("join", events=[secret])}))
    redaction = {
        "type": "m.room.redaction",
        "event_id": "$2",
        "sender": "@bob:x",
        "origin_server_ts": 2,
        "redacts": "$1",
        "content": {"redacts": "$1"},
    }
    cache.commit_sync(SyncWrite("t2", rooms={"!r": RoomWrite("join", events=[redaction])}))
    cache.close()
    # Nowhere on disk: not in the rows, not in freed space, not in the log.
    for path in tmp_path.iterdir():
        assert b"hunter2" not in path.read_bytes(), path.name
    cache = Cache(tmp_path / "c")
    events, _ = cache.load_events("!r", 10)
    assert (
        events[0]["content"] == {} and events[0]["unsigned"]["redacted_because"]["event_id"] == "$2"
    )
    snapshot = load_snapshot(cache, ME)
    shown = [i.body for i in snapshot.timelines["!r"] if i.relation is None]
    assert shown == ["message deleted"]
