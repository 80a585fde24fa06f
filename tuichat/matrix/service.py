"""The Matrix service: owns nio's AsyncClient, the sync loop and sending.

Data flows one way. The service turns sync responses into domain events
(`tuichat.matrix.events`) and hands them to its sink; user actions come back
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
   written to the cache in one transaction, after nio has stored the keys.

End-to-end encryption beyond nio lives in `tuichat/matrix/crypto/`; the
service talks to it through `CryptoEngine`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from nio import (
    JoinError,
    ProfileGetResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomLeaveError,
    RoomSendResponse,
    SyncResponse,
)
from nio.api import Api, RoomPreset

from tuichat.matrix.cache import Cache, RoomWrite, SyncWrite
from tuichat.matrix.client import build_client
from tuichat.matrix.convert import Decryption, Viewer, to_item
from tuichat.matrix.crypto.engine import CryptoEngine, ImportResult, Redecrypted
from tuichat.matrix.crypto.key_requests import BACKOFF_SECONDS, GRACE_SECONDS
from tuichat.matrix.crypto.nio_extensions import MEGOLM, TuichatClient
from tuichat.matrix.crypto.recovery import RecoveryStatus
from tuichat.matrix.direct_messages import DirectMessages, ProfileLookup, direct_partners
from tuichat.matrix.events import (
    ConnectionChanged,
    ConnectionState,
    DevicesChanged,
    ItemsReplaced,
    LocalEchoAdded,
    Notice,
    RecoveryOffered,
    RoomRemoved,
    RoomsChanged,
    SendStateChanged,
    Sink,
    SwitchToRoom,
    TimelineAppended,
    VerificationChanged,
)
from tuichat.matrix.http import MatrixHttpError
from tuichat.matrix.identifiers import InvalidIdentifier, parse_user
from tuichat.matrix.network import NETWORK_ERRORS
from tuichat.matrix.room_state import RoomState
from tuichat.matrix.session import Profile
from tuichat.matrix.snapshot import Snapshot, last_activity, load_snapshot
from tuichat.model.devices import DeviceInfo
from tuichat.model.items import ItemKind, SendState, TimelineItem
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.sanitize import clean_line, clean_text

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
OTHER_PROCESS_POLL = 2.0
TIMELINE_LIMIT = 50
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


def sync_filter() -> dict[str, Any]:
    return {
        "room": {
            "timeline": {"limit": TIMELINE_LIMIT},
            "state": {"lazy_load_members": False},
        },
        "presence": {"not_types": ["*"]},
    }


@dataclass
class _Outgoing:
    room_id: str
    txn_id: str
    content: dict[str, Any]
    event_type: str = "m.room.message"


@dataclass
class _SyncOutcome:
    write: SyncWrite
    changed_rooms: set[str] = field(default_factory=set)


class SyncHTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.errcode = str(body.get("errcode", ""))
        self.error = str(body.get("error", ""))
        super().__init__(f"HTTP {status} {self.errcode} {self.error}".strip())


class MatrixService:
    """One logged-in account: sync, decrypt, send, join and leave."""

    def __init__(
        self,
        profile: Profile,
        sink: Sink,
        *,
        snapshot: Snapshot | None = None,
        cache: Cache | None = None,
        sync_timeout_ms: int = SYNC_TIMEOUT_MS,
        key_request_grace: float = GRACE_SECONDS,
        key_request_backoff: tuple[float, ...] = BACKOFF_SECONDS,
    ) -> None:
        session = profile.load_session()
        if session is None:
            raise LookupError(f"no session in {profile.root}; run `tuichat login` first")
        self.profile = profile
        self.session = session
        self.user_id = session.user_id
        self._sink = sink
        self.cache = cache or Cache(profile.cache_file)
        self.snapshot = snapshot or load_snapshot(self.cache, self.user_id)
        self.states: dict[str, RoomState] = self.snapshot.states
        self.direct = DirectMessages(self.user_id, self.snapshot.m_direct)
        self.viewer = Viewer(self.user_id, self.snapshot.own_display_name)
        self.sync_token = self.snapshot.sync_token
        self.sync_timeout_ms = sync_timeout_ms
        self.key_request_grace = key_request_grace
        self.key_request_backoff = key_request_backoff
        self.client: TuichatClient | None = None
        self.crypto: CryptoEngine | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._backup_problem = ""
        self._send_queues: dict[str, asyncio.Queue[_Outgoing]] = {}
        self._send_workers: dict[str, asyncio.Task[None]] = {}
        self._outgoing: dict[str, _Outgoing] = {}
        self._pending_switch: str | None = None
        self.first_sync_done = asyncio.Event()
        self.synced_once = False
        self._state = ConnectionState.CONNECTING
        self._reported_identity_changes: set[tuple[str, str]] = set()
        self._last_activity: dict[str, int] = {
            room_id: last_activity(items) for room_id, items in self.snapshot.timelines.items()
        }

    # -- lifecycle ---------------------------------------------------------------

    def emit(self, event: Any) -> None:
        try:
            self._sink(event)
        except Exception:  # a broken sink must not stop the sync loop
            log.exception("sink failed for %s", type(event).__name__)

    def _set_state(self, state: ConnectionState, detail: str = "") -> None:
        self._state = state
        self.emit(ConnectionChanged(state, detail))

    @property
    def connection_state(self) -> ConnectionState:
        return self._state

    async def open(self) -> None:
        """Open the crypto store and make the cached rooms usable for sending."""
        self._set_state(ConnectionState.LOADING)
        self.profile.ensure()
        client = build_client(self.profile, self.session)
        session = self.session
        client.restore_login(session.user_id, session.device_id, session.access_token)
        self.profile.fix_permissions()
        self.client = client
        await self._prime_nio_rooms()
        self.crypto = CryptoEngine(
            client,
            client.extras,
            self.profile.pickle_key(),
            device_created_ms=session.created_ms,
            key_request_grace=self.key_request_grace,
            key_request_backoff=self.key_request_backoff,
        )
        # After priming: replaying cached state must not touch the restored
        # outbound sessions (they are not rotated by a restart).
        self.crypto.restore()
        self.crypto.on_verification = lambda view: self.emit(VerificationChanged(view))
        self._decrypt_cached_events()

    async def start(self) -> None:
        """Open the store (if needed) and run the sync loop in the background."""
        if self.client is None:
            await self.open()
        self._sync_task = asyncio.create_task(self._sync_loop(), name="tuichat-sync")
        self._watch_task = asyncio.create_task(self._watch_other_processes(), name="tuichat-watch")

    async def stop(self) -> None:
        tasks = [t for t in (self._sync_task, self._watch_task, *self._send_workers.values()) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            # Stopping: whatever the tasks died of was already reported.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sync_task = None
        self._send_workers.clear()
        if self.client is not None:
            await self.client.close()
        if self.crypto is not None:
            self.crypto.close()
        elif self.client is not None:
            self.client.extras.close()
        self.cache.close()
        self._set_state(ConnectionState.STOPPED)

    async def _prime_nio_rooms(self) -> None:
        """Replay the cached state into nio, which keeps no rooms between runs.

        Without this, nio would not know which rooms are encrypted or who is in
        them after a restart that continues from a stored sync token.
        """
        assert self.client is not None
        join: dict[str, Any] = {}
        invite: dict[str, Any] = {}
        for room_id, state in self.states.items():
            events = list(state.events.values())
            if state.membership is Membership.INVITE:
                invite[room_id] = {"invite_state": {"events": events}}
            else:
                join[room_id] = {
                    "state": {"events": events},
                    "timeline": {"events": [], "limited": False},
                    "summary": state.sync_summary,
                }
        if not join and not invite:
            return
        response = SyncResponse.from_dict(
            _nio_view({"next_batch": "tuichat-cache", "rooms": {"join": join, "invite": invite}})
        )
        if isinstance(response, SyncResponse):
            await self.client.receive_response(response)
        self.client.next_batch = self.sync_token or ""

    def _decrypt_cached_events(self) -> None:
        assert self.crypto is not None
        for room_id, events in self.snapshot.encrypted.items():
            state = self.states.get(room_id)
            if state is None:
                continue
            items = []
            for event in events:
                item = to_item(event, state, self.viewer, self.crypto.decrypt(room_id, event))
                if item is not None:
                    items.append(item)
            if items:
                self.emit(ItemsReplaced(room_id, items))
        self.snapshot.encrypted.clear()
        self.crypto.extras.flush()

    def _emit_redecrypted(self, results: list[Redecrypted]) -> None:
        """Turn re-decrypted events into in-place replacements, per room."""
        by_room: dict[str, list[TimelineItem]] = {}
        for result in results:
            state = self.states.get(result.room_id)
            if state is None:
                continue
            item = to_item(result.event, state, self.viewer, result.decryption)
            if item is not None:
                by_room.setdefault(result.room_id, []).append(item)
        for room_id, items in by_room.items():
            self.emit(ItemsReplaced(room_id, items))

    # -- sync loop ---------------------------------------------------------------

    async def _sync_loop(self) -> None:
        assert self.client is not None
        backoff = BACKOFF_START
        await self._upkeep()
        while True:
            first = not self.synced_once
            if first:
                self._set_state(ConnectionState.SYNCING)
            try:
                raw = await self._sync_request(0 if first else self.sync_timeout_ms)
                await self.handle_sync(raw)
            except asyncio.CancelledError:
                raise
            except SyncHTTPError as error:
                if error.errcode == "M_UNKNOWN_TOKEN":
                    self._set_state(
                        ConnectionState.STOPPED,
                        "the server logged this device out; run `tuichat login` again",
                    )
                    return
                await self._back_off(str(error), backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            except (*NETWORK_ERRORS, ValueError) as error:
                detail = str(error) or type(error).__name__
                await self._back_off(detail, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_START
            if self._state is not ConnectionState.SYNCED:
                self._set_state(ConnectionState.SYNCED)
                await self._offer_recovery()
            await self._upkeep()

    async def _back_off(self, detail: str, delay: float) -> None:
        log.info("sync failed (%s); retrying in %.0f s", detail, delay)
        self._set_state(ConnectionState.RECONNECTING, detail)
        await asyncio.sleep(delay)

    async def _sync_request(self, timeout_ms: int) -> dict[str, Any]:
        assert self.client is not None
        params = {"timeout": str(timeout_ms), "filter": json.dumps(sync_filter())}
        if self.sync_token:
            params["since"] = self.sync_token
        path = f"/_matrix/client/v3/sync?{urlencode(params)}"
        headers = {"Authorization": f"Bearer {self.session.access_token}"}
        response = await self.client.send(
            "GET", path, None, headers, timeout=timeout_ms / 1000 + 30
        )
        body = await response.read()
        try:
            data = json.loads(body)
        except ValueError:
            raise SyncHTTPError(response.status, {"error": "invalid JSON"}) from None
        if response.status != 200 or not isinstance(data, dict):
            raise SyncHTTPError(response.status, data if isinstance(data, dict) else {})
        return data

    async def handle_sync(self, raw: dict[str, Any]) -> None:
        """Process one raw sync response (also used by tests and benchmarks)."""
        assert self.client is not None
        next_batch = raw.get("next_batch")
        if not isinstance(next_batch, str):
            raise ValueError("sync response without next_batch")
        response = SyncResponse.from_dict(_nio_view(raw))
        if isinstance(response, SyncResponse):
            await self.client.receive_response(response)
        else:
            log.warning("nio rejected a sync response: %s", response)
        assert self.crypto is not None
        redecrypted = await self.crypto.handle_sync(raw)
        outcome = _SyncOutcome(SyncWrite(next_batch=next_batch))
        self._handle_account_data(raw, outcome)
        rooms = raw.get("rooms") if isinstance(raw.get("rooms"), dict) else {}
        for room_id, info in _dict_items(rooms.get("invite")):
            self._handle_invite(room_id, info, outcome)
        for room_id, info in _dict_items(rooms.get("join")):
            self._handle_joined(room_id, info, outcome)
        for room_id, _info in _dict_items(rooms.get("leave")):
            self._handle_left(room_id, outcome)
        self._emit_redecrypted(redecrypted)
        self.cache.commit_sync(outcome.write)
        self.crypto.extras.flush()
        self.sync_token = next_batch
        self._emit_summaries(outcome.changed_rooms)
        self._report_device_news()
        self.synced_once = True
        self.first_sync_done.set()
        pending = self.states.get(self._pending_switch or "")
        if pending is not None and pending.membership is Membership.JOIN:
            self.emit(SwitchToRoom(pending.room_id))
            self._pending_switch = None

    def summary(self, room_id: str) -> RoomSummary:
        """The room's summary, with the trust state of its members' devices."""
        state = self.states[room_id]
        summary = state.summary(self.user_id, self._activity(room_id))
        if state.encrypted and self.crypto is not None:
            summary = summary.evolve(
                unverified_devices=self.crypto.unverified_devices(state.members()),
                verified_only=self.crypto.verified_only(room_id),
            )
        return summary

    def _emit_summaries(self, room_ids: set[str]) -> None:
        changed = [self.summary(r) for r in room_ids if r in self.states]
        if changed:
            self.emit(RoomsChanged(changed))

    def _rooms_with(self, users: set[str]) -> set[str]:
        return {
            room_id
            for room_id, state in self.states.items()
            if state.encrypted
            and state.membership is Membership.JOIN
            and users.intersection(state.members())
        }

    def _report_device_news(self) -> None:
        """Device lists or trust changed: refresh views, and say in each
        encrypted room when a member gained a device, or a known device's
        keys changed (tuichat then stops encrypting to it)."""
        if self.crypto is None:
            return
        users, new_devices = self.crypto.take_device_news()
        changed_identity = self.crypto.olm.identity_changed - self._reported_identity_changes
        self._reported_identity_changes |= changed_identity
        users |= {user for user, _ in changed_identity}
        if not users:
            return
        self.emit(DevicesChanged(frozenset(users)))
        notices: dict[str, list[TimelineItem]] = {}
        now = int(time.time() * 1000)
        for user_id, device_id in new_devices:
            for room_id in self._rooms_with({user_id}):
                name = self.states[room_id].member_name(user_id)
                notices.setdefault(room_id, []).append(
                    _notice(
                        f"newdevice:{user_id}:{device_id}",
                        f"{name} signed in on a new device ({clean_line(device_id)}), "
                        "not verified yet — /devices to check it",
                        now,
                    )
                )
        for user_id, device_id in changed_identity:
            for room_id in self._rooms_with({user_id}):
                name = self.states[room_id].member_name(user_id)
                notices.setdefault(room_id, []).append(
                    _notice(
                        f"keyschanged:{user_id}:{device_id}",
                        f"Warning: the keys of {name}'s device {clean_line(device_id)} changed. "
                        "tuichat no longer encrypts to it; verify it again to be sure.",
                        now,
                        highlight=True,
                    )
                )
        for room_id, items in notices.items():
            self.emit(TimelineAppended(room_id, items))
        self._emit_summaries(self._rooms_with(users))

    def _activity(self, room_id: str) -> int:
        return self._last_activity.get(room_id, 0)

    def _handle_account_data(self, raw: dict[str, Any], outcome: _SyncOutcome) -> None:
        account_data = raw.get("account_data")
        events = account_data.get("events") if isinstance(account_data, dict) else None
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, dict) or event.get("type") != "m.direct":
                continue
            content = event.get("content") if isinstance(event.get("content"), dict) else {}
            outcome.write.account_data["m.direct"] = content
            self._set_direct(content, outcome.changed_rooms)

    def _set_direct(self, content: object, changed: set[str]) -> None:
        self.direct.replace(content)
        direct = self.direct.room_ids()
        for room_id, state in self.states.items():
            if state.is_direct != (room_id in direct):
                state.is_direct = room_id in direct
                changed.add(room_id)

    def _state_for(self, room_id: str, membership: Membership) -> RoomState:
        state = self.states.get(room_id)
        if state is None or state.membership is not membership:
            # New, or an accepted invite: nothing of the stripped invite state
            # is kept; the joined room's full state follows in the same sync.
            state = RoomState(room_id, membership)
            state.is_direct = room_id in self.direct.room_ids()
            self.states[room_id] = state
        return state

    def _handle_invite(self, room_id: str, info: dict[str, Any], outcome: _SyncOutcome) -> None:
        state = self._state_for(room_id, Membership.INVITE)
        invite_state = info.get("invite_state")
        events = invite_state.get("events") if isinstance(invite_state, dict) else None
        state_events = [e for e in events or [] if isinstance(e, dict) and state.apply(e)]
        outcome.write.rooms[room_id] = RoomWrite(membership="invite", state=state_events)
        outcome.changed_rooms.add(room_id)

    def _handle_joined(self, room_id: str, info: dict[str, Any], outcome: _SyncOutcome) -> None:
        assert self.client is not None
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
        assert self.crypto is not None
        for event in events:
            decryption: Decryption | None = None
            if event.get("type") == "m.room.encrypted":
                decryption = self.crypto.decrypt(room_id, event)
            item = to_item(event, state, self.viewer, decryption)
            if item is not None:
                items.append(item)
        if state_events:
            outcome.changed_rooms.add(room_id)
            self._note_own_name(state)
        limited = bool(timeline.get("limited"))
        prev_batch = timeline.get("prev_batch")
        outcome.write.rooms[room_id] = RoomWrite(
            membership="join",
            summary=summary or None,
            state=state_events,
            events=events,
            replace_timeline=limited,
            prev_batch=prev_batch if isinstance(prev_batch, str) else None,
        )
        if items or limited:
            activity = last_activity(items)
            if activity > self._activity(room_id):
                self._last_activity[room_id] = activity
                outcome.changed_rooms.add(room_id)
            self.emit(TimelineAppended(room_id, items, limited=limited))
        if room_id not in self.snapshot.timelines:
            self.snapshot.timelines[room_id] = []
            outcome.changed_rooms.add(room_id)

    def _rotate_if_needed(self, room_id: str, state_events: list[dict[str, Any]]) -> None:
        """Start a new outbound session when someone may no longer read along:
        a member left, was kicked or banned, or history visibility changed."""
        assert self.crypto is not None
        for event in state_events:
            event_type = event.get("type")
            content = event.get("content") if isinstance(event.get("content"), dict) else {}
            if event_type == "m.room.member" and content.get("membership") in ("leave", "ban"):
                self.crypto.rotate(room_id, f"{event.get('state_key')} left")
            elif event_type == "m.room.history_visibility":
                self.crypto.rotate(room_id, "history visibility changed")
            elif event_type == "m.room.encryption":
                self.crypto.rotate(room_id, "encryption settings changed")

    def _note_own_name(self, state: RoomState) -> None:
        name = state.content("m.room.member", self.user_id).get("displayname")
        if isinstance(name, str) and name and name != self.viewer.display_name:
            self.viewer = Viewer(self.user_id, name)

    def _handle_left(self, room_id: str, outcome: _SyncOutcome) -> None:
        if self.states.pop(room_id, None) is not None or room_id in outcome.write.rooms:
            outcome.write.rooms.pop(room_id, None)
            outcome.changed_rooms.discard(room_id)
            outcome.write.removed_rooms.append(room_id)
            if self.client is not None:
                self.client.rooms.pop(room_id, None)
                self.client.invited_rooms.pop(room_id, None)
            self.emit(RoomRemoved(room_id))

    # -- encryption upkeep -------------------------------------------------------

    async def _upkeep(self) -> None:
        assert self.crypto is not None
        self._emit_redecrypted(await self.crypto.upkeep())
        self._report_device_news()
        problem = self.crypto.backup.problem
        if problem and problem != self._backup_problem:
            self.emit(Notice(f"Key backup: {problem}", error=True))
        self._backup_problem = problem

    # -- sending -----------------------------------------------------------------

    def own_name(self, room_id: str) -> str:
        state = self.states.get(room_id)
        return state.member_name(self.user_id) if state else self.user_id

    def send_text(self, room_id: str, body: str, *, emote: bool = False) -> str:
        """Send a text message with a local echo; returns its transaction id."""
        content = {"msgtype": "m.emote" if emote else "m.text", "body": body}
        txn_id = f"tuichat-{uuid.uuid4().hex}"
        state = self.states.get(room_id)
        echo = TimelineItem(
            key=f"txn:{txn_id}",
            sender=self.user_id,
            sender_name=self.own_name(room_id),
            timestamp=int(time.time() * 1000),
            kind=ItemKind.EMOTE if emote else ItemKind.TEXT,
            body=clean_text(body),
            txn_id=txn_id,
            encrypted=bool(state and state.encrypted),
            send_state=SendState.PENDING,
        )
        self.emit(LocalEchoAdded(room_id, echo))
        self._enqueue(_Outgoing(room_id, txn_id, content))
        return txn_id

    def retry(self, room_id: str, txn_id: str) -> bool:
        """Send a failed message again, with the same transaction id, so a
        retry after a lost response cannot duplicate it."""
        outgoing = self._outgoing.get(txn_id)
        if outgoing is None:
            return False
        self.emit(SendStateChanged(room_id, txn_id, SendState.PENDING))
        self._enqueue(outgoing)
        return True

    def _enqueue(self, outgoing: _Outgoing) -> None:
        self._outgoing[outgoing.txn_id] = outgoing
        queue = self._send_queues.get(outgoing.room_id)
        if queue is None:
            queue = self._send_queues[outgoing.room_id] = asyncio.Queue()
        queue.put_nowait(outgoing)
        worker = self._send_workers.get(outgoing.room_id)
        if worker is None or worker.done():
            self._send_workers[outgoing.room_id] = asyncio.create_task(
                self._send_worker(queue), name=f"tuichat-send-{outgoing.room_id}"
            )

    async def _send_worker(self, queue: asyncio.Queue[_Outgoing]) -> None:
        """Send one room's messages strictly in order."""
        while not queue.empty():
            outgoing = queue.get_nowait()
            await self._send_one(outgoing)

    async def _send_one(self, outgoing: _Outgoing) -> None:
        room_id, txn_id = outgoing.room_id, outgoing.txn_id
        error = ""
        try:
            response = await self._send_event(room_id, outgoing)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is shown, retryable
            log.warning("sending %s failed: %s", txn_id, exc)
            error = str(exc) or type(exc).__name__
        else:
            if isinstance(response, RoomSendResponse):
                self._outgoing.pop(txn_id, None)
                self.emit(SendStateChanged(room_id, txn_id, SendState.SENT, response.event_id))
                return
            error = getattr(response, "message", "") or str(response)
        self.emit(SendStateChanged(room_id, txn_id, SendState.FAILED, error=error))

    async def _send_event(self, room_id: str, outgoing: _Outgoing) -> Any:
        """Encrypt if *tuichat's* state says the room is encrypted (never
        trusting a second opinion to send plaintext), then PUT the event."""
        client, crypto = self.client, self.crypto
        if client is None or crypto is None:
            raise RuntimeError("not connected yet")
        if room_id not in self.states:
            await asyncio.wait_for(self.first_sync_done.wait(), timeout=60)
        state = self.states.get(room_id)
        if state is None or state.membership is not Membership.JOIN:
            raise RuntimeError("you are not in this room")
        event_type, content = outgoing.event_type, outgoing.content
        if state.encrypted:
            content = await crypto.encrypt(
                room_id,
                state.members(("join", "invite")),
                state.content("m.room.encryption"),
                event_type,
                content,
            )
            event_type = "m.room.encrypted"
        method, path, data = Api.room_send(
            client.access_token, room_id, event_type, content, outgoing.txn_id
        )
        return await client._send(RoomSendResponse, method, path, data, (room_id,))

    # -- rooms -------------------------------------------------------------------

    async def join(self, room: str) -> str | None:
        """Join `#alias:server` or `!id:server`; the UI switches there once the
        room arrives in sync."""
        assert self.client is not None
        response = await _quietly(self.client.join(room), f"joining {room}")
        if response is None or isinstance(response, JoinError):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not join {room}: {message}", error=True))
            return None
        room_id = str(response.room_id)
        state = self.states.get(room_id)
        if state is not None and state.membership is Membership.JOIN:
            self.emit(SwitchToRoom(room_id))
        else:
            self._pending_switch = room_id
        return room_id

    async def create_room(
        self,
        *,
        name: str | None = None,
        invite: tuple[str, ...] = (),
        encrypted: bool = True,
        direct: bool = False,
    ) -> str | None:
        """Create a private room (encrypted from its first event unless asked
        otherwise) and invite `invite`; returns its id, or None (and a Notice)."""
        assert self.client is not None
        initial_state = []
        if encrypted:
            initial_state.append(
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        response = await _quietly(
            self.client.room_create(
                name=name,
                invite=list(invite),
                is_direct=direct,
                preset=RoomPreset.trusted_private_chat if direct else RoomPreset.private_chat,
                initial_state=initial_state,
            ),
            "creating a room",
        )
        if not isinstance(response, RoomCreateResponse):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not create the room: {message}", error=True))
            return None
        self._pending_switch = response.room_id
        return str(response.room_id)

    async def lookup_profile(self, user_id: str) -> ProfileLookup:
        """Check a user id and fetch the person's display name."""
        assert self.client is not None
        try:
            parse_user(user_id, require_server=True)
        except InvalidIdentifier as error:
            return ProfileLookup(user_id, None, str(error))
        response = await _quietly(self.client.get_profile(user_id), "looking up a profile")
        if isinstance(response, ProfileGetResponse):
            name = clean_line(response.displayname) or None
            return ProfileLookup(user_id, name, None)
        if response is None:
            return ProfileLookup(user_id, None, "the server could not be reached")
        transport = getattr(response, "transport_response", None)
        if getattr(response, "status_code", "") == "M_NOT_FOUND" or (
            transport is not None and transport.status == 404
        ):
            return ProfileLookup(user_id, None, f"there is no user {user_id}")
        return ProfileLookup(user_id, None, getattr(response, "message", "") or "lookup failed")

    async def create_dm(self, user_ids: list[str]) -> str | None:
        """Open an encrypted DM with `user_ids` (or switch to the existing DM
        with that one person); returns the room id, or None with a Notice."""
        assert self.client is not None
        wanted = list(dict.fromkeys(u.strip() for u in user_ids if u.strip()))
        if not wanted:
            self.emit(Notice("Usage: /dm @user:server [@user2:server …]", error=True))
            return None
        for user_id in wanted:
            lookup = await self.lookup_profile(user_id)
            if lookup.error:
                self.emit(Notice(f"No DM created: {lookup.error}", error=True))
                return None
            if user_id == self.user_id:
                self.emit(Notice("No DM created: that is you", error=True))
                return None
        if len(wanted) == 1:
            existing = self.direct.find_existing(wanted[0], self.states)
            if existing is not None:
                self.emit(SwitchToRoom(existing))
                return existing
        room_id = await self.create_room(invite=tuple(wanted), encrypted=True, direct=True)
        if room_id is not None:
            await self._record_direct(wanted, room_id)
        return room_id

    async def _record_direct(self, user_ids: list[str], room_id: str) -> None:
        """Add the room to m.direct on the server (and here, at once)."""
        assert self.client is not None
        content = self.direct.with_room(user_ids, room_id)
        method, path, body = self.direct.account_data_request(content)
        headers = {"Authorization": f"Bearer {self.session.access_token}"}
        try:
            response = await self.client.send(method, path, body, headers)
            ok = response.status == 200
            response.release()
        except NETWORK_ERRORS as error:
            log.warning("updating m.direct failed: %s", error)
            ok = False
        if not ok:
            self.emit(Notice("Could not record the DM in your account data", error=True))
            return
        changed: set[str] = set()
        self._set_direct(content, changed)
        self.cache.set_account_data("m.direct", content)
        self._emit_summaries(changed)

    async def accept_invite(self, room_id: str) -> bool:
        state = self.states.get(room_id)
        direct = state is not None and state.invited_as_direct(self.user_id)
        partners = direct_partners(state, self.user_id) if state is not None else []
        joined = await self.join(room_id)
        if joined is None:
            return False
        if direct and partners:
            await self._record_direct(partners, room_id)
        return True

    async def decline_invite(self, room_id: str) -> bool:
        return await self.leave(room_id)

    async def invite(self, room_id: str, user_id: str) -> bool:
        assert self.client is not None
        lookup = await self.lookup_profile(user_id)
        if lookup.error:
            self.emit(Notice(f"Nobody invited: {lookup.error}", error=True))
            return False
        response = await _quietly(self.client.room_invite(room_id, user_id), "inviting")
        if not isinstance(response, RoomInviteResponse):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not invite {user_id}: {message}", error=True))
            return False
        self.emit(Notice(f"Invited {lookup.display_name or user_id}."))
        return True

    async def leave(self, room_id: str) -> bool:
        assert self.client is not None
        response = await _quietly(self.client.room_leave(room_id), "leaving")
        if response is None or isinstance(response, RoomLeaveError):
            message = getattr(response, "message", "") or "the server could not be reached"
            self.emit(Notice(f"Could not leave the room: {message}", error=True))
            return False
        return True

    # -- devices and verification ------------------------------------------------------

    async def devices(self, user_id: str) -> list[DeviceInfo]:
        """A user's devices with fingerprints and trust (fetched if unknown);
        for our own devices also where and when they were last seen."""
        assert self.client is not None and self.crypto is not None
        olm = self.crypto.olm
        if user_id not in olm.tracked_users or user_id in olm.users_for_key_query:
            olm.users_for_key_query.add(user_id)
            self._emit_redecrypted(await self.crypto.query_keys())
        infos = self.crypto.device_infos(user_id)
        if user_id == self.user_id:
            response = await _quietly(self.client.devices(), "listing devices")
            seen = {d.id: d for d in getattr(response, "devices", []) or []}
            infos = [
                replace(
                    info,
                    display_name=clean_line(getattr(seen.get(info.device_id), "display_name", ""))
                    or info.display_name,
                    last_seen_ip=clean_line(getattr(seen.get(info.device_id), "last_seen_ip", ""))
                    or None,
                    last_seen_ts=_ms(getattr(seen.get(info.device_id), "last_seen_date", None)),
                )
                for info in infos
            ]
        return infos

    def set_device_trust(self, user_id: str, device_id: str, action: str) -> bool:
        assert self.crypto is not None
        done = self.crypto.set_trust(user_id, device_id, action)
        if done:
            self._report_device_news()
        return done

    def set_verified_only(self, room_id: str | None, on: bool) -> None:
        """Send room keys only to verified devices: in one room, or by default."""
        assert self.crypto is not None
        self.crypto.set_verified_only(room_id, on)
        rooms = {room_id} if room_id else {r for r, s in self.states.items() if s.encrypted}
        self._emit_summaries(rooms)

    async def request_verification(self, user_id: str, device_id: str | None = None) -> str:
        """Start emoji verification with a device (or all devices) of a user."""
        assert self.crypto is not None
        return await self.crypto.verifications.request(user_id, device_id)

    async def start_legacy_verification(self, user_id: str, device_id: str) -> str:
        assert self.crypto is not None
        return await self.crypto.verifications.start_legacy(user_id, device_id)

    async def accept_verification(self, transaction_id: str) -> None:
        assert self.crypto is not None
        await self.crypto.verifications.accept(transaction_id)

    async def confirm_verification(self, transaction_id: str) -> None:
        assert self.crypto is not None
        await self.crypto.verifications.confirm(transaction_id)
        self._report_device_news()

    async def reject_verification(self, transaction_id: str) -> None:
        """The emoji do not match."""
        assert self.crypto is not None
        await self.crypto.verifications.mismatch(transaction_id)

    async def cancel_verification(self, transaction_id: str) -> None:
        assert self.crypto is not None
        await self.crypto.verifications.cancel(transaction_id)

    # -- recovery and key backup ----------------------------------------------------------

    async def recovery_status(self) -> RecoveryStatus:
        assert self.crypto is not None
        return await self.crypto.recovery.status()

    async def recover(
        self,
        *,
        recovery_key: str | None = None,
        passphrase: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportResult:
        """Unlock secret storage, take the backup key, restore every session
        and fill in what they unlock. A wrong key raises SecretStorageError
        and changes nothing."""
        assert self.crypto is not None
        recovery = self.crypto.recovery
        key = await recovery.unlock(recovery_key=recovery_key, passphrase=passphrase)
        await recovery.unlock_backup(key)
        result, redecrypted = await self.crypto.restore_backup(progress)
        self._emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        return result

    async def setup_recovery(self, passphrase: str | None = None) -> str:
        """Create secret storage and a key backup; returns the recovery key,
        to be shown once."""
        assert self.crypto is not None
        recovery_key, _key, _key_id = await self.crypto.recovery.setup(passphrase)
        await self._upkeep()
        return recovery_key

    async def _offer_recovery(self) -> None:
        """At the first start of a new device on an account with secret
        storage, ask once whether to recover encrypted history."""
        assert self.crypto is not None
        extras = self.crypto.extras
        if extras.get("recovery_offered") or self.crypto.backup.unlocked:
            return
        try:
            status = await self.crypto.recovery.status()
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("checking for secret storage failed: %s", error)
            return
        extras.set("recovery_offered", "1")
        if status.has_secret_storage and status.backup is not None:
            self.emit(RecoveryOffered(status.backup.count))

    async def _watch_other_processes(self) -> None:
        """Keys imported by another process (tuichat recover) reach us here."""
        while True:
            await asyncio.sleep(OTHER_PROCESS_POLL)
            if self.crypto is not None:
                self._emit_redecrypted(self.crypto.reload_if_changed())

    # -- keys ----------------------------------------------------------------------

    async def export_keys(self, path: Path, passphrase: str) -> int:
        """Export every room key this device holds; returns how many."""
        assert self.crypto is not None
        return await self.crypto.export_keys(path, passphrase)

    async def import_keys(
        self, text: str, passphrase: str, progress: Callable[[int, int], None] | None = None
    ) -> ImportResult:
        """Import a key export; placeholders the keys unlock fill in at once.
        Raises KeyFileError, changing nothing, for a wrong passphrase or a
        damaged file."""
        assert self.crypto is not None
        result, redecrypted = await self.crypto.import_keys(text, passphrase, progress)
        self._emit_redecrypted(redecrypted)
        self.crypto.extras.flush()
        return result

    def verify_device(self, user_id: str, device_id: str) -> bool:
        """Mark a device verified; its waiting key requests are answered."""
        return self.set_device_trust(user_id, device_id, "verify")

    def set_read_marker(self, room_id: str, event_id: str) -> None:
        self.cache.set_read_marker(room_id, event_id)

    def room_state(self, room_id: str) -> RoomState | None:
        return self.states.get(room_id)


def _notice(key: str, text: str, timestamp: int, *, highlight: bool = False) -> TimelineItem:
    """A line in the timeline that is tuichat's own, not an event."""
    return TimelineItem(
        key=f"notice:{key}",
        sender="",
        sender_name="tuichat",
        timestamp=timestamp,
        kind=ItemKind.STATE,
        body=text,
        highlight=highlight,
    )


def _ms(value: object) -> int | None:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else None


async def _quietly(call: Any, what: str) -> Any:
    """Await a nio request; a network failure becomes None (logged)."""
    try:
        return await call
    except NETWORK_ERRORS as error:
        log.warning("%s failed: %s", what, error)
        return None


def _dict_items(value: object) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(value, dict):
        return []
    return [(k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, dict)]


def _nio_view(raw: dict[str, Any]) -> dict[str, Any]:
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
            join[room_id] = info
        rooms["join"] = join
    return view
