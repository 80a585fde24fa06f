"""Opening an account: the crypto store (never a new identity for a device
that had one), the access token's refresh, nio primed with the cached rooms,
and the cached encrypted events decrypted."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nio import SyncResponse

from tuichat.matrix.account.session import ProfileError
from tuichat.matrix.account.tokens import RefreshUnavailable, TokenKeeper
from tuichat.matrix.crypto.engine import CryptoEngine
from tuichat.matrix.crypto.key_requests import BACKOFF_SECONDS, GRACE_SECONDS
from tuichat.matrix.crypto.nio_extensions import TuichatClient
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.room_views import RoomViews
from tuichat.matrix.service.sync_loop import nio_view
from tuichat.matrix.service.token_recovery import TokenRecovery
from tuichat.matrix.transport.client import build_client
from tuichat.model.events import ConnectionState, Notice
from tuichat.model.rooms import Membership
from tuichat.model.verification import VerificationView

log = logging.getLogger(__name__)


class AccountOpener:
    """Opens the crypto store and sets the context's `client`, `tokens` and
    `crypto`; the crypto engine reports verifications to `on_verification`
    and sends in-room verification steps with `send_room_event`."""

    def __init__(
        self,
        context: AccountContext,
        *,
        views: RoomViews,
        tokens: TokenRecovery,
        on_verification: Callable[[VerificationView], None],
        send_room_event: Callable[[str, str, dict[str, Any]], Awaitable[str | None]],
        key_request_grace: float | None = None,
        key_request_backoff: tuple[float, ...] | None = None,
    ) -> None:
        self._context = context
        self._views = views
        self._tokens = tokens
        self._on_verification = on_verification
        self._send_room_event = send_room_event
        self.key_request_grace = GRACE_SECONDS if key_request_grace is None else key_request_grace
        self.key_request_backoff = (
            BACKOFF_SECONDS if key_request_backoff is None else key_request_backoff
        )

    async def open(self) -> None:
        """Open the crypto store and make the cached rooms usable for sending."""
        context = self._context
        context.set_state(ConnectionState.LOADING)
        profile = context.profile
        profile.ensure()
        client = build_client(profile, context.session)
        try:
            self._restore_identity(client)
        except BaseException:
            await client.close()
            client.extras.close()
            raise
        session = context.session
        fixed = profile.fix_permissions()
        if fixed:
            context.emit(
                Notice(f"Tightened permissions of {len(fixed)} file(s) in the profile.", error=True)
            )
        context.client = client
        context.tokens = tokens = TokenKeeper(
            profile,
            session,
            client,
            on_refreshed=context.use_session,
            on_logged_out=self._tokens.logged_out_by_server,
        )
        due = tokens.refresh_due_in()
        if due is not None and due <= 0:
            # Expired while tuichat was not running: a fresh token first, so
            # one-shot commands (`tuichat devices`) work on their first try.
            with contextlib.suppress(RefreshUnavailable):
                await tokens.refresh(session.access_token)
        await self._prime_nio_rooms()
        context.crypto = crypto = CryptoEngine(
            client,
            client.extras,
            profile.pickle_key(),
            device_created_ms=session.created_ms,
            key_request_grace=self.key_request_grace,
            key_request_backoff=self.key_request_backoff,
        )
        # After priming: replaying cached state must not touch the restored
        # outbound sessions (they are not rotated by a restart).
        crypto.restore()
        crypto.on_verification = self._on_verification
        crypto.send_room_event = self._send_room_event
        crypto.http.on_unknown_token = self._tokens.recover
        self.decrypt_cached_events()

    def _restore_identity(self, client: TuichatClient) -> None:
        """Open this device's identity, or explain why not. Never lets nio
        create a new identity for a device that had one: other devices and
        people would see its keys change (and a server refuses new keys for
        a known device id), and the old identity's sessions would be lost."""
        session, profile = self._context.session, self._context.profile
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

    async def _prime_nio_rooms(self) -> None:
        """Replay the cached state into nio, which keeps no rooms between runs.

        Without this, nio would not know which rooms are encrypted or who is in
        them after a restart that continues from a stored sync token.
        """
        client = self._context.client
        assert client is not None
        join: dict[str, Any] = {}
        invite: dict[str, Any] = {}
        for room_id, state in self._context.states.items():
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
            nio_view({"next_batch": "tuichat-cache", "rooms": {"join": join, "invite": invite}})
        )
        if isinstance(response, SyncResponse):
            await client.receive_response(response)
        client.next_batch = self._context.sync_token or ""

    def decrypt_cached_events(self) -> None:
        """Decrypt the encrypted events read from the cache (at start-up, or
        when a room's timeline was first loaded); emits ItemsReplaced."""
        crypto = self._context.crypto
        if crypto is None:
            return  # done when the store opens
        snapshot = self._context.snapshot
        for room_id, events in snapshot.encrypted.items():
            if room_id in self._context.states:
                self._views.emit_decrypted(
                    room_id, [(e, crypto.decrypt(room_id, e)) for e in events]
                )
        snapshot.encrypted.clear()
        crypto.extras.flush()
