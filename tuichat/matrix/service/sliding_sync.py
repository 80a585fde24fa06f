"""Simplified sliding sync (MSC4186), seen by the rest of tuichat as `/v3/sync`.

`SlidingSync.request` makes one sliding sync request and returns its
response translated into the shape of a `/v3/sync` response
(`to_v3_shape`), which the sync loop handles exactly as it handles one from
`/v3/sync`: nio sees the same to-device events, device-list changes and key
counts, tuichat's crypto decrypts the same timelines, the cache stores the
same rooms. Encryption does not notice which API brought them.

What is asked for:

- one list of rooms sorted by activity (the server's order) whose range
  starts with the newest `FIRST_WINDOW` rooms on a first login and grows
  request by request (with no long poll) until every room is known; the
  status line says "Loading rooms (1,200 of 2,000)…" meanwhile;
- room subscriptions for the rooms opened last (the one on screen among
  them), so they stay live while the list has not reached them yet; with
  the list's timeline length, so that opening a room never makes the server
  send its timeline again (a longer one would replace what is shown);
- the state tuichat reads (`REQUIRED_STATE`) with members loaded lazily,
  as `/v3/sync`'s `lazy_load_members` does: the members of the timeline's
  senders and one's own; `MemberLists` fetches the whole list where it is
  needed (before a room key is shared, for the member list), comparing it
  with the room's `joined_count` and `invited_count` (the summary's
  `m.joined_member_count` and `m.invited_member_count`). A room without a
  name is named after its `heroes`, whose display names come with them
  (`HERO_NAMES` in the summary), as `/v3/sync` sends their member events;
- the extensions `to_device`, `e2ee`, `account_data`, `receipts`, `typing`.

The position is kept in the sync token the cache stores (`encode_token`):
the connection's `pos` and the to-device extension's own `since`. Both are
taken from the token the sync loop sets once a response has been handled
(and nio has stored the keys its to-device events brought), so to-device
events are acknowledged to the server only after they are persisted, as on
`/v3/sync`. A token from `/v3/sync` is not a position: the first sliding
request after a switch starts a new connection (and the reverse).

`SyncMode` chooses: `auto` (sliding sync when the server answers it, else
`/v3/sync`), `sliding` or `v3`; the environment variable TUICHAT_SYNC_MODE
sets it (tests run the crypto tests both ways with it).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from tuichat.matrix.content.room_state import HERO_NAMES
from tuichat.matrix.transport import fastjson

log = logging.getLogger(__name__)

SYNC_MODE_ENV = "TUICHAT_SYNC_MODE"
ENDPOINT = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
CONNECTION_ID = "tuichat"
LIST_NAME = "rooms"
# The first window: the newest rooms, shown before the rest is known.
FIRST_WINDOW = 20
# How many more rooms each following request asks for: at least
# GROWTH_STEP, doubling with the window, at most GROWTH_MAX (a response must
# come back well within the request's time allowance on a slow server).
GROWTH_STEP = 200
GROWTH_MAX = 500
# A room in the list: a few recent events (the room list's preview and its
# activity); more are loaded on demand through the gap a limited timeline
# leaves, as the timeline asks for history when it is shorter than the screen.
LIST_TIMELINE_LIMIT = 10
# How many of the rooms opened last keep their subscription.
SUBSCRIPTIONS = 10
# What tuichat reads of a room's state (tuichat/matrix/content/room_state.py,
# push_context.py, power_levels.py, the room settings): members lazily.
REQUIRED_STATE = [
    ["m.room.member", "$LAZY"],
    ["m.room.member", "$ME"],
    ["m.room.create", ""],
    ["m.room.name", ""],
    ["m.room.topic", ""],
    ["m.room.avatar", ""],
    ["m.room.canonical_alias", ""],
    ["m.room.encryption", ""],
    ["m.room.power_levels", ""],
    ["m.room.join_rules", ""],
    ["m.room.history_visibility", ""],
    ["m.room.pinned_events", ""],
    ["m.room.tombstone", ""],
    ["m.space.child", "*"],
    ["m.space.parent", "*"],
]
TO_DEVICE_LIMIT = 100
TOKEN_PREFIX = "msc4186:"
# Long-poll margins as on `/v3/sync` (`sync_loop`).
LONG_POLL_MARGIN = 10.0
FIRST_REQUEST_ALLOWANCE = 30.0


class SyncMode(StrEnum):
    AUTO = "auto"
    SLIDING = "sliding"
    V3 = "v3"


def sync_mode_from_environment() -> SyncMode:
    value = os.environ.get(SYNC_MODE_ENV, "").strip().lower()
    try:
        return SyncMode(value) if value else SyncMode.AUTO
    except ValueError:
        log.warning("%s=%r is not auto, sliding or v3: auto is used", SYNC_MODE_ENV, value)
        return SyncMode.AUTO


def is_sliding_token(token: str | None) -> bool:
    return bool(token) and str(token).startswith(TOKEN_PREFIX)


def encode_token(pos: str | None, to_device_since: str | None) -> str:
    return TOKEN_PREFIX + json.dumps({"pos": pos, "to_device": to_device_since})


def decode_token(token: str | None) -> tuple[str | None, str | None]:
    """(pos, to-device since) from a stored token; (None, None) for none or
    a `/v3/sync` one."""
    if not token or not is_sliding_token(token):
        return None, None
    try:
        data = json.loads(token[len(TOKEN_PREFIX) :])
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    pos, since = data.get("pos"), data.get("to_device")
    return (pos if isinstance(pos, str) else None, since if isinstance(since, str) else None)


class SlidingUnavailable(Exception):
    """The server does not serve simplified sliding sync."""


class UnknownPosition(Exception):
    """The server no longer knows the connection's position."""


