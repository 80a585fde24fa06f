"""Starting and stopping the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nio import (
    SyncResponse,
)

from tuichat.matrix.account.session import ProfileError, Session
from tuichat.matrix.account.tokens import RefreshUnavailable, TokenKeeper
from tuichat.matrix.crypto.engine import CryptoEngine
from tuichat.matrix.crypto.nio_extensions import TuichatClient
from tuichat.matrix.service.base import (
    ServiceBase,
)
from tuichat.matrix.service.syncing import _nio_view
from tuichat.matrix.transport.client import build_client
from tuichat.model.events import (
    ConnectionState,
    Notice,
)
from tuichat.model.rooms import Membership

log = logging.getLogger(__name__)


class LifecycleMixin(ServiceBase):
    """Opening the crypto store, replaying the cache into nio, stopping."""

    async def open(self) -> None:
        """Open the crypto store and make the cached rooms usable for sending."""
        self._set_state(ConnectionState.LOADING)
        self.profile.ensure()
        client = build_client(self.profile, self.session)
        try:
            self._restore_identity(client)
        except BaseException:
            await client.close()
            client.extras.close()
            raise
        session = self.session
        fixed = self.profile.fix_permissions()
        if fixed:
            self.emit(
                Notice(f"Tightened permissions of {len(fixed)} file(s) in the profile.", error=True)
            )
        self.client = client
        self.tokens = TokenKeeper(
            self.profile,
            session,
            client,
            on_refreshed=self._use_session,
            on_logged_out=self._logged_out_by_server,
        )
        due = self.tokens.refresh_due_in()
        if due is not None and due <= 0:
            # Expired while tuichat was not running: a fresh token first, so
            # one-shot commands (`tuichat devices`) work on their first try.
            with contextlib.suppress(RefreshUnavailable):
                await self.tokens.refresh(session.access_token)
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
        self.crypto.on_verification = self._report_verification
        self.crypto.send_room_event = self.send_room_event
        self.crypto.http.on_unknown_token = self._recover_token
        self.decrypt_cached_events()

    def _use_session(self, session: Session) -> None:
        """A refreshed access token: the session every part reads."""
        self.session = session

    def _restore_identity(self, client: TuichatClient) -> None:
        """Open this device's identity, or explain why not. Never lets nio
        create a new identity for a device that had one: other devices and
        people would see its keys change (and a server refuses new keys for
        a known device id), and the old identity's sessions would be lost."""
        session, profile = self.session, self.profile
        known = client.extras.get("identity_ed25519")
        store = profile.store_dir / f"{session.user_id}_{session.device_id}.db"
        choice = (
            "tuichat will not make a new identity for this device on its own. Restore the "
            f"profile ({profile.root}) from a backup, or run `tuichat logout` and log in "
            "again as a new device (encrypted history then comes back through key backup "
            "or your other sessions)."
        )
        if known and not store.exists():
            raise ProfileError(f"the crypto store of this device is missing ({store}). {choice}")
        try:
            client.restore_login(session.user_id, session.device_id, session.access_token)
        except Exception as error:  # noqa: BLE001 - every failure here means the same
            log.error("opening the crypto store failed: %s", type(error).__name__)
            raise ProfileError(
                "the crypto store of this device cannot be opened: the pickle key "
                f"({profile.pickle_key_file}) does not match it, or it is damaged. {choice}"
            ) from None
        identity = client.olm.account.identity_keys["ed25519"]
        if known and identity != known:
            raise ProfileError(
                f"the crypto store in {profile.store_dir} holds another identity than this "
                f"device had. {choice}"
            )
        if not known:
            client.extras.set("identity_ed25519", identity)

    async def start(self) -> None:
        """Open the store (if needed) and run the sync loop in the background."""
        if self.client is None:
            await self.open()
        self._sync_task = asyncio.create_task(self._sync_loop(), name="tuichat-sync")
        assert self.tokens is not None
        self._token_task = asyncio.create_task(self.tokens.run(), name="tuichat-tokens")
        self.resume_outbox()

    async def stop(self) -> None:
        tasks = [
            t
            for t in (
                self._sync_task,
                self._token_task,
                *self._send_workers.values(),
            )
            if t
        ]
        for task in tasks:
            task.cancel()
        for task in tasks:
            # Stopping: whatever the tasks died of was already reported.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sync_task = self._token_task = None
        self._send_workers.clear()
        if self.client is not None:
            await self.client.close()
        if self.crypto is not None:
            self.crypto.close()
        elif self.client is not None:
            self.client.extras.close()
        self.cache.close()
        self.outbox.close()
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

    def decrypt_cached_events(self) -> None:
        """Decrypt the encrypted events read from the cache (at start-up, or
        when a room's timeline was first loaded); emits ItemsReplaced."""
        if self.crypto is None:
            return  # done when the store opens
        crypto = self.crypto
        for room_id, events in self.snapshot.encrypted.items():
            if room_id in self.states:
                self._emit_decrypted(room_id, [(e, crypto.decrypt(room_id, e)) for e in events])
        self.snapshot.encrypted.clear()
        self.crypto.extras.flush()
