"""Shared state and helpers of the Matrix service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tuichat.matrix.account.session import Profile
from tuichat.matrix.account.tokens import RefreshUnavailable, TokenKeeper
from tuichat.matrix.content.convert import Decryption, Viewer, to_item
from tuichat.matrix.content.direct_messages import DirectMessages
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.engine import CryptoEngine, Redecrypted
from tuichat.matrix.crypto.key_requests import BACKOFF_SECONDS, GRACE_SECONDS
from tuichat.matrix.crypto.nio_extensions import TuichatClient
from tuichat.matrix.storage.cache import Cache
from tuichat.matrix.storage.outbox import Outbox
from tuichat.matrix.storage.snapshot import Snapshot, load_snapshot
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import (
    ConnectionChanged,
    ConnectionState,
    ItemsReplaced,
    Notice,
    RoomsChanged,
    Sink,
)
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.sanitize import clean_line
from tuichat.model.verification import VerificationView

log = logging.getLogger(__name__)


SYNC_TIMEOUT_MS = 30_000
LOGGED_OUT = "the server logged this device out; run `tuichat login` again"
LOGGED_OUT_NOTICE = (
    "The server logged this device out. Quit and run `tuichat login` with this profile: "
    "it logs in again as the same device, keeping its keys, cache and unsent messages."
)


@dataclass
class Outgoing:
    """A message on its way out: kept until the server confirms it."""

    room_id: str
    txn_id: str
    content: dict[str, Any]
    event_type: str = "m.room.message"


class ServiceBase:
    """State every part of the service shares, and the few operations they
    all use. The parts are mixins in the modules beside this one."""

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
        # The access token in use and its refresh (tuichat/matrix/account/tokens.py).
        self.tokens: TokenKeeper | None = None
        self._token_task: asyncio.Task[None] | None = None
        self._backup_problem = ""
        self._send_queues: dict[str, asyncio.Queue[Outgoing]] = {}
        self._send_workers: dict[str, asyncio.Task[None]] = {}
        self._outgoing: dict[str, Outgoing] = {}
        self._pending_switch: str | None = None
        self._history_locks: dict[str, asyncio.Lock] = {}
        # Read markers to send, and the task sending them, per room.
        self._read_wanted: dict[str, str] = {}
        self._read_tasks: dict[str, asyncio.Task[None]] = {}
        self.outbox = Outbox(profile.root, profile.pickle_key())
        # Limited syncs (gaps) seen per room: a history page fetched before
        # the latest gap belongs to a timeline that was replaced.
        self._gaps: dict[str, int] = {}
        # Clear while a sync has counted gaps and shown their rooms' newest
        # events but not yet queued its cache writes (it yields between
        # rooms): the cache still holds the timelines it replaces.
        self._sync_writes_queued = asyncio.Event()
        self._sync_writes_queued.set()
        self.first_sync_done = asyncio.Event()
        self.synced_once = False
        self._state = ConnectionState.CONNECTING
        self._reported_identity_changes: set[tuple[str, str]] = set()
        # Display names found by profile look-ups (already sanitised).
        self._profile_names: dict[str, str] = {}
        # Verification requests that came unsolicited (see VerificationView).
        self._unsolicited_verifications: set[str] = set()
        self._judged_verifications: set[str] = set()
        # Shared with the snapshot: rooms loaded later update it too.
        self._last_activity: dict[str, int] = self.snapshot.last_activity

    def emit(self, event: Any) -> None:
        try:
            self._sink(event)
        except Exception:  # a broken sink must not stop the sync loop
            log.exception("sink failed for %s", type(event).__name__)

    def _set_state(self, state: ConnectionState, detail: str = "") -> None:
        self._state = state
        self.emit(ConnectionChanged(state, detail))

    async def _recover_token(self, used: str, soft_logout: bool) -> bool:
        """After a request made with the access token `used` was answered
        `M_UNKNOWN_TOKEN`: True when it can be made again with a refreshed
        token; False after a real logout (then reported, and sync stopped).
        A refresh that cannot be done now waits a moment and says True: the
        request is tried again."""
        if self.tokens is None:
            return False
        try:
            fresh = await self.tokens.recover(used, soft_logout)
        except RefreshUnavailable as error:
            log.info("refreshing the access token failed (%s)", error)
            await asyncio.sleep(1.0)
            return True
        if not fresh:
            self._logged_out_by_server()
        return fresh

    def _logged_out_by_server(self) -> None:
        """The server ended this device's session: stop syncing and say so,
        with what to do. The profile (keys, cache, outbox) stays as it is."""
        if self._state is ConnectionState.STOPPED:
            return
        log.warning("the server logged this device out")
        self._set_state(ConnectionState.STOPPED, LOGGED_OUT)
        self.emit(Notice(LOGGED_OUT_NOTICE, error=True))
        task = self._sync_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    @property
    def connection_state(self) -> ConnectionState:
        return self._state

    def _activity(self, room_id: str) -> int:
        return self._last_activity.get(room_id, 0)

    def summary(self, room_id: str) -> RoomSummary:
        """The room's summary, with the trust state of its members' devices."""
        state = self.states[room_id]
        summary = state.summary(self.user_id, self._activity(room_id))
        if state.is_direct and not (state.name or state.canonical_alias):
            summary = self._named_after_partners(room_id, state, summary)
        if state.encrypted and self.crypto is not None:
            members = state.members()
            devices, keyless = self.crypto.devices_and_keyless(members)
            summary = summary.evolve(
                unverified_devices=self.crypto.unverified_devices(members),
                verified_only=self.crypto.verified_only(room_id),
                devices=devices,
                members_without_devices=keyless,
            )
        return summary

    def _named_after_partners(
        self, room_id: str, state: RoomState, summary: RoomSummary
    ) -> RoomSummary:
        """A DM whose state names nobody else yet (a sync can bring a new
        room's first events before the invite) is named after the people
        m.direct lists it under, not "Empty Room"."""
        if state.heroes(self.user_id):
            return summary
        partners = [user for user in self.direct.partners(room_id) if user != self.user_id]
        if not partners:
            return summary
        names = [self._profile_names.get(user) or clean_line(user) for user in partners]
        return summary.evolve(name=", ".join(names))

    def _emit_summaries(self, room_ids: set[str]) -> None:
        changed = [self.summary(r) for r in room_ids if r in self.states]
        if changed:
            self.emit(RoomsChanged(changed))

    async def _emit_summaries_in_slices(self, room_ids: set[str], batch: int = 50) -> None:
        """`_emit_summaries` for hundreds of rooms (a large sync): a batch at
        a time, with the loop free to draw between batches."""
        pending = [r for r in room_ids if r in self.states]
        for start in range(0, len(pending), batch):
            if start:
                await asyncio.sleep(0)
            self.emit(RoomsChanged([self.summary(r) for r in pending[start : start + batch]]))

    def _rooms_with(self, users: set[str]) -> set[str]:
        return {
            room_id
            for room_id, state in self.states.items()
            if state.encrypted
            and state.membership is Membership.JOIN
            and users.intersection(state.members())
        }

    def _emit_redecrypted(self, results: list[Redecrypted]) -> None:
        """Turn re-decrypted events into in-place replacements, per room."""
        by_room: dict[str, list[tuple[dict[str, Any], Decryption]]] = {}
        for result in results:
            by_room.setdefault(result.room_id, []).append((result.event, result.decryption))
        for room_id, decrypted in by_room.items():
            self._emit_decrypted(room_id, decrypted)

    def _emit_decrypted(
        self, room_id: str, decrypted: Iterable[tuple[dict[str, Any], Decryption]]
    ) -> None:
        """Events shown as placeholders, decrypted now (or failed for a
        reason): replaced in place, or taken out when what they decrypted
        to is not shown, the same decision as for an event that arrives
        decrypted (one `to_item` for both). Every placeholder handed here
        ends as one or the other."""
        state = self.states.get(room_id)
        if state is None:
            return
        items: list[TimelineItem] = []
        hidden: list[str] = []
        for event, decryption in decrypted:
            item = to_item(event, state, self.viewer, decryption)
            if item is not None:
                items.append(item)
            elif isinstance(event.get("event_id"), str):
                hidden.append(event["event_id"])
        if items or hidden:
            self.emit(ItemsReplaced(room_id, items, tuple(hidden)))

    def room_state(self, room_id: str) -> RoomState | None:
        return self.states.get(room_id)

    async def _upkeep(self) -> None:
        raise NotImplementedError  # syncing.py

    def _report_device_news(self) -> None:
        raise NotImplementedError  # trust.py

    def _report_verification(self, view: VerificationView) -> None:
        raise NotImplementedError  # trust.py

    def _send_content(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        raise NotImplementedError  # sending.py

    def _handle_ephemeral(
        self, room_id: str, info: dict[str, Any], state: RoomState
    ) -> dict[str, str]:
        raise NotImplementedError  # read_state.py


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
