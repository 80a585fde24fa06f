"""`MatrixService`, the one object the UI talks to: a thin facade over the
service's parts (`wiring.py` builds them), keeping one public surface.

Importing this module imports neither nio nor the parts: they are imported
when first needed, and `open()` imports them on a thread so the UI keeps
drawing meanwhile."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuichat.matrix.service import key_files
from tuichat.matrix.service.api import PAGE_SIZE, SYNC_TIMEOUT_MS, Approve
from tuichat.matrix.service.outcome import Failed, Outcome
from tuichat.model.polls import PollStart, response_content
from tuichat.model.push_rules import RoomMode

if TYPE_CHECKING:
    from tuichat.matrix.account.session import Profile, Session
    from tuichat.matrix.content.direct_messages import ProfileLookup
    from tuichat.matrix.content.room_state import RoomState
    from tuichat.matrix.crypto.engine import CryptoEngine, ImportResult
    from tuichat.matrix.crypto.nio_extensions import TuichatClient
    from tuichat.matrix.crypto.recovery import RecoveryStatus
    from tuichat.matrix.service.account_context import AccountContext
    from tuichat.matrix.service.wiring import Parts
    from tuichat.matrix.storage.cache import Cache
    from tuichat.matrix.storage.snapshot import Snapshot
    from tuichat.matrix.transport.media import Progress
    from tuichat.model.dehydration import DehydrationState
    from tuichat.model.devices import DeviceInfo
    from tuichat.model.events import ConnectionState, Sink
    from tuichat.model.items import Attachment, TimelineItem
    from tuichat.model.power_levels import PowerLevels
    from tuichat.model.rooms import RoomSummary
    from tuichat.model.search_query import SearchCursor, SearchPage, SearchQuery
    from tuichat.model.space_tree import HierarchyRoom

_WIRING = "tuichat.matrix.service.wiring"


class MatrixService:
    """One logged-in account: sync, decrypt, send, rooms, devices, keys.

    Every call is passed to the part that does the job (`self.parts`);
    what they share is the `AccountContext`."""

    def __init__(
        self,
        profile: Profile,
        sink: Sink,
        *,
        snapshot: Snapshot | None = None,
        cache: Cache | None = None,
        sync_timeout_ms: int = SYNC_TIMEOUT_MS,
        key_request_grace: float | None = None,
        key_request_backoff: tuple[float, ...] | None = None,
    ) -> None:
        from tuichat.matrix.service.account_context import AccountContext
        from tuichat.matrix.service.run_control import RunControl
        from tuichat.matrix.storage.cache import Cache
        from tuichat.matrix.storage.outbox import Outbox
        from tuichat.matrix.storage.snapshot import load_snapshot

        session = profile.load_session()
        if session is None:
            raise LookupError(f"no session in {profile.root}; run `tuichat login` first")
        self.profile = profile
        self.user_id = session.user_id
        cache = cache or Cache(profile.cache_file)
        snapshot = snapshot or load_snapshot(cache, self.user_id)
        self._context: AccountContext = AccountContext(profile, session, sink, cache, snapshot)
        self.outbox = Outbox(profile.root, profile.pickle_key())
        # None: the defaults of tuichat/matrix/crypto/key_requests.py.
        self.key_request_grace = key_request_grace
        self.key_request_backoff = key_request_backoff
        self._sync_timeout_ms = sync_timeout_ms
        self._parts: Parts | None = None
        self._shown_room: str | None = None  # issue 25
        self._running = RunControl(self._context, self.outbox)

    @property
    def parts(self) -> Parts:
        """The parts, built (and nio imported) on first use."""
        if self._parts is None:
            from tuichat.matrix.service.wiring import build_parts

            self._parts = build_parts(
                self._context,
                self.outbox,
                stop_syncing=self._running.stop_syncing,
                sync_timeout_ms=self._sync_timeout_ms,
                key_request_grace=self.key_request_grace,
                key_request_backoff=self.key_request_backoff,
            )
            if self._shown_room is not None:  # issue 25
                self._parts.syncing.show_room(self._shown_room)
        return self._parts

    # -- shared state, read through the context ----------------------------------

    @property
    def session(self) -> Session:
        return self._context.session

    @property
    def cache(self) -> Cache:
        return self._context.cache

    @property
    def snapshot(self) -> Snapshot:
        return self._context.snapshot

    @property
    def states(self) -> dict[str, RoomState]:
        return self._context.states

    @property
    def client(self) -> TuichatClient | None:
        return self._context.client

    @property
    def crypto(self) -> CryptoEngine | None:
        return self._context.crypto

    @property
    def first_sync_done(self) -> asyncio.Event:
        return self._context.first_sync_done

    @property
    def synced_once(self) -> bool:
        return self._context.synced_once

    @property
    def connection_state(self) -> ConnectionState:
        return self._context.state

    @property
    def sync_timeout_ms(self) -> int:
        return self._sync_timeout_ms

    @sync_timeout_ms.setter
    def sync_timeout_ms(self, value: int) -> None:
        self._sync_timeout_ms = value
        if self._parts is not None:
            self._parts.syncing.timeout_ms = value

    @property
    def _sink(self) -> Sink:
        return self._context.sink

    @_sink.setter
    def _sink(self, sink: Sink) -> None:
        self._context.sink = sink

    def emit(self, event: Any) -> None:
        self._context.emit(event)

    def room_state(self, room_id: str) -> RoomState | None:
        return self._context.states.get(room_id)

    def summary(self, room_id: str) -> RoomSummary:
        """The room's summary, with the trust state of its members' devices."""
        return self.parts.views.summary(room_id)

    # -- running -----------------------------------------------------------------

    async def open(self) -> None:
        """Open the crypto store and make the cached rooms usable for sending."""
        if self._parts is None and _WIRING not in sys.modules:
            # nio costs half a second: imported on a thread, the UI draws on.
            await asyncio.to_thread(importlib.import_module, _WIRING)
        await self.parts.opener.open()

    async def start(self) -> None:
        """Open the store (if needed) and run the sync loop in the background."""
        if self.client is None:
            await self.open()
        self._running.start(self.parts)

    @property
    def _sync_task(self) -> asyncio.Task[None] | None:
        return self._running.sync_task

    @property
    def _token_task(self) -> asyncio.Task[None] | None:
        return self._running.token_task

    async def stop(self) -> None:
        if self._parts is not None:
            await self._parts.search.close()  # search (issue 24)
        await self._running.stop(self._parts)

    def decrypt_cached_events(self) -> None:
        """Decrypt the encrypted events read from the cache (at start-up, or
        when a room's timeline was first loaded); emits ItemsReplaced."""
        if self._context.crypto is None:
            return  # done when the store opens (no need to build the parts for it)
        self.parts.opener.decrypt_cached_events()

    async def handle_sync(self, raw: dict[str, Any]) -> None:
        """Process one raw sync response (tests and benchmarks)."""
        await self.parts.syncing.handle_sync(raw)

    # -- messages ------------------------------------------------------------------

    def own_name(self, room_id: str) -> str:
        return self.parts.sending.own_name(room_id)

    def send_text(self, room_id: str, body: str, *, emote: bool = False) -> str:
        return self.parts.sending.send_text(room_id, body, emote=emote)

    def send_message(
        self,
        room_id: str,
        text: str,
        *,
        emote: bool = False,
        markdown: bool = True,
        mentions: dict[str, str] | None = None,
        reply_to: str | None = None,
        reply_sender: str | None = None,
    ) -> str:
        return self.parts.sending.send_message(
            room_id,
            text,
            emote=emote,
            markdown=markdown,
            mentions=mentions,
            reply_to=reply_to,
            reply_sender=reply_sender,
        )

    def edit_message(
        self,
        room_id: str,
        event_id: str,
        text: str,
        *,
        emote: bool = False,
        markdown: bool = True,
        mentions: dict[str, str] | None = None,
    ) -> str:
        return self.parts.sending.edit_message(
            room_id, event_id, text, emote=emote, markdown=markdown, mentions=mentions
        )

    def react(self, room_id: str, event_id: str, key: str) -> str:
        return self.parts.sending.react(room_id, event_id, key)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> bool:
        return await self.parts.sending.redact(room_id, event_id, reason)

    def resume_outbox(self) -> None:
        self.parts.sending.resume_outbox()

    def retry(self, room_id: str, txn_id: str) -> bool:
        return self.parts.sending.retry(room_id, txn_id)

    async def send_room_event(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> str | None:
        return await self.parts.sending.send_room_event(room_id, event_type, content)

    # -- history and read state -------------------------------------------------------

    async def load_older(
        self, room_id: str, before_event_id: str | None, limit: int = PAGE_SIZE
    ) -> bool:
        """Emit the events before `before_event_id` (a cached page if there
        is one, else a page from the server). Returns whether there may be
        more."""
        return await self.parts.history.load_older(room_id, before_event_id, limit)

    def handle_history_page(
        self,
        room_id: str,
        page: dict[str, Any],
        from_token: str,
        generation: int | None = None,
    ) -> bool:
        return self.parts.history.handle_history_page(room_id, page, from_token, generation)

    async def fetch_event(self, room_id: str, event_id: str) -> TimelineItem | None:
        return await self.parts.history.fetch_event(room_id, event_id)

    def set_read_marker(self, room_id: str, event_id: str) -> None:
        self.parts.read_state.set_read_marker(room_id, event_id)

    async def set_typing(self, room_id: str, typing: bool) -> None:
        await self.parts.read_state.set_typing(room_id, typing)

    def show_room(self, room_id: str) -> None:
        """The room on screen: sliding sync subscribes to it (issue 25).
        Before the parts exist (nio not imported yet) it is kept for them."""
        self._shown_room = room_id
        if self._parts is not None:
            self._parts.syncing.show_room(room_id)

    # -- notifications and unread state (issue 23) --------------------------------------

    async def set_room_notifications(self, room_id: str, mode: str) -> bool:
        return await self.parts.push.set_room_mode(room_id, RoomMode(mode))

    async def set_group_default(self, mode: str) -> bool:
        return await self.parts.push.set_group_default(mode)

    async def set_keyword(self, word: str, present: bool) -> bool:
        return await self.parts.push.set_keyword(word, present)

    async def set_marked_unread(self, room_id: str, unread: bool) -> bool:
        return await self.parts.push.set_marked_unread(room_id, unread)

    def set_private_receipts(self, private: bool) -> None:
        self.parts.read_state.private_receipts = private

    def set_sync_mode(self, mode: str) -> None:
        """auto, sliding or v3 (the config's `sync_mode`; before `start`).
        TUICHAT_SYNC_MODE, when set, wins (issue 25)."""
        self.parts.syncing.sliding.configure(mode)

    # -- files -------------------------------------------------------------------------

    async def upload_limit(self) -> int | None:
        return await self.parts.transfers.upload_limit()

    async def send_file(
        self, room_id: str, path: Path, progress: Progress | None = None
    ) -> Outcome[str]:
        return await self.parts.transfers.send_file(room_id, path, progress)

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> Outcome[bytes]:
        return await self.parts.transfers.fetch_attachment(attachment, max_bytes=max_bytes)

    async def download(
        self, attachment: Attachment, directory: Path, data: bytes | None = None
    ) -> Outcome[Path]:
        return await self.parts.transfers.download(attachment, directory, data)

    async def preview_data(self, attachment: Attachment) -> bytes | None:
        return await self.parts.transfers.preview_data(attachment)

    # -- rooms ---------------------------------------------------------------------------

    async def join(self, room: str) -> str | None:
        return await self.parts.rooms.join(room)

    async def create_room(
        self,
        *,
        name: str | None = None,
        invite: tuple[str, ...] = (),
        encrypted: bool = True,
        direct: bool = False,
    ) -> str | None:
        return await self.parts.rooms.create_room(
            name=name, invite=invite, encrypted=encrypted, direct=direct
        )

    async def lookup_profile(self, user_id: str) -> ProfileLookup:
        return await self.parts.rooms.lookup_profile(user_id)

    async def create_dm(self, user_ids: list[str]) -> str | None:
        return await self.parts.rooms.create_dm(user_ids)

    async def accept_invite(self, room_id: str) -> bool:
        return await self.parts.rooms.accept_invite(room_id)

    async def decline_invite(self, room_id: str) -> bool:
        return await self.parts.rooms.decline_invite(room_id)

    async def invite(self, room_id: str, user_id: str) -> bool:
        return await self.parts.moderation.invite(room_id, user_id)

    async def leave(self, room_id: str) -> bool:
        return await self.parts.moderation.leave(room_id)

    # -- room management (issue 22) ------------------------------------------------------

    async def create_named_room(
        self, name: str, *, public: bool = False, invite: tuple[str, ...] = ()
    ) -> str | None:
        return await self.parts.moderation.create_named_room(name, public=public, invite=invite)

    async def set_topic(self, room_id: str, topic: str) -> bool:
        return await self.parts.moderation.set_topic(room_id, topic)

    async def set_room_name(self, room_id: str, name: str) -> bool:
        return await self.parts.moderation.set_name(room_id, name)

    async def enable_encryption(self, room_id: str) -> bool:
        return await self.parts.moderation.enable_encryption(room_id)

    async def set_power_level(self, room_id: str, user_id: str, level: int) -> bool:
        return await self.parts.moderation.set_power_level(room_id, user_id, level)

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> bool:
        return await self.parts.moderation.kick(room_id, user_id, reason)

    async def ban(self, room_id: str, user_id: str, reason: str | None = None) -> bool:
        return await self.parts.moderation.ban(room_id, user_id, reason)

    async def unban(self, room_id: str, user_id: str) -> bool:
        return await self.parts.moderation.unban(room_id, user_id)

    async def forget(self, room_id: str | None) -> bool:
        return await self.parts.moderation.forget(room_id)

    async def set_display_name(self, name: str, room_id: str | None = None) -> bool:
        return await self.parts.moderation.set_display_name(name, room_id)

    async def set_ignored(self, user_id: str, ignore: bool) -> bool:
        return await self.parts.safety.set_ignored(user_id, ignore)

    async def report(self, room_id: str, event_id: str, reason: str) -> bool:
        return await self.parts.safety.report(room_id, event_id, reason)

    def send_notice(self, room_id: str, text: str) -> str:
        return self.parts.sending.send_content(
            room_id, "m.room.message", {"msgtype": "m.notice", "body": text}
        )

    async def set_pinned(self, room_id: str, event_id: str, pin: bool) -> bool:
        return await self.parts.moderation.set_pinned(room_id, event_id, pin)

    def power_levels(self, room_id: str) -> PowerLevels:
        return self.parts.moderation.levels(room_id)

    async def set_room_setting(
        self, room_id: str, event_type: str, content: dict[str, Any], done: str
    ) -> bool:
        return await self.parts.moderation.put_state(room_id, event_type, content, done)

    async def space_hierarchy(self, space_id: str) -> list[HierarchyRoom] | None:
        return await self.parts.spaces.browse(space_id)

    async def directory(self, server: str | None, terms: str) -> list[HierarchyRoom] | None:
        return await self.parts.spaces.directory(server, terms)

    async def join_via(self, room_id: str, via: tuple[str, ...]) -> bool:
        return await self.parts.spaces.join_via(room_id, via)

    async def create_space(self, name: str) -> str | None:
        return await self.parts.spaces.create_space(name)

    async def set_space_child(self, space_id: str, room_id: str, add: bool) -> bool:
        return await self.parts.spaces.set_child(space_id, room_id, add)

    def vote(self, room_id: str, poll_event_id: str, poll: PollStart, answers: list[str]) -> str:
        return self.parts.sending.send_content(
            room_id, *response_content(poll, poll_event_id, answers)
        )

    # -- devices, trust, verification ----------------------------------------------------

    async def devices(self, user_id: str, *, refresh: bool = False) -> list[DeviceInfo]:
        return await self.parts.trust.devices(user_id, refresh=refresh)

    def set_device_trust(self, user_id: str, device_id: str, action: str) -> bool:
        return self.parts.trust.set_device_trust(user_id, device_id, action)

    def verify_device(self, user_id: str, device_id: str) -> bool:
        return self.parts.trust.verify_device(user_id, device_id)

    def set_verified_only(self, room_id: str | None, on: bool) -> None:
        self.parts.trust.set_verified_only(room_id, on)

    def set_signed_only(self, value: str) -> None:
        self.parts.trust.set_signed_only(value)

    def identity_state(self, user_id: str) -> str:
        return self.parts.trust.identity_state(user_id)

    def acknowledge_identity(self, user_id: str) -> None:
        self.parts.trust.acknowledge_identity(user_id)

    async def request_verification(self, user_id: str, device_id: str | None = None) -> str:
        return await self.parts.trust.request_verification(user_id, device_id)

    async def request_user_verification(self, user_id: str) -> str | None:
        return await self.parts.trust.request_user_verification(user_id)

    async def start_legacy_verification(self, user_id: str, device_id: str) -> str:
        return await self.parts.trust.start_legacy_verification(user_id, device_id)

    async def accept_verification(self, transaction_id: str) -> None:
        await self.parts.trust.accept_verification(transaction_id)

    async def start_emoji_verification(self, transaction_id: str) -> None:  # QR verification
        await self.parts.trust.start_emoji_verification(transaction_id)

    async def confirm_verification(self, transaction_id: str) -> None:
        await self.parts.trust.confirm_verification(transaction_id)

    async def reject_verification(self, transaction_id: str) -> None:
        await self.parts.trust.reject_verification(transaction_id)

    async def cancel_verification(self, transaction_id: str) -> None:
        await self.parts.trust.cancel_verification(transaction_id)

    # -- keys and recovery ------------------------------------------------------------------

    async def recovery_status(self) -> Outcome[RecoveryStatus]:
        return await self.parts.keys.recovery_status()

    async def recover(
        self,
        *,
        recovery_key: str | None = None,
        passphrase: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Outcome[ImportResult]:
        return await self.parts.keys.recover(
            recovery_key=recovery_key, passphrase=passphrase, progress=progress
        )

    async def setup_recovery(
        self,
        passphrase: str | None = None,
        password: str | None = None,
        approve: Approve | None = None,
    ) -> Outcome[str]:
        return await self.parts.keys.setup_recovery(passphrase, password, approve)

    @property
    def oauth_account(self) -> bool:
        """Whether the account signs in through the OAuth 2.0 API (it has no
        password; approvals happen on the server's account page)."""
        return bool(self._context.session.oauth_issuer)

    async def has_cross_signing(self) -> Outcome[bool]:
        return await self.parts.keys.has_cross_signing()

    async def export_keys(self, path: Path, passphrase: str) -> Outcome[int]:
        return await self.parts.keys.export_keys(path, passphrase)

    async def import_keys(
        self, text: str, passphrase: str, progress: Callable[[int, int], None] | None = None
    ) -> Outcome[ImportResult]:
        return await self.parts.keys.import_keys(text, passphrase, progress)

    def check_key_file(self, path: Path, *, export: bool, force: bool = False) -> Failed | None:
        return key_files.check_key_file(path, export=export, force=force)

    async def read_key_file(self, path: Path) -> Outcome[str]:
        return await key_files.read_key_file(path)

    def passphrase_problem(self, passphrase: str) -> str | None:
        return key_files.passphrase_problem(passphrase)

    # -- the account page (issue 20: OAuth 2.0 API) ------------------------------------------

    async def account_url(
        self, action: str | None = None, device_id: str | None = None
    ) -> Outcome[str | None]:
        from tuichat.matrix.service.account_page import account_url

        return await account_url(self._context.session, action, device_id)

    # -- threads (issue 21) ------------------------------------------------------------

    async def load_thread(self, room_id: str, root: str, from_token: str | None = None) -> bool:
        return await self.parts.threads.load_thread(room_id, root, from_token)

    async def list_threads(
        self, room_id: str, *, participated: bool = False, from_token: str | None = None
    ) -> str | None:
        return await self.parts.threads.list_threads(
            room_id, participated=participated, from_token=from_token
        )

    def send_thread_message(
        self,
        room_id: str,
        root: str,
        text: str,
        *,
        latest: str,
        reply_to: str | None = None,
        reply_sender: str | None = None,
        emote: bool = False,
        markdown: bool = True,
        mentions: dict[str, str] | None = None,
    ) -> str:
        return self.parts.threads.send_thread_message(
            room_id,
            root,
            text,
            latest=latest,
            reply_to=reply_to,
            reply_sender=reply_sender,
            emote=emote,
            markdown=markdown,
            mentions=mentions,
        )

    async def send_thread_receipt(self, room_id: str, event_id: str, thread_id: str) -> bool:
        return await self.parts.threads.send_thread_receipt(room_id, event_id, thread_id)

    # -- dehydrated devices (issue 26) ---------------------------------------------------

    async def dehydration_state(self) -> Outcome[DehydrationState]:
        return await self.parts.dehydration.state()

    async def set_dehydration(self, on: bool) -> Outcome[str]:
        return await self.parts.dehydration.set_enabled(on)

    # -- issue 25: members are loaded lazily, fetched in full where needed ----------------
    async def load_members(self, room_id: str, *, quiet: bool = False) -> bool:
        return await self.parts.members.load(room_id, quiet=quiet)

    def members_complete(self, room_id: str) -> bool:
        return self.parts.members.is_complete(room_id)

    # -- search (issue 24) ------------------------------------------------------------------

    def index_history(self, fetch_older: int = 0) -> None:
        self.parts.search.index_history(fetch_older)

    async def search(
        self, query: SearchQuery, room_id: str | None, cursor: SearchCursor | None = None
    ) -> SearchPage:
        return await self.parts.search.search(query, room_id, cursor)

    async def event_context(self, room_id: str, event_id: str) -> list[TimelineItem]:
        return await self.parts.search.event_context(room_id, event_id)
