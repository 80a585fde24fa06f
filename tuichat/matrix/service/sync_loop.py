"""The sync loop and how a response is handled.

Data flows one way. The service turns sync responses into domain events
(`tuichat.model.events`) and hands them to its sink; user actions come back
as method calls (`send_text`, `join`, `leave`, `retry`). It never touches the
model or the UI.

How a sync response is handled:

1. tuichat makes the `/sync` request itself and keeps the raw JSON.
2. nio receives a copy without the encrypted timeline events: it processes
   to-device messages (room keys land in its store at once), room state,
   device-list changes and one-time-key counts, exactly as usual.
3. tuichat decrypts the timeline events itself (`crypto/megolm.py`), converts
   them to items (`convert.py`) and emits one `TimelineAppended` per room.
4. Events that waited for a key which arrived in this response (or in an
   import, or a later upkeep round) are decrypted again and replaced in
   place (`ItemsReplaced`), in every room, shown or not.
5. The raw events (ciphertext for encrypted ones) and the sync token are
   written to the cache in one transaction (on the cache's writer thread,
   while the next response is handled), after nio has stored the keys.

End-to-end encryption beyond nio lives in `tuichat/matrix/crypto/`; the
service talks to it through `CryptoEngine`."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from nio import (
    SyncResponse,
)

from tuichat.matrix.content.convert import Decryption, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.history import TimelineGaps
from tuichat.matrix.service.push_settings import PushSettings
from tuichat.matrix.service.read_state import ReadState
from tuichat.matrix.service.room_keys import RoomKeys
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.service.sliding_sync import (
    SlidingSync,
    SlidingUnavailable,
    UnknownPosition,
    is_sliding_token,
)
from tuichat.matrix.service.token_recovery import TokenRecovery
from tuichat.matrix.service.trust import DeviceTrust
from tuichat.matrix.storage.cache import RoomWrite, SyncWrite
from tuichat.matrix.storage.snapshot import last_activity
from tuichat.matrix.transport import fastjson
from tuichat.matrix.transport.gc_pause import GcPause
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import (
    ConnectionState,
    RoomRemoved,
    SwitchToRoom,
    TimelineAppended,
)
from tuichat.model.items import TimelineItem
from tuichat.model.pacing import SLICE_SECONDS
from tuichat.model.rooms import Membership
from tuichat.model.sanitize import clean_line

log = logging.getLogger(__name__)

TIMELINE_LIMIT = 50
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
# How long past its own timeout a long poll may stay unanswered before the
# server counts as hung (a hung server keeps the connection open and says
# nothing): the status line then says so and the loop retries.
LONG_POLL_MARGIN = 10.0
# A first sync (timeout 0) makes the server build every room's state: it may
# legitimately take a while on a large account.
FIRST_SYNC_ALLOWANCE = 30.0
# A sync with this many timeline events leaves its objects frozen (see
# `handle_sync`).
LARGE_SYNC_EVENTS = 1000


@dataclass
class _SyncOutcome:
    write: SyncWrite
    changed_rooms: set[str] = field(default_factory=set)
    # In-room verification steps, (room id, decrypted event), in order.
    verification_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _collect_verification(
    room_id: str, event: dict[str, Any], decryption: Decryption | None, outcome: _SyncOutcome
) -> None:
    """Keep in-room verification events (decrypted, when they were encrypted)
    for the verification code, which runs after the room was processed."""
    if decryption is not None:
        if decryption.payload is None:
            return
        event_type, content = decryption.payload.get("type"), decryption.payload.get("content")
    else:
        event_type, content = event.get("type"), event.get("content")
    if not isinstance(event_type, str) or not isinstance(content, dict):
        return
    is_request = (
        event_type == "m.room.message" and content.get("msgtype") == "m.key.verification.request"
    )
    if is_request or event_type.startswith("m.key.verification."):
        outcome.verification_events.append(
            (
                room_id,
                {
                    "type": event_type,
                    "content": content,
                    "sender": event.get("sender"),
                    "event_id": event.get("event_id"),
                    "origin_server_ts": event.get("origin_server_ts"),
                },
            )
        )


class SyncHTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any], token: str = "") -> None:
        self.status = status
        self.errcode = str(body.get("errcode", ""))
        self.error = str(body.get("error", ""))
        self.soft_logout = body.get("soft_logout") is True
        # The access token the request was made with.
        self.token = token
        retry = body.get("retry_after_ms")
        self.retry_after = retry / 1000 if isinstance(retry, int) and retry > 0 else None
        super().__init__(f"HTTP {status} {self.errcode} {self.error}".strip())


def sync_filter() -> dict[str, Any]:
    return {
        "room": {
            # Per-thread counts (MSC3773) beside the room's: threads (issue 21).
            "timeline": {
                "limit": TIMELINE_LIMIT,
                "unread_thread_notifications": True,
                "lazy_load_members": True,  # issue 25: see member_lists.py
            },
            "state": {"lazy_load_members": True},
        },
        "presence": {"not_types": ["*"]},
    }


class SyncLoop:
    """The sync loop and what each response does to rooms and timelines."""

    def __init__(
        self,
        context: AccountContext,
        *,
        gaps: TimelineGaps,
        views: RoomViews,
        read_state: ReadState,
        trust: DeviceTrust,
        keys: RoomKeys,
        tokens: TokenRecovery,
        push: PushSettings,
        timeout_ms: int,
    ) -> None:
        self._push = push
        self._context = context
        self._gaps = gaps
        self._views = views
        self._read_state = read_state
        self._trust = trust
        self._keys = keys
        self._tokens = tokens
        self.timeout_ms = timeout_ms
        self.cache = context.cache
        self.emit = context.emit
        # Simplified sliding sync (MSC4186) when the server has it (issue 25).
        self.sliding = SlidingSync(
            lambda: context.sync_token,
            lambda: len(context.states),
        )

    async def run(self) -> None:
        """Sync until cancelled (or the server logs this device out),
        retrying failures with back-off; an upkeep round between syncs."""
        context = self._context
        assert context.client is not None
        backoff = BACKOFF_START
        await self._keys.upkeep()
        while True:
            first = not context.synced_once
            if first:
                context.set_state(ConnectionState.SYNCING)
            try:
                raw = await self._sync_request(0 if first else self.timeout_ms)
                await self.handle_sync(raw)
            except asyncio.CancelledError:
                raise
            except SyncHTTPError as error:
                if error.errcode == "M_UNKNOWN_TOKEN":
                    # Refreshed (soft logout, an expired token): the sync goes
                    # on from its token. Else the device was logged out.
                    if await self._tokens.recover(error.token, error.soft_logout):
                        continue
                    self._tokens.logged_out_by_server()
                    return
                if error.status == 429 and error.retry_after is not None:
                    # Rate-limited: wait as long as the server asks.
                    await self._back_off(str(error), min(error.retry_after, 300.0))
                    continue
                await self._back_off(str(error), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except (*NETWORK_ERRORS, ValueError) as error:
                detail = str(error) or type(error).__name__
                if isinstance(error, TimeoutError):
                    detail = "the server does not answer"
                await self._back_off(detail, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except Exception as error:
                # Not foreseen (a crypto store another program holds locked,
                # a bug): logged with its traceback, shown in the status
                # line, and the same sync tried again, as after a network
                # failure. Ending the loop would leave "synced" on screen
                # while nothing came any more.
                log.exception("handling a sync failed")
                detail = clean_line(f"{type(error).__name__}: {error}", max_length=200)
                await self._back_off(detail, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            loading = self.sliding.loading_detail()
            if loading is not None:  # sliding sync still growing its room list (issue 25)
                context.set_state(ConnectionState.LOADING_ROOMS, loading)
            elif context.state is not ConnectionState.SYNCED:
                context.set_state(ConnectionState.SYNCED)
                await self._keys.offer_recovery()
            await self._keys.upkeep()

    async def _back_off(self, detail: str, delay: float) -> None:
        log.info("sync failed (%s); retrying in %.0f s", detail, delay)
        self._context.set_state(ConnectionState.RECONNECTING, detail)
        await asyncio.sleep(delay)

    async def _sync_request(self, timeout_ms: int) -> dict[str, Any]:
        client = self._context.client
        assert client is not None
        if self.sliding.active:  # issue 25
            try:
                return await self._sliding_request(timeout_ms)
            except SlidingUnavailable:
                pass
            except UnknownPosition:
                return await self._sliding_request(timeout_ms)
        params = {"timeout": str(timeout_ms), "filter": json.dumps(sync_filter())}
        if self._context.sync_token and not is_sliding_token(self._context.sync_token):
            params["since"] = self._context.sync_token
        path = f"/_matrix/client/v3/sync?{urlencode(params)}"
        token = client.access_token
        headers = {"Authorization": f"Bearer {token}"}
        allowance = LONG_POLL_MARGIN if timeout_ms else FIRST_SYNC_ALLOWANCE
        response = await client.send(
            "GET", path, None, headers, timeout=timeout_ms / 1000 + allowance
        )
        body = await response.read()
        try:
            data = fastjson.loads(body)
        except ValueError:
            raise SyncHTTPError(response.status, {"error": "invalid JSON"}, token) from None
        if response.status != 200 or not isinstance(data, dict):
            raise SyncHTTPError(response.status, data if isinstance(data, dict) else {}, token)
        return data

    async def _sliding_request(self, timeout_ms: int) -> dict[str, Any]:
        """A sliding sync response, /v3-shaped (`sliding_sync`)."""
        context = self._context
        status, data, token = await self.sliding.request(context.client, timeout_ms)
        if status != 200:
            raise SyncHTTPError(status, data, token)
        return self.sliding.translate(data, context.user_id, self._is_joined)

    def show_room(self, room_id: str) -> None:
        """The room on screen gets a sliding sync subscription (issue 25)."""
        self.sliding.subscribe(room_id)

    def _is_joined(self, room_id: str) -> bool:
        state = self._context.states.get(room_id)
        return state is not None and state.membership is Membership.JOIN

    async def handle_sync(self, raw: dict[str, Any]) -> None:
        """Process one raw sync response (also used by tests and benchmarks).

        The cyclic garbage collector is paused meanwhile: what a sync creates
        is freed by reference counting, and a full collection in the middle
        (tens of milliseconds with a large heap) would stall a frame. After
        a large sync its survivors are frozen, so later collections do not
        walk them again."""
        with GcPause() as pause:
            events = await self._handle_sync(raw)
            pause.freeze_after = events >= LARGE_SYNC_EVENTS

    async def _handle_sync(self, raw: dict[str, Any]) -> int:
        """Returns the number of timeline events handled."""
        context = self._context
        client, crypto = context.client, context.crypto
        assert client is not None
        next_batch = raw.get("next_batch")
        if not isinstance(next_batch, str):
            raise ValueError("sync response without next_batch")
        # Parsing a large body was one slice of work already.
        await asyncio.sleep(0)
        response = SyncResponse.from_dict(nio_view(raw))
        if isinstance(response, SyncResponse):
            await client.receive_response(response)
        else:
            log.warning("nio rejected a sync response: %s", response)
        assert crypto is not None
        redecrypted = await crypto.handle_sync(raw)
        outcome = _SyncOutcome(SyncWrite(next_batch=next_batch))
        self._handle_account_data(raw, outcome)
        rooms = raw.get("rooms") if isinstance(raw.get("rooms"), dict) else {}
        for room_id, info in _dict_items(rooms.get("invite")):
            self._handle_invite(room_id, info, outcome)
        deadline = time.perf_counter() + SLICE_SECONDS
        events = 0
        self._gaps.writes_queued.clear()
        try:
            for room_id, info in _dict_items(rooms.get("join")):
                events += self._handle_joined(room_id, info, outcome)
                if time.perf_counter() > deadline:
                    # A large sync (thousands of events) is cut into slices,
                    # so the UI draws frames while it is decrypted.
                    await asyncio.sleep(0)
                    deadline = time.perf_counter() + SLICE_SECONDS
            for room_id, _info in _dict_items(rooms.get("leave")):
                self._handle_left(room_id, outcome)
            self._views.emit_redecrypted(redecrypted)
            # Written on the cache's thread, after nio stored the keys above.
            self.cache.queue_sync(outcome.write)
        finally:
            self._gaps.writes_queued.set()
        crypto.extras.flush()
        context.sync_token = next_batch
        await self._views.emit_summaries_in_slices(outcome.changed_rooms)
        self._trust.report_device_news()
        for room_id, event in outcome.verification_events:
            await crypto.verifications.handle_room_event(room_id, event)
        context.synced_once = True
        context.first_sync_done.set()
        pending = context.states.get(context.pending_switch or "")
        if pending is not None and pending.membership is Membership.JOIN:
            self.emit(SwitchToRoom(pending.room_id))
            context.pending_switch = None
        return events

    def _handle_account_data(self, raw: dict[str, Any], outcome: _SyncOutcome) -> None:
        account_data = raw.get("account_data")
        events = account_data.get("events") if isinstance(account_data, dict) else None
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict) and event.get("type") == "m.push_rules":
                # Notifications: before the rooms, so this sync's events follow them.
                self._push.handle_push_rules(event, outcome.write.account_data)
            if not isinstance(event, dict) or event.get("type") != "m.direct":
                continue
            content = event.get("content") if isinstance(event.get("content"), dict) else {}
            outcome.write.account_data["m.direct"] = content
            self._views.set_direct(content, outcome.changed_rooms)

    def _state_for(self, room_id: str, membership: Membership) -> RoomState:
        states = self._context.states
        state = states.get(room_id)
        if state is None or state.membership is not membership:
            # New, or an accepted invite: nothing of the stripped invite state
            # is kept; the joined room's full state follows in the same sync.
            state = RoomState(room_id, membership)
            state.is_direct = room_id in self._context.direct.room_ids()
            states[room_id] = state
        return state

    def _handle_invite(self, room_id: str, info: dict[str, Any], outcome: _SyncOutcome) -> None:
        state = self._state_for(room_id, Membership.INVITE)
        invite_state = info.get("invite_state")
        events = invite_state.get("events") if isinstance(invite_state, dict) else None
        state_events = [e for e in events or [] if isinstance(e, dict) and state.apply(e)]
        outcome.write.rooms[room_id] = RoomWrite(membership="invite", state=state_events)
        outcome.changed_rooms.add(room_id)

    def _handle_joined(self, room_id: str, info: dict[str, Any], outcome: _SyncOutcome) -> int:
        """Returns the number of timeline events."""
        context = self._context
        assert context.client is not None
        state = self._state_for(room_id, Membership.JOIN)
        summary = info.get("summary")
        summary = summary if isinstance(summary, dict) else {}
        state.merge_summary(summary)
        state_block = info.get("state")
        state_events = [
            e
            for e in (state_block.get("events") if isinstance(state_block, dict) else None) or []
            if isinstance(e, dict) and state.apply(e)
        ]
        timeline = info.get("timeline")
        timeline = timeline if isinstance(timeline, dict) else {}
        events = [e for e in timeline.get("events") or [] if isinstance(e, dict)]
        # State first, so every item shows current names, as a reload from
        # the cache would.
        state_events.extend(e for e in events if state.apply(e))
        self._rotate_if_needed(room_id, state_events)
        items: list[TimelineItem] = []
        crypto = context.crypto
        assert crypto is not None
        for event in events:
            decryption: Decryption | None = None
            if event.get("type") == "m.room.encrypted":
                decryption = crypto.decrypt(room_id, event)
            _collect_verification(room_id, event, decryption, outcome)
            item = to_item(event, state, context.viewer, decryption)
            if item is not None:
                items.append(item)
        if state_events:
            outcome.changed_rooms.add(room_id)
            self._note_own_name(state)
        receipts = self._read_state.handle_ephemeral(room_id, info, state)
        self._push.handle_room_account_data(room_id, info)
        self._push.handle_server_counts(room_id, info, state.encrypted)
        self._read_state.handle_thread_counts(room_id, info)  # threads (issue 21)
        limited = bool(timeline.get("limited"))
        if limited:
            self._gaps.add(room_id)
        prev_batch = timeline.get("prev_batch")
        outcome.write.rooms[room_id] = RoomWrite(
            membership="join",
            summary=summary or None,
            state=state_events,
            events=events,
            replace_timeline=limited,
            prev_batch=prev_batch if isinstance(prev_batch, str) else None,
            receipts=receipts,
        )
        snapshot = context.snapshot
        if items or limited:
            activity = last_activity(items)
            if activity > context.activity(room_id):
                snapshot.last_activity[room_id] = activity
                outcome.changed_rooms.add(room_id)
            self.emit(TimelineAppended(room_id, items, limited=limited))
        if room_id not in snapshot.timelines and room_id not in snapshot.last_activity:
            # A room new to this device: nothing is cached to load later.
            snapshot.timelines[room_id] = []
            snapshot.last_activity[room_id] = 0
            outcome.changed_rooms.add(room_id)
        return len(events)

    def _rotate_if_needed(self, room_id: str, state_events: list[dict[str, Any]]) -> None:
        """Start a new outbound session when someone may no longer read along:
        a member left, was kicked or banned, or history visibility changed."""
        crypto = self._context.crypto
        assert crypto is not None
        for event in state_events:
            event_type = event.get("type")
            content = event.get("content") if isinstance(event.get("content"), dict) else {}
            if event_type == "m.room.member" and content.get("membership") in ("leave", "ban"):
                crypto.rotate(room_id, f"{event.get('state_key')} left")
            elif event_type == "m.room.history_visibility":
                crypto.rotate(room_id, "history visibility changed")
            elif event_type == "m.room.encryption":
                crypto.rotate(room_id, "encryption settings changed")

    def _note_own_name(self, state: RoomState) -> None:
        context = self._context
        name = state.content("m.room.member", context.user_id).get("displayname")
        if isinstance(name, str) and name and name != context.viewer.display_name:
            context.viewer = dataclasses.replace(context.viewer, display_name=name)

    def _handle_left(self, room_id: str, outcome: _SyncOutcome) -> None:
        client = self._context.client
        if self._context.states.pop(room_id, None) is not None or room_id in outcome.write.rooms:
            outcome.write.rooms.pop(room_id, None)
            outcome.changed_rooms.discard(room_id)
            outcome.write.removed_rooms.append(room_id)
            if client is not None:
                client.rooms.pop(room_id, None)
                client.invited_rooms.pop(room_id, None)
            self.emit(RoomRemoved(room_id))


def nio_view(raw: dict[str, Any]) -> dict[str, Any]:
    """The part of a sync response nio gets to see.

    Encrypted timeline events are left out, so nio does not decrypt (and
    drop the ciphertext of) what tuichat decrypts itself. The parts nio
    mutates while parsing (it pops `content` from invite and account-data
    events and key fields from to-device events) are deep-copied, so the raw
    response tuichat keeps stays whole. Timelines and state are shared.
    """
    view = dict(raw)
    for key in ("to_device", "account_data"):
        if key in raw:
            view[key] = copy.deepcopy(raw[key])
    rooms = raw.get("rooms")
    if not isinstance(rooms, dict):
        return view
    view["rooms"] = rooms = dict(rooms)
    if "invite" in rooms:
        rooms["invite"] = copy.deepcopy(rooms["invite"])
    if isinstance(rooms.get("join"), dict):
        join = {}
        for room_id, info in rooms["join"].items():
            if isinstance(info, dict):
                info = dict(info)
                if "account_data" in info:
                    info["account_data"] = copy.deepcopy(info["account_data"])
                timeline = info.get("timeline")
                if isinstance(timeline, dict) and isinstance(timeline.get("events"), list):
                    info["timeline"] = dict(timeline)
                    info["timeline"]["events"] = [
                        e
                        for e in timeline["events"]
                        if not (isinstance(e, dict) and e.get("type") == "m.room.encrypted")
                    ]
                if _nothing_for_nio(info):
                    # Only encrypted messages: a room entry would cost nio a
                    # schema check and a store write for nothing.
                    continue
            join[room_id] = info
        rooms["join"] = join
    return view


def _nothing_for_nio(info: dict[str, Any]) -> bool:
    """Whether a joined room's entry (encrypted events already left out)
    carries nothing nio uses: no state, timeline, ephemeral or account data
    events, and no summary."""
    for key, value in info.items():
        if key in ("state", "timeline", "ephemeral", "account_data"):
            events = value.get("events") if isinstance(value, dict) else None
            if events:
                return False
        elif key == "summary":
            if value:
                return False
        elif key not in ("unread_notifications", "unread_thread_notifications"):
            return False
    return True


def _dict_items(value: object) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, dict):
        return []
    return [(k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, dict)]