class SlidingSync:
    """The sliding sync connection: the window, the subscriptions, the
    requests. `token()` reads the token of the last handled response."""

    def __init__(
        self,
        token: Callable[[], str | None],
        known_rooms: Callable[[], int],
        mode: SyncMode | None = None,
    ) -> None:
        self._token = token
        self._known_rooms = known_rooms
        self.mode = mode or sync_mode_from_environment()
        # Whether requests go to sliding sync: not after an `auto` probe
        # found the endpoint missing.
        self.active = self.mode is not SyncMode.V3
        self.window_end: int | None = None  # the range's last index, once started
        self.count: int | None = None  # rooms in the list, as the server counts them
        self.loaded = 0  # rooms the answered ranges covered
        self.subscriptions: list[str] = []  # room ids, the latest opened last
        # After an unknown position: the next request starts a new
        # connection (the to-device `since` is kept).
        self._drop_pos = False

    # -- what the rest of the service says ------------------------------------------

    def configure(self, mode: str) -> None:
        """The config's choice, unless the environment made one."""
        if os.environ.get(SYNC_MODE_ENV, "").strip():
            return
        try:
            self.mode = SyncMode(mode)
        except ValueError:
            log.warning("sync_mode %r is not auto, sliding or v3: auto is used", mode)
            self.mode = SyncMode.AUTO
        self.active = self.mode is not SyncMode.V3

    def subscribe(self, room_id: str) -> None:
        """The room on screen (the `SUBSCRIPTIONS` opened last stay)."""
        if room_id in self.subscriptions:
            self.subscriptions.remove(room_id)
        self.subscriptions = [*self.subscriptions, room_id][-SUBSCRIPTIONS:]

    @property
    def growing(self) -> bool:
        """Whether rooms remain that the list has not covered yet."""
        if self.count is None:
            return self.active
        return self.loaded < self.count

    def loading_detail(self) -> str | None:
        """ "1,200 of 2,000" while the list grows, else None."""
        if not self.active or self.count is None or not self.growing:
            return None
        return f"{self.loaded:,} of {self.count:,}"

    # -- requests ---------------------------------------------------------------------

    def request_body(self, to_device_since: str | None) -> dict[str, Any]:
        if self.window_end is None:
            pos, _ = decode_token(self._token())
            # Restarting with a known position: the whole list at once (the
            # server sends only what changed). A first login: the newest rooms.
            known = self._known_rooms() if pos is not None and not self._drop_pos else 0
            self.window_end = max(FIRST_WINDOW, known) - 1
        extensions: dict[str, Any] = {
            "to_device": {"enabled": True, "limit": TO_DEVICE_LIMIT},
            "e2ee": {"enabled": True},
            "account_data": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
            "receipts": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
            "typing": {"enabled": True, "lists": ["*"], "rooms": ["*"]},
        }
        if to_device_since is not None:
            extensions["to_device"]["since"] = to_device_since
        return {
            "conn_id": CONNECTION_ID,
            "lists": {
                LIST_NAME: {
                    "ranges": [[0, self.window_end]],
                    "required_state": REQUIRED_STATE,
                    "timeline_limit": LIST_TIMELINE_LIMIT,
                }
            },
            "room_subscriptions": {
                room_id: {"required_state": REQUIRED_STATE, "timeline_limit": LIST_TIMELINE_LIMIT}
                for room_id in self.subscriptions
            },
            "extensions": extensions,
        }

    def _grow(self, count: int) -> None:
        self.count = count
        end = self.window_end if self.window_end is not None else FIRST_WINDOW - 1
        self.loaded = min(end + 1, count)
        if end + 1 < count:
            step = min(max(GROWTH_STEP, end + 1), max(GROWTH_MAX, GROWTH_STEP))
            self.window_end = min(count - 1, end + step)
        else:
            # Everything known: the window follows new rooms.
            self.window_end = max(end, count - 1)

    async def request(self, client: Any, timeout_ms: int) -> tuple[int, dict[str, Any], str]:
        """One request: (HTTP status, body, access token used). The body is
        the raw sliding sync response; `translate` makes it /v3-shaped."""
        pos, since = decode_token(self._token())
        if self._drop_pos:
            pos = None
        growing = self.growing
        timeout = 0 if growing or pos is None else timeout_ms
        params = f"?timeout={timeout}"
        if pos is not None:
            params += "&pos=" + _quote(pos)
        body = self.request_body(since)
        token = client.access_token
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        allowance = LONG_POLL_MARGIN if timeout else FIRST_REQUEST_ALLOWANCE
        response = await client.send(
            "POST", ENDPOINT + params, json.dumps(body), headers, timeout=timeout / 1000 + allowance
        )
        raw = await response.read()
        try:
            data = fastjson.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        if response.status != 200:
            errcode = data.get("errcode")
            if self.mode is SyncMode.AUTO and (
                response.status in (404, 405) or errcode == "M_UNRECOGNIZED"
            ):
                log.info("the server has no simplified sliding sync: /v3/sync is used")
                self.active = False
                raise SlidingUnavailable()
            if errcode == "M_UNKNOWN_POS":
                log.info("the server forgot the sliding sync position: a new connection")
                self._drop_pos = True
                self.window_end = None
                self.count = None
                self.loaded = 0
                raise UnknownPosition()
        return response.status, data, token

    def translate(
        self, response: dict[str, Any], own_user_id: str, joined: Callable[[str], bool]
    ) -> dict[str, Any]:
        """The response as `/v3/sync` would have said it; the list's count
        moves the window on."""
        lists = response.get("lists")
        room_list = lists.get(LIST_NAME) if isinstance(lists, dict) else None
        count = room_list.get("count") if isinstance(room_list, dict) else None
        if isinstance(count, int) and count >= 0:
            self._grow(count)
        elif self.count is None:
            # No count (a server that ignores the list): nothing to grow
            # into, and no requests without a long poll.
            self.count, self.loaded = 0, 0
        _, since = decode_token(self._token())
        result = to_v3_shape(response, own_user_id, joined, since)
        self._drop_pos = False
        return result


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _events(value: object) -> list[dict[str, Any]]:
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _own_membership(events: list[dict[str, Any]], own_user_id: str) -> str | None:
    membership = None
    for event in events:
        if event.get("type") == "m.room.member" and event.get("state_key") == own_user_id:
            content = event.get("content")
            value = content.get("membership") if isinstance(content, dict) else None
            if isinstance(value, str):
                membership = value
    return membership


