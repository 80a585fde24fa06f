"""The crypto engine: the one object the service talks to for end-to-end
encryption, and the coordinator of the parts that do the work.

Each job has its module: decrypting and decrypting again (`redecryption.py`),
trust and who receives keys (`trust_policy.py`), secrets between our own
devices (`secret_sharing.py`), key import and export (`session_import.py`),
the key backup between syncs (`backup_upkeep.py`), outbound sessions
(`group_sessions.py`), key requests, cross-signing and verification. The
engine builds them, routes a sync's to-device events to them, runs the
upkeep between syncs (keys up, down and claimed; to-device messages out)
and wires a finished verification to its consequences. It returns what
changed as `Redecrypted` records; turning them into timeline items is the
service's job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from nio import KeysQueryResponse

from tuichat.matrix.crypto.backup_upkeep import BackupUpkeep
from tuichat.matrix.crypto.cross_signing import CrossSigning
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.group_sessions import GroupSessions, KeyShareError, RotationPolicy
from tuichat.matrix.crypto.key_backup import KeyBackup
from tuichat.matrix.crypto.key_export import EXPORT_ROUNDS, KeyFileError
from tuichat.matrix.crypto.key_requests import BACKOFF_SECONDS, GRACE_SECONDS, KeyRequests
from tuichat.matrix.crypto.megolm import MegolmDecryptor
from tuichat.matrix.crypto.nio_extensions import TuichatClient
from tuichat.matrix.crypto.recovery import Recovery
from tuichat.matrix.crypto.redecryption import Redecryption
from tuichat.matrix.crypto.secret_sharing import SecretSharing
from tuichat.matrix.crypto.session_import import SessionImport
from tuichat.matrix.crypto.trust_policy import TrustPolicy
from tuichat.matrix.crypto.types import Decryption, ImportResult, Progress, Redecrypted
from tuichat.matrix.crypto.verification import VERIFICATION_TYPES, Verifications
from tuichat.matrix.transport.http import MatrixHttp, MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.devices import DeviceInfo, IdentityState, TrustAction
from tuichat.model.verification import VerificationView

log = logging.getLogger(__name__)

SendRoomEvent = Callable[[str, str, dict[str, Any]], Awaitable[str | None]]


class CryptoEngine:
    def __init__(
        self,
        client: TuichatClient,
        extras: CryptoExtrasStore,
        pickle_key: str,
        *,
        device_created_ms: int = 0,
        key_request_grace: float = GRACE_SECONDS,
        key_request_backoff: tuple[float, ...] = BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        olm = self.olm = client.tuichat_olm
        self.extras = extras
        self.clock = clock
        decryptor = MegolmDecryptor(olm, extras, device_created_ms)
        if extras.has_old_key_sources():
            extras.migrate_key_sources(
                (session.room_id, session.sender_key, session.id)
                for session in olm.inbound_group_store
            )
        self.groups = GroupSessions(client, extras, pickle_key)
        self.requests = KeyRequests(
            olm, self.groups.send_to_device, key_request_grace, key_request_backoff
        )
        self.http = MatrixHttp(client)
        self.backup = KeyBackup(self.http, olm, extras, pickle_key)
        self.recovery = Recovery(self.http, self.backup)
        self.cross_signing = CrossSigning(
            own_user=olm.user_id,
            own_device=olm.device_id,
            extras=extras,
            http=self.http,
            pickle_key=pickle_key,
        )
        # Users whose devices or trust changed, and whose cross-signing
        # identity changed, since `take_device_news` last asked.
        self.devices_changed: set[str] = set()
        self.identity_changes: set[str] = set()
        self.redecryption = Redecryption(olm, decryptor, extras, self.requests, clock)
        self.sessions = SessionImport(olm, self.redecryption.keys_arrived)
        self.backup_upkeep = BackupUpkeep(
            self.backup, extras, self.redecryption.waiting, self.sessions.import_sessions, clock
        )
        self.redecryption.on_waiting = self.backup_upkeep.want
        self.trust = TrustPolicy(
            client, extras, self.cross_signing, self.groups, self.requests, self.devices_changed
        )
        decryptor.device_trust = self.trust.message_trust
        self.secrets = SecretSharing(
            olm,
            self.cross_signing,
            self.backup,
            self.groups,
            self.trust.is_verified,
            self.refresh_own_identity,
            self.devices_changed,
        )
        client.on_keys_query = self._on_keys_query
        self.on_verification: Callable[[VerificationView], None] = lambda view: None
        self.on_verified: Callable[[str, str], None] = lambda user, device: None
        # Sends an event to a room (encrypting it as the room needs); set by
        # the service, used by in-room verification.
        self.send_room_event: SendRoomEvent | None = None
        self._upkeep_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Events a key query outside upkeep could decrypt again; the next
        # upkeep hands them on.
        self._redecrypted_later: list[Redecrypted] = []
        self.verifications = Verifications(
            own_user=olm.user_id,
            own_device=olm.device_id,
            own_ed25519=olm.account.identity_keys["ed25519"],
            send_to_device=self.groups.send_to_device,
            device_key=self.trust.device_ed25519,
            on_change=lambda view: self.on_verification(view),
            on_verified=self._verified_by_sas,
            master_key=self._master_key,
            refresh_keys=self._refresh_user_keys,
            trusted_own_master=self._trusted_own_master,
            send_room_event=self._send_room_event,
            clock=clock,
        )

    def restore(self) -> None:
        self.groups.restore()

    def close(self) -> None:
        self.extras.close()

    # -- a sync ---------------------------------------------------------------------

    async def handle_sync(self, raw: dict[str, Any]) -> list[Redecrypted]:
        """What nio does not take from a sync response: key counts, fallback
        key state, m.room_key.withheld, key verification and secrets; then
        retry events whose keys came."""
        self.olm.update_key_counts(raw)
        to_device = raw.get("to_device")
        events = to_device.get("events") if isinstance(to_device, dict) else None
        plain = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
        results = self.redecryption.handle_withheld(plain)
        results.extend(self.redecryption.keys_arrived())
        decrypted, self.olm.decrypted_to_device = self.olm.decrypted_to_device, []
        for event in [*plain, *decrypted]:
            if event.get("type") in VERIFICATION_TYPES:
                await self.verifications.handle(event)
        for event in decrypted:
            if event.get("type") == "m.secret.send":
                await self.secrets.secret_received(event)
        return results

    # -- upkeep between syncs ---------------------------------------------------------

    async def upkeep(self) -> list[Redecrypted]:
        """Upload, query and claim keys, send queued to-device messages and due
        key requests. Failures are logged and retried on the next round."""
        async with self._upkeep_lock:
            client = self.client
            results: list[Redecrypted] = []
            if client.should_upload_keys:
                await self._guard(client.keys_upload(), "uploading keys")
            results.extend(await self.query_keys())
            results.extend(self._redecrypted_later)
            self._redecrypted_later = []
            if client.should_claim_keys:
                await self._guard(
                    client.keys_claim(client.get_users_for_key_claiming()), "claiming keys"
                )
            if client.outgoing_to_device_messages:
                await self._guard(client.send_to_device_messages(), "sending to-device")
            await self.requests.send_due(self.clock())
            await self.verifications.check_timeouts()
            results.extend(await self.backup_upkeep.upkeep())
            results.extend(self.redecryption.keys_arrived())
            return results

    async def query_keys(self) -> list[Redecrypted]:
        olm = self.olm
        if not olm.users_for_key_query:
            return []
        users = set(olm.users_for_key_query)
        response = await self._guard(self.client.keys_query(), "querying keys")
        if not isinstance(response, KeysQueryResponse):
            return []
        for user_id, devices in (getattr(response, "changed", None) or {}).items():
            for device_id, device in devices.items():
                if device.deleted:
                    self.groups.rotate_where_shared_with(user_id, device_id, "device removed")
        self.devices_changed.update(users)
        return self.redecryption.devices_fetched(users)

    def take_device_news(self) -> tuple[set[str], list[tuple[str, str]], set[str]]:
        """(users whose device lists or trust changed, devices new to us,
        users whose cross-signing identity changed) since the last call."""
        users = set(self.devices_changed)
        self.devices_changed.clear()  # the set is shared with the parts
        new, self.olm.new_devices = self.olm.new_devices, []
        changed, self.identity_changes = self.identity_changes, set()
        return users | changed, new, changed

    def _on_keys_query(self, raw: dict[str, Any]) -> None:
        self.identity_changes |= self.cross_signing.process_query(raw)
        self.devices_changed.update((raw.get("device_keys") or {}).keys())

    async def _guard(self, call: Any, what: str) -> Any:
        try:
            return await call
        except NETWORK_ERRORS as error:
            log.warning("%s failed: %s", what, error)
        except Exception as error:  # noqa: BLE001 - nio's LocalProtocolError and kin
            log.warning("%s failed: %s", what, error)
        return None

    # -- sending ---------------------------------------------------------------------

    async def encrypt(
        self,
        room_id: str,
        members: Iterable[str],
        encryption_content: dict[str, Any],
        event_type: str,
        content: dict[str, Any],
    ) -> dict[str, Any]:
        """Share the room key as needed and encrypt one event for the room.
        Raises KeyShareError when a member's devices or the key exchange
        cannot be completed now (the caller tries again later)."""
        members = list(members)
        await self.query_keys()
        outdated = self.olm.users_for_key_query.intersection(members)
        if outdated:
            raise KeyShareError(f"the device lists of {len(outdated)} member(s) are not known yet")
        await self.groups.ensure_shared(
            room_id,
            members,
            RotationPolicy.from_content(encryption_content),
            allowed=lambda device: self.trust.may_receive_keys(device, room_id),
        )
        payload = self.olm.group_encrypt(room_id, {"type": event_type, "content": content})
        if "m.relates_to" in content:
            # Relations stay readable to the server (spec).
            payload["m.relates_to"] = content["m.relates_to"]
        self.groups.save(room_id)  # the message count moved on
        return payload

    def rotate(self, room_id: str, reason: str) -> None:
        self.groups.rotate(room_id, reason)

    # -- verification and its consequences -------------------------------------------

    def _verified_by_sas(
        self, user_id: str, device_id: str, master: str | None, device_key_checked: bool = True
    ) -> None:
        if not device_key_checked and user_id == self.olm.user_id:
            # A QR code proved our master key, not that device's key: the
            # device is trusted if that master key's SSK signed it.
            identity = self.cross_signing.identity(user_id)
            signed = self.cross_signing.device_signed_by_owner(user_id, device_id)
            if identity is None or identity.master_key != master or not signed:
                log.warning("device %s is not signed by the verified master key", device_id)
                self.on_verified(user_id, device_id)
                return
            device_key_checked = True
        if device_key_checked:
            self.trust.set_trust(user_id, device_id, TrustAction.VERIFY)
        if user_id == self.olm.user_id:
            # Our other device: ask it for the cross-signing keys (Element
            # answers only devices it trusts, so only now, not before).
            self._background(self.secrets.request_secrets(device_id))
        elif master is not None:
            # Their identity was part of the MACs: vouch for it.
            self._background(self._sign_user(user_id))
        self.on_verified(user_id, device_id)

    def _background(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sign_user(self, user_id: str) -> None:
        try:
            if await self.cross_signing.sign_user(user_id):
                self.devices_changed.add(user_id)
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("signing %s's identity failed: %s", user_id, error)

    async def _send_room_event(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> str | None:
        if self.send_room_event is None:
            return None
        return await self.send_room_event(room_id, event_type, content)

    async def _refresh_user_keys(self, user_id: str) -> None:
        """Query `user_id`'s device and cross-signing keys now (a verification
        needs the keys of a device we have not looked up)."""
        self.olm.users_for_key_query.add(user_id)
        self._redecrypted_later.extend(await self.query_keys())

    def _trusted_own_master(self) -> str | None:
        """Our master key, if this device trusts it (holds it, or our SSK
        that it signed); None while it is only the server's word."""
        if not self.cross_signing.own_master_trusted():
            return None
        return self._master_key(self.olm.user_id)

    def _master_key(self, user_id: str) -> str | None:
        identity = self.cross_signing.identity(user_id)
        return identity.master_key if identity is not None else None

    async def refresh_own_identity(self) -> None:
        self.olm.users_for_key_query.add(self.olm.user_id)
        await self.query_keys()

    # -- what the service asks of the parts ------------------------------------------

    def decrypt(
        self,
        room_id: str,
        event: dict[str, Any],
        copies: dict[tuple[str, str], Any] | None = None,
    ) -> Decryption:
        return self.redecryption.decrypt(room_id, event, copies)

    def decrypt_page(self, room_id: str, events: list[dict[str, Any]]) -> list[Decryption]:
        return self.redecryption.decrypt_page(room_id, events)

    def retrust(self, users: Iterable[str]) -> list[Redecrypted]:
        return self.redecryption.retrust(users)

    def verified_only(self, room_id: str | None = None) -> bool:
        return self.trust.verified_only(room_id)

    def set_verified_only(self, room_id: str | None, on: bool) -> None:
        self.trust.set_verified_only(room_id, on)

    def set_signed_only(self, value: str) -> None:
        self.trust.set_signed_only(value)

    def may_receive_keys(self, device: Any, room_id: str | None) -> bool:
        return self.trust.may_receive_keys(device, room_id)

    def identity_state(self, user_id: str) -> IdentityState:
        return self.trust.identity_state(user_id)

    def device_infos(self, user_id: str) -> list[DeviceInfo]:
        return self.trust.device_infos(user_id)

    def unverified_devices(self, members: Iterable[str]) -> int:
        return self.trust.unverified_devices(members)

    def devices_and_keyless(self, members: Iterable[str]) -> tuple[int, int]:
        return self.trust.devices_and_keyless(members)

    def set_trust(self, user_id: str, device_id: str, action: str) -> bool:
        return self.trust.set_trust(user_id, device_id, action)

    def own_device_keys(self) -> dict[str, Any]:
        return self.secrets.own_device_keys()

    async def adopt_cross_signing_secrets(self, secrets_by_usage: dict[str, str]) -> bool:
        return await self.secrets.adopt_cross_signing_secrets(secrets_by_usage)

    async def export_keys(self, path: Path, passphrase: str, rounds: int = EXPORT_ROUNDS) -> int:
        return await self.sessions.export_keys(path, passphrase, rounds)

    async def import_keys(
        self, text: str, passphrase: str, progress: Progress | None = None
    ) -> tuple[ImportResult, list[Redecrypted]]:
        return await self.sessions.import_keys(text, passphrase, progress)

    async def restore_backup(
        self, progress: Progress | None = None
    ) -> tuple[ImportResult, list[Redecrypted]]:
        return await self.backup_upkeep.restore(progress)


__all__ = ["CryptoEngine", "ImportResult", "KeyFileError", "Redecrypted"]
