"""Simplified sliding sync (MSC4186): the translation to the /v3 shape, the
growing room list, the room on screen's subscription, gaps, the to-device
position across a restart, the fallback to /v3/sync, and the progress line
through the screen. The crypto tests run on both modes (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from textual.pilot import Pilot

from tests.conftest import UserFactory, log_in
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tuichat.demo.synapse import LocalSynapse, RegisteredUser
from tuichat.matrix.account.session import Profile
from tuichat.matrix.content.room_state import HERO_NAMES, RoomState
from tuichat.matrix.service import sliding_sync
from tuichat.matrix.service.sliding_sync import (
    FIRST_WINDOW,
    SlidingSync,
    SyncMode,
    decode_token,
    encode_token,
    is_sliding_token,
    to_v3_shape,
)
from tuichat.matrix.storage.cache import Cache
from tuichat.model.events import (
    ConnectionChanged,
    ConnectionState,
    TimelineAppended,
    TimelinePrepended,
)

ME = "@me:example.org"


def _member(user: str, membership: str) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": user,
        "content": {"membership": membership},
        "event_id": f"$m-{user}-{membership}",
    }


def _message(n: int) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": "@ada:example.org",
        "event_id": f"$e{n}",
        "origin_server_ts": 1000 + n,
        "content": {"msgtype": "m.text", "body": f"message {n}"},
    }


def test_a_response_becomes_the_v3_shape_the_pipeline_consumes() -> None:
    receipt = {"type": "m.receipt", "content": {"$e1": {"m.read": {"@ada:example.org": {}}}}}
    typing = {"type": "m.typing", "content": {"user_ids": ["@ada:example.org"]}}
    response = {
        "pos": "42",
        "lists": {"rooms": {"count": 3}},
        "rooms": {
            "!joined:x": {
                "required_state": [_member(ME, "join")],
                "timeline": [_message(1)],
                "limited": True,
                "prev_batch": "t1",
                "notification_count": 4,
                "highlight_count": 1,
                "joined_count": 2,
                "heroes": [{"user_id": "@ada:example.org", "displayname": "Ada"}, {"x": 1}],
            },
            "!invited:x": {"invite_state": [_member(ME, "invite")]},
            "!left:x": {"required_state": [], "timeline": [_member(ME, "leave")]},
            "!expanded:x": {"timeline": [_message(2)], "unstable_expanded_timeline": True},
        },
        "extensions": {
            "to_device": {"next_batch": "7", "events": [{"type": "m.dummy", "content": {}}]},
            "e2ee": {
                "device_lists": {"changed": ["@ada:example.org"], "left": []},
                "device_one_time_keys_count": {"signed_curve25519": 50},
                "device_unused_fallback_key_types": ["signed_curve25519"],
            },
            "account_data": {
                "global": [{"type": "m.direct", "content": {}}],
                "rooms": {"!known:x": [{"type": "m.tag", "content": {"tags": {}}}]},
            },
            "receipts": {"rooms": {"!joined:x": receipt, "!unknown:x": receipt}},
            "typing": {"rooms": {"!joined:x": typing}},
        },
    }
    raw = to_v3_shape(response, ME, lambda room_id: room_id == "!known:x")
    assert decode_token(raw["next_batch"]) == ("42", "7")
    assert raw["to_device"]["events"] == [{"type": "m.dummy", "content": {}}]
    assert raw["device_lists"]["changed"] == ["@ada:example.org"]
    assert raw["device_one_time_keys_count"] == {"signed_curve25519": 50}
    assert raw["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert raw["account_data"]["events"][0]["type"] == "m.direct"
    join = raw["rooms"]["join"]
    joined = join["!joined:x"]
    assert joined["timeline"] == {"events": [_message(1)], "limited": True, "prev_batch": "t1"}
    assert joined["state"]["events"] == [_member(ME, "join")]
    assert joined["unread_notifications"] == {"notification_count": 4, "highlight_count": 1}
    assert joined["summary"] == {
        "m.joined_member_count": 2,
        "m.heroes": ["@ada:example.org"],
        HERO_NAMES: {"@ada:example.org": "Ada"},
    }
    # Her member event may not be in the lazily loaded state: named all the same.
    state = RoomState("!joined:x")
    state.merge_summary(joined["summary"])
    assert state.member_name("@ada:example.org") == "Ada"
    assert [e["type"] for e in joined["ephemeral"]["events"]] == ["m.receipt", "m.typing"]
    # A longer timeline for a room already shown replaces it, as a gap does.
    assert join["!expanded:x"]["timeline"]["limited"] is True
    # Extensions of a known joined room outside `rooms` reach it; of an
    # unknown one, nothing.
    assert join["!known:x"]["account_data"]["events"][0]["type"] == "m.tag"
    assert "!unknown:x" not in join
    assert list(raw["rooms"]["invite"]) == ["!invited:x"]
    assert list(raw["rooms"]["leave"]) == ["!left:x"]


def test_the_to_device_position_is_kept_when_a_response_has_none() -> None:
    raw = to_v3_shape({"pos": "9"}, ME, lambda _: False, previous_to_device_since="5")
    assert decode_token(raw["next_batch"]) == ("9", "5")
    assert is_sliding_token(raw["next_batch"]) and not is_sliding_token("s72_0_1")
    assert decode_token("s72_0_1") == (None, None)
    assert decode_token(encode_token(None, None)) == (None, None)


def test_the_window_grows_until_every_room_is_known_then_follows_new_rooms() -> None:
    token: list[str | None] = [None]
    sync = SlidingSync(lambda: token[0], lambda: 0, SyncMode.SLIDING)
    ranges, details = [], []
    while sync.growing and len(ranges) < 20:
        body = sync.request_body(None)
        ranges.append(body["lists"]["rooms"]["ranges"][0])
        sync.translate({"pos": "1", "lists": {"rooms": {"count": 2000}}}, ME, lambda _: False)
        details.append(sync.loading_detail())
    assert ranges[0] == [0, FIRST_WINDOW - 1]
    assert ranges[-1] == [0, 1999]
    assert all(0 < b[1] - a[1] <= 500 for a, b in itertools.pairwise(ranges))
    assert details[0] == f"{FIRST_WINDOW} of 2,000"
    assert details[-1] is None and not sync.growing
    sync.translate({"pos": "2", "lists": {"rooms": {"count": 2001}}}, ME, lambda _: False)
    assert sync.request_body(None)["lists"]["rooms"]["ranges"] == [[0, 2000]]
    # A restart with a position asks for every known room at once.
    token[0] = encode_token("5", "3")
    again = SlidingSync(lambda: token[0], lambda: 700, SyncMode.SLIDING)
    body = again.request_body("3")
    assert body["lists"]["rooms"]["ranges"] == [[0, 699]]
    assert body["extensions"]["to_device"] == {"enabled": True, "limit": 100, "since": "3"}
    # Members lazily (MemberLists fetches a whole list where it is needed),
    # one's own always; the rest of what tuichat reads, for the list and
    # the subscriptions alike.
    again.subscribe("!open:x")
    body = again.request_body(None)
    for required in (
        body["lists"]["rooms"]["required_state"],
        body["room_subscriptions"]["!open:x"]["required_state"],
    ):
        assert ["m.room.member", "$LAZY"] in required and ["m.room.member", "$ME"] in required
        assert ["*", "*"] not in required and ["m.room.member", "*"] not in required
        assert ["m.room.encryption", ""] in required and ["m.space.child", "*"] in required


# -- against Synapse --------------------------------------------------------------------


@pytest.fixture
def sliding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sliding_sync.SYNC_MODE_ENV, "sliding")


def _create_room(synapse: LocalSynapse, user: RegisteredUser, name: str) -> str:
    status, reply = synapse._request(
        "POST", "/_matrix/client/v3/createRoom", {"name": name}, token=user.access_token
    )
    assert status == 200, reply
    return str(reply["room_id"])


def _send(synapse: LocalSynapse, user: RegisteredUser, room_id: str, body: str) -> None:
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{uuid.uuid4().hex}"
    status, reply = synapse._request(
        "PUT", path, {"msgtype": "m.text", "body": body}, token=user.access_token
    )
    assert status == 200, reply


def _bodies(recorder: Recorder, room_id: str) -> list[str]:
    return [i.body for i in recorder.items(room_id) if i.body.startswith("line ")]


@pytest.mark.usefixtures("sliding")
async def test_the_room_list_grows_in_the_background_and_says_how_far(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sliding_sync, "FIRST_WINDOW", 2)
    monkeypatch.setattr(sliding_sync, "GROWTH_STEP", 1)
    alice = new_user("alice")
    rooms = [_create_room(synapse, alice, f"room {n}") for n in range(5)]
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: set(rooms) <= set(recorder.rooms()))
    await wait_until(lambda: service.connection_state is ConnectionState.SYNCED)
    details = [
        e.detail
        for e in recorder.events
        if isinstance(e, ConnectionChanged) and e.state is ConnectionState.LOADING_ROOMS
    ]
    assert details == ["2 of 5", "4 of 5"]
    # The newest rooms came first: the last one made was in the first window.
    first_rooms = next(
        i for i, e in enumerate(recorder.events) if isinstance(e, ConnectionChanged) and e.detail
    )
    seen_first = {r for e in recorder.events[:first_rooms] for r in _rooms_of(e)}
    assert rooms[-1] in seen_first and rooms[0] not in seen_first
    assert is_sliding_token(service.cache.sync_token or service._context.sync_token)


def _rooms_of(event: Any) -> list[str]:
    rooms = getattr(event, "rooms", None)
    return [r.room_id for r in rooms] if isinstance(rooms, (list, tuple)) else []


@pytest.mark.usefixtures("sliding")
async def test_a_limited_timeline_leaves_a_gap_history_fills_and_the_open_room_stays_whole(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
) -> None:
    alice = new_user("alice")
    room_id = _create_room(synapse, alice, "busy")
    for n in range(30):
        _send(synapse, alice, room_id, f"line {n:02d}")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: len(_bodies(recorder, room_id)) >= 1)
    first = next(
        e for e in recorder.events if isinstance(e, TimelineAppended) and e.room_id == room_id
    )
    assert first.limited
    shown = [i.body for i in first.items if i.body.startswith("line ")]
    assert shown == [f"line {n:02d}" for n in range(30 - len(shown), 30)]
    assert len(shown) <= sliding_sync.LIST_TIMELINE_LIMIT
    # Scrolling up: history continues exactly where the window began.
    oldest = first.items[0].event_id
    await service.load_older(room_id, oldest, limit=40)
    older = [
        i.body
        for e in recorder.events
        if isinstance(e, TimelinePrepended) and e.room_id == room_id
        for i in e.items
        if i.body.startswith("line ")
    ]
    assert older + shown == [f"line {n:02d}" for n in range(30)]
    # Opening the room: it is subscribed (live even before the list
    # reaches it), and its timeline is not sent again.
    before = len(recorder.events)
    service.show_room(room_id)
    assert room_id in service.parts.syncing.sliding.request_body(None)["room_subscriptions"]
    _send(synapse, alice, room_id, "line 30")
    await wait_until(lambda: recorder.text_from(room_id, "line 30"))
    later = [
        e
        for e in recorder.events[before:]
        if isinstance(e, TimelineAppended) and e.room_id == room_id
    ]
    assert not any(e.limited for e in later)


@pytest.mark.usefixtures("sliding")
async def test_the_to_device_position_survives_a_restart(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    from nio import ToDeviceMessage

    alice, bob = new_user("alice"), new_user("bob")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    peer = await peer_factory(bob)
    seen: list[dict[str, Any]] = []

    async def start() -> Any:
        service = await start_service(profile, Recorder())
        syncing = service.parts.syncing
        handle = syncing.handle_sync

        async def recording(raw: dict[str, Any]) -> None:
            seen.extend(raw.get("to_device", {}).get("events", []))
            await handle(raw)

        syncing.handle_sync = recording  # type: ignore[method-assign]
        return service

    service = await start()
    await service.first_sync_done.wait()
    message = ToDeviceMessage("org.example.ping", alice.user_id, device_id, {"n": 1})
    await peer.client.to_device(message)
    await wait_until(lambda: [e for e in seen if e.get("type") == "org.example.ping"])
    await wait_until(lambda: decode_token(Cache(profile.cache_file).sync_token)[1] is not None)
    await service.stop()

    seen.clear()
    service = await start()
    before = service.parts.syncing.sliding
    await wait_until(lambda: before.count is not None)
    await asyncio.sleep(1.5)  # another long poll or two
    assert not [e for e in seen if e.get("type") == "org.example.ping"], "delivered twice"
    # And a second message does arrive (the position is alive).
    await peer.client.to_device(ToDeviceMessage("org.example.ping", alice.user_id, device_id, {}))
    await wait_until(lambda: [e for e in seen if e.get("type") == "org.example.ping"])


async def test_auto_falls_back_to_v3_sync_without_the_endpoint(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    start_service: ServiceFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(sliding_sync.SYNC_MODE_ENV, "auto")
    monkeypatch.setattr(
        sliding_sync, "ENDPOINT", "/_matrix/client/unstable/org.example.absent/sync"
    )
    alice = new_user("alice")
    room_id = _create_room(synapse, alice, "plain")
    _send(synapse, alice, room_id, "line 00")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: _bodies(recorder, room_id) == ["line 00"])
    assert not service.parts.syncing.sliding.active
    assert service._context.sync_token and not is_sliding_token(service._context.sync_token)


async def test_the_progress_line_shows_through_the_screen(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.test_ui_chat import wait_ui
    from tuichat.ui.app import TuichatApp

    monkeypatch.setenv(sliding_sync.SYNC_MODE_ENV, "sliding")
    monkeypatch.setattr(sliding_sync, "FIRST_WINDOW", 2)
    monkeypatch.setattr(sliding_sync, "GROWTH_STEP", 1)
    alice = new_user("alice")
    for n in range(4):
        _create_room(synapse, alice, f"room {n}")
    await log_in(synapse, profile, alice)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    lines: list[str] = []
    async with app.run_test(size=(120, 30)) as pilot:
        show = app.chat.show_status

        def recording() -> None:
            show()
            lines.append(str(app.main.status.render()))

        app.chat.show_status = recording  # type: ignore[method-assign]
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        await _until_painted(pilot)
        assert any("Loading rooms (2 of 4)…" in line for line in lines), lines
        assert "synced" in str(app.main.status.render())
        assert len(app.state.rooms.ordered()) == 4


async def _until_painted(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.1)


def test_a_response_without_the_list_stops_the_growth() -> None:
    sync = SlidingSync(lambda: None, lambda: 0, SyncMode.SLIDING)
    assert sync.growing
    sync.translate({"pos": "1"}, ME, lambda _: False)
    assert not sync.growing and sync.loading_detail() is None