def to_v3_shape(
    response: dict[str, Any],
    own_user_id: str,
    joined: Callable[[str], bool],
    previous_to_device_since: str | None = None,
) -> dict[str, Any]:
    """A sliding sync response as a `/v3/sync` response. `joined(room_id)`
    says whether a room not in this response is a joined room (extensions
    name rooms the response's `rooms` may not carry)."""
    extensions = response.get("extensions")
    extensions = extensions if isinstance(extensions, dict) else {}
    to_device = extensions.get("to_device")
    to_device = to_device if isinstance(to_device, dict) else {}
    since = to_device.get("next_batch")
    since = since if isinstance(since, str) else previous_to_device_since
    pos = response.get("pos")
    if not isinstance(pos, str):
        raise ValueError("sliding sync response without pos")
    result: dict[str, Any] = {
        "next_batch": encode_token(pos, since),
        "to_device": {"events": _events(to_device.get("events"))},
    }
    e2ee = extensions.get("e2ee")
    if isinstance(e2ee, dict):
        for key in ("device_lists", "device_one_time_keys_count"):
            if isinstance(e2ee.get(key), dict):
                result[key] = e2ee[key]
        if isinstance(e2ee.get("device_unused_fallback_key_types"), list):
            result["device_unused_fallback_key_types"] = e2ee["device_unused_fallback_key_types"]
    account_data = extensions.get("account_data")
    account_data = account_data if isinstance(account_data, dict) else {}
    result["account_data"] = {"events": _events(account_data.get("global"))}

    join: dict[str, dict[str, Any]] = {}
    invite: dict[str, dict[str, Any]] = {}
    leave: dict[str, dict[str, Any]] = {}
    rooms = response.get("rooms")
    for room_id, room in (rooms if isinstance(rooms, dict) else {}).items():
        if not isinstance(room_id, str) or not isinstance(room, dict):
            continue
        if "invite_state" in room:
            stripped = _events(room.get("invite_state"))
            if _own_membership(stripped, own_user_id) in (None, "invite"):
                invite[room_id] = {"invite_state": {"events": stripped}}
            continue
        state = _events(room.get("required_state"))
        timeline = _events(room.get("timeline"))
        membership = _own_membership([*state, *timeline], own_user_id)
        if membership in ("leave", "ban"):
            leave[room_id] = {"state": {"events": state}, "timeline": {"events": timeline}}
            continue
        if membership not in (None, "join"):
            continue
        # A timeline made longer than before (a subscription asks for
        # more): it replaces what was shown, as a limited one does.
        limited = bool(room.get("limited")) or bool(room.get("unstable_expanded_timeline"))
        entry: dict[str, Any] = {
            "state": {"events": state},
            "timeline": {"events": timeline, "limited": limited},
            "unread_notifications": {
                "notification_count": _count(room.get("notification_count")),
                "highlight_count": _count(room.get("highlight_count")),
            },
        }
        if isinstance(room.get("prev_batch"), str):
            entry["timeline"]["prev_batch"] = room["prev_batch"]
        summary: dict[str, Any] = {}
        if isinstance(room.get("joined_count"), int):
            summary["m.joined_member_count"] = room["joined_count"]
        if isinstance(room.get("invited_count"), int):
            summary["m.invited_member_count"] = room["invited_count"]
        heroes = room.get("heroes")
        if isinstance(heroes, list):
            heroes = [
                h for h in heroes if isinstance(h, dict) and isinstance(h.get("user_id"), str)
            ]
            summary["m.heroes"] = [h["user_id"] for h in heroes]
            # Their member events may not be in the lazily loaded state.
            summary[HERO_NAMES] = {
                h["user_id"]: h["displayname"]
                for h in heroes
                if isinstance(h.get("displayname"), str)
            }
        if summary:
            entry["summary"] = summary
        join[room_id] = entry

    def joined_entry(room_id: object) -> dict[str, Any] | None:
        if not isinstance(room_id, str):
            return None
        if room_id in join:
            return join[room_id]
        if room_id in invite or room_id in leave or not joined(room_id):
            return None
        join[room_id] = {}
        return join[room_id]

    for name in ("receipts", "typing"):
        extension = extensions.get(name)
        by_room = extension.get("rooms") if isinstance(extension, dict) else None
        for room_id, event in (by_room if isinstance(by_room, dict) else {}).items():
            entry = joined_entry(room_id)
            if entry is not None and isinstance(event, dict):
                entry.setdefault("ephemeral", {"events": []})["events"].append(event)
    by_room = account_data.get("rooms")
    for room_id, events in (by_room if isinstance(by_room, dict) else {}).items():
        entry = joined_entry(room_id)
        if entry is not None:
            entry.setdefault("account_data", {"events": []})["events"].extend(_events(events))
    result["rooms"] = {"join": join, "invite": invite, "leave": leave}
    return result


def _count(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
