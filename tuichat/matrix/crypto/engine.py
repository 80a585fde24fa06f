"""The crypto engine: one object the service talks to for end-to-end encryption.

It owns the decryptor, the events waiting for keys, the key requests, the
outbound group sessions and the upkeep between syncs (keys up, down and
claimed; to-device messages out). It returns what changed as `Redecrypted`
records; turning them into timeline items is the service's job.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nio import KeysQueryResponse
from nio.crypto.sessions import InboundGroupSession

from tuichat.matrix.account.session import write_private
from tuichat.matrix.content.convert import Decryption
from tuichat.matrix.crypto.cross_signing import SECRET_NAMES, CrossSigning
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.group_sessions import GroupSessions, KeyShareError, RotationPolicy
from tuichat.matrix.crypto.key_backup import BACKUP_SECRET, BackupError, KeyBackup
from tuichat.matrix.crypto.key_export import (
    EXPORT_ROUNDS,
    ExportedSession,
    KeyFileError,
    sessions_from_file,
    sessions_to_file,
)
from tuichat.matrix.crypto.key_requests import BACKOFF_SECONDS, GRACE_SECONDS, KeyRequests
from tuichat.matrix.crypto.megolm import MegolmDecryptor
from tuichat.matrix.crypto.nio_extensions import FALLBACK_KEY_TYPE, TuichatClient
from tuichat.matrix.crypto.recovery import Recovery
from tuichat.matrix.crypto.trust_refresh import UntrustedRecent
from tuichat.matrix.crypto.undecryptable import UndecryptableEvents
from tuichat.matrix.crypto.verification import VERIFICATION_TYPES, Verifications
from tuichat.matrix.transport.http import MatrixHttp, MatrixHttpError
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.devices import DeviceInfo, Trust
from tuichat.model.items import WithheldCode
from tuichat.model.sanitize import clean_line
from tuichat.model.verification import VerificationView

log = logging.getLogger(__name__)

# Failures a later key can cure. Replays, bad payloads and sender
# mismatches are final.
_RETRYABLE = {"missing_key", "unknown_index", "before_device"}
_REQUESTABLE = _RETRYABLE
# Message trust that verifying the sender changes (see trust_refresh.py).
_RETRUSTABLE = {"unverified", "unsigned"}


@dataclass(frozen=True)
class Redecrypted:
    room_id: str
    event: dict[str, Any]
    decryption: Decryption


@dataclass(frozen=True)
class ImportResult:
    total: int
    imported: int  # new sessions, or better copies of known ones
    invalid: int


Progress = Callable[[int, int], None]


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
        self.olm = client.tuichat_olm
        self.extras = extras
        self.clock = clock
        self.decryptor = MegolmDecryptor(self.olm, extras, device_created_ms)
        if extras.has_old_key_sources():
            extras.migrate_key_sources(
                (session.room_id, session.sender_key, session.id)
                for session in self.olm.inbound_group_store
            )
        self.groups = GroupSessions(client, extras, pickle_key)
        self.waiting = UndecryptableEvents()
        self.requests = KeyRequests(
            self.olm, self.groups.send_to_device, key_request_grace, key_request_backoff
        )
        self._upkeep_lock = asyncio.Lock()
        self.devices_changed: set[str] = set()
        self.http = MatrixHttp(client)
        self.backup = KeyBackup(self.http, self.olm, extras, pickle_key)
        self.recovery = Recovery(self.http, self.backup)
        self._backup_wanted: dict[str, str] = {}  # session id -> room id
        self._backup_asked: set[str] = set()
        self._backup_checked = 0.0
        self.on_verification: Callable[[VerificationView], None] = lambda view: None
        self.on_verified: Callable[[str, str], None] = lambda user, device: None
        self.cross_signing = CrossSigning(
            own_user=self.olm.user_id,
            own_device=self.olm.device_id,
            extras=extras,
            http=self.http,
            pickle_key=pickle_key,
        )
        self.identity_changes: set[str] = set()
        self.untrusted = UntrustedRecent()
        client.on_keys_query = self._on_keys_query
        self.decryptor.device_trust = self._message_trust
        # Sends an event to a room (encrypting it as the room needs); set by
        # the service, used by in-room verification.
        self.send_room_event: Callable[[str, str, dict[str, Any]], Awaitable[str | None]] | None = (
            None
        )
        self._secret_requests: dict[str, tuple[str, str]] = {}  # request id -> (name, device)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Events a key query outside upkeep could decrypt again; the next
        # upkeep hands them on.
        self._redecrypted_later: list[Redecrypted] = []
        self.verifications = Verifications(
            own_user=self.olm.user_id,
            own_device=self.olm.device_id,
            own_ed25519=self.olm.account.identity_keys["ed25519"],
            send_to_device=self.groups.send_to_device,
            device_key=self._device_ed25519,
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

    # -- decrypting -----------------------------------------------------------------

    def decrypt_page(self, room_id: str, events: list[dict[str, Any]]) -> list[Decryption]:
        """Decrypt a page of older history (oldest first), as `decrypt` does
        one event; see `MegolmDecryptor.history_sessions`."""
        copies = self.decryptor.history_sessions(room_id, events)
        return [self.decrypt(room_id, event, copies) for event in events]

    def decrypt(
        self,
        room_id: str,
        event: dict[str, Any],
        copies: dict[tuple[str, str], Any] | None = None,
    ) -> Decryption:
        """Decrypt, and remember the event if a later key could help."""
        decryption = self._with_withheld(
            room_id, event, self.decryptor.decrypt(room_id, event, copies)
        )
        session_id = decryption.session_id
        if session_id is None:
            return decryption
        if decryption.payload is None and (
            decryption.reason in _RETRYABLE or (decryption.reason or "").startswith("withheld:")
        ):
            waiting = self.waiting.add(room_id, event, session_id, decryption.reason)
            if session_id not in self._backup_asked:
                self._backup_wanted[session_id] = room_id
            if decryption.reason in _REQUESTABLE:
                self.requests.missing(
                    room_id,
                    session_id,
                    waiting.sender_key,
                    waiting.sender,
                    waiting.sender_device,
                    self.clock(),
                )
        elif decryption.payload is not None:
            self._watch_trust(room_id, event, session_id, decryption)
        return decryption

    def _watch_trust(
        self, room_id: str, event: dict[str, Any], session_id: str, decryption: Decryption
    ) -> None:
        """A decrypted message whose marker can still change: from a device
        not known yet, or not verified yet."""
        if decryption.trust == "unknown_device":
            self.waiting.add_unknown_device(room_id, event, session_id)
        elif decryption.trust in _RETRUSTABLE:
            self.untrusted.add(room_id, event)

    def retrust(self, users: Iterable[str]) -> list[Redecrypted]:
        """Decrypt again the recent messages of `users`, whose trust changed,
        so their markers show the new state."""
        results = []
        for room_id, event in self.untrusted.take(users):
            decryption = self.decrypt(room_id, event)
            if decryption.payload is not None:
                results.append(Redecrypted(room_id, event, decryption))
        return results

    def _with_withheld(
        self, room_id: str, event: dict[str, Any], decryption: Decryption
    ) -> Decryption:
        """A missing key the sender said it withholds gets its reason: a
        notice from the event's sender for the event's session (creator
        key and id) in this room."""
        session_id = decryption.session_id
        if decryption.reason != "missing_key" or not session_id:
            return decryption
        content = event.get("content")
        sender_key = content.get("sender_key") if isinstance(content, dict) else None
        sender = event.get("sender")
        if not isinstance(sender_key, str) or not isinstance(sender, str):
            return decryption
        code = self.extras.withheld_code(room_id, sender_key, session_id, sender)
        if code is None:
            return decryption
        return Decryption(None, f"withheld:{code.value}", session_id)

    def _retry(self, waiting: Iterable[Any]) -> list[Redecrypted]:
        results = []
        for item in waiting:
            decryption = self._with_withheld(
                item.room_id, item.event, self.decryptor.decrypt(item.room_id, item.event)
            )
            if decryption.payload is not None:
                self.waiting.discard(item.event_id, item.session_id)
                self._watch_trust(item.room_id, item.event, item.session_id, decryption)
                results.append(Redecrypted(item.room_id, item.event, decryption))
            elif decryption.reason != item.reason and not item.reason.startswith("withheld:"):
                item.reason = decryption.reason or item.reason
                results.append(Redecrypted(item.room_id, item.event, decryption))
        return results

    def keys_arrived(self) -> list[Redecrypted]:
        """Retry every event waiting for a session that just arrived."""
        arrived = {session_id for _, session_id in self.olm.arrived_sessions}
        self.olm.arrived_sessions.clear()
        if not arrived:
            return []
        results = self._retry(self.waiting.waiting_for(arrived))
        still_waiting = self.waiting.session_ids()
        for session_id in arrived:
            if session_id not in still_waiting:
                self.requests.arrived(session_id)
        return results

    async def handle_sync(self, raw: dict[str, Any]) -> list[Redecrypted]:
        """What nio does not take from a sync response: key counts, fallback
        key state, m.room_key.withheld and key verification; then retry
        events whose keys came."""
        olm = self.olm
        counts = raw.get("device_one_time_keys_count")
        if isinstance(counts, dict):
            # nio ignores a count of 0 (falsy), so an exhausted server was
            # never refilled.
            value = counts.get("signed_curve25519", 0)
            olm.uploaded_key_count = value if isinstance(value, int) else 0
        unused = raw.get("device_unused_fallback_key_types")
        if isinstance(unused, list) and olm.account.shared:
            olm.fallback_key_needed = FALLBACK_KEY_TYPE not in unused
        results = self._handle_withheld(raw)
        results.extend(self.keys_arrived())
        await self._route_verification(raw)
        return results

    async def _route_verification(self, raw: dict[str, Any]) -> None:
        to_device = raw.get("to_device")
        events = to_device.get("events") if isinstance(to_device, dict) else None
        plain = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
        decrypted, self.olm.decrypted_to_device = self.olm.decrypted_to_device, []
        for event in [*plain, *decrypted]:
            if event.get("type") in VERIFICATION_TYPES:
                await self.verifications.handle(event)
        for event in decrypted:
            if event.get("type") == "m.secret.send":
                await self._secret_received(event)

    def _handle_withheld(self, raw: dict[str, Any]) -> list[Redecrypted]:
        to_device = raw.get("to_device")
        events = to_device.get("events") if isinstance(to_device, dict) else None
        results = []
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, dict) or event.get("type") not in (
                "m.room_key.withheld",
                "org.matrix.room_key.withheld",
            ):
                continue
            content = event.get("content")
            if not isinstance(content, dict):
                continue
            # The server vouches for the to-device sender (the user, not the
            # device); the notice then speaks only for sessions that user's
            # device with `sender_key` created. m.no_olm without a session
            # names none and is not used.
            sender = event.get("sender")
            names = (sender, content.get("room_id"), content.get("sender_key"))
            session_id = content.get("session_id")
            if not all(_short_string(value) for value in (*names, session_id)):
                continue
            sender, room_id, sender_key = names
            # Only a code the spec defines is kept; any other is UNKNOWN. The
            # free-text `reason` is not kept or shown.
            code = WithheldCode.parse(content.get("code"))
            # Kept: the event it explains may come in this sync or later.
            self.extras.set_withheld(room_id, sender_key, session_id, sender, code)
            for waiting in self.waiting.mark_withheld(
                room_id, sender, sender_key, session_id, code.value
            ):
                results.append(
                    Redecrypted(
                        waiting.room_id,
                        waiting.event,
                        Decryption(None, f"withheld:{code.value}", session_id),
                    )
                )
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
            results.extend(await self._backup_upkeep())
            results.extend(self.keys_arrived())
            return results

    # -- key backup ------------------------------------------------------------------------

    BACKUP_CHECK_SECONDS = 300.0

    async def _backup_upkeep(self) -> list[Redecrypted]:
        """Look up waiting sessions in the backup and upload what it lacks."""
        backup = self.backup
        now = self.clock()
        try:
            if not self._backup_checked or now - self._backup_checked > self.BACKUP_CHECK_SECONDS:
                self._backup_checked = now
                known = self.extras.get("backup_version") if backup.unlocked else None
                version = await backup.fetch_version()
                if known and version is None:
                    backup.problem = f"key backup version {known} was deleted"
                elif known and version is not None and backup.public_key != version.public_key:
                    backup.problem = (
                        f"the key backup changed (now version {version.version}); "
                        "run `tuichat recover` to use the new one"
                    )
            if backup.version is None:
                return []
            results = await self._backup_lookups()
            await backup.upload_new()
        except (MatrixHttpError, *NETWORK_ERRORS) as error:
            log.warning("key backup upkeep failed: %s", error)
            return []
        return results

    async def _backup_lookups(self) -> list[Redecrypted]:
        if not self.backup.unlocked or not self._backup_wanted:
            return []
        wanted, self._backup_wanted = self._backup_wanted, {}
        found = []
        still_waiting = self.waiting.session_ids()
        for session_id, room_id in wanted.items():
            if session_id not in still_waiting:
                continue
            self._backup_asked.add(session_id)
            session = await self.backup.fetch_session(room_id, session_id)
            if session is not None:
                found.append(session)
        if not found:
            return []
        _result, results = await self.import_sessions(found, "backup")
        if self.backup.version is not None:
            self.backup.mark_backed_up((s.session_id for s in found), self.backup.version.version)
        return results

    async def restore_backup(
        self, progress: Progress | None = None
    ) -> tuple[ImportResult, list[Redecrypted]]:
        """Import every session of the (unlocked) backup."""
        sessions, failed = await self.backup.download_all(progress)
        result, results = await self.import_sessions(sessions, "backup", failed)
        if self.backup.version is not None:
            self.backup.mark_backed_up(
                (s.session_id for s in sessions), self.backup.version.version
            )
        return result, results

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
        return self._retry(self.waiting.take_unknown_device(users))

    def take_device_news(self) -> tuple[set[str], list[tuple[str, str]], set[str]]:
        """(users whose device lists or trust changed, devices new to us,
        users whose cross-signing identity changed) since the last call."""
        users, self.devices_changed = self.devices_changed, set()
        new, self.olm.new_devices = self.olm.new_devices, []
        changed, self.identity_changes = self.identity_changes, set()
        return users | changed, new, changed

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
            allowed=lambda device: self.may_receive_keys(device, room_id),
        )
        payload = self.olm.group_encrypt(room_id, {"type": event_type, "content": content})
        if "m.relates_to" in content:
            # Relations stay readable to the server (spec).
            payload["m.relates_to"] = content["m.relates_to"]
        self.groups.save(room_id)  # the message count moved on
        return payload

    def rotate(self, room_id: str, reason: str) -> None:
        self.groups.rotate(room_id, reason)

    # -- key export and import ----------------------------------------------------------

    # -- devices and trust ---------------------------------------------------------------

    def _device_ed25519(self, user_id: str, device_id: str) -> str | None:
        device = self.olm.device_store[user_id].get(device_id)
        if device is None or (user_id, device_id) in self.olm.identity_changed:
            return None
        return str(device.ed25519)

    def verified_only(self, room_id: str | None = None) -> bool:
        """Whether keys go only to verified devices (in `room_id`, or the
        global default when the room has no setting of its own)."""
        if room_id is not None:
            value = self.extras.get(f"verified_only:{room_id}")
            if value is not None:
                return value == "1"
        return self.extras.get("verified_only") == "1"

    def set_verified_only(self, room_id: str | None, on: bool) -> None:
        key = "verified_only" if room_id is None else f"verified_only:{room_id}"
        self.extras.set(key, "1" if on else "0")

    def signed_only(self) -> str:
        """Send keys only to devices their owners cross-signed: "verified"
        (for people you verified; the default, as Element), "all" or "off"."""
        value = self.extras.get("signed_only") or "verified"
        return value if value in ("verified", "all", "off") else "verified"

    def set_signed_only(self, value: str) -> None:
        if value not in ("verified", "all", "off"):
            raise ValueError(value)
        self.extras.set("signed_only", value)

    def is_verified(self, device: Any) -> bool:
        """Verified here (emoji, manually) or through cross-signing."""
        return bool(device.verified) or self.cross_signing.device_verified(
            device.user_id, device.id
        )

    def may_receive_keys(self, device: Any, room_id: str | None) -> bool:
        if device.blacklisted or (device.user_id, device.id) in self.olm.identity_changed:
            return False
        verified = self.is_verified(device)
        if self.verified_only(room_id) and not verified:
            return False
        policy = self.signed_only()
        if policy != "off" and not verified:
            signed = self.cross_signing.device_signed_by_owner(device.user_id, device.id)
            if not signed and (policy == "all" or self.cross_signing.user_verified(device.user_id)):
                return False
        return True

    def trust_of(self, device: Any) -> Trust:
        if (device.user_id, device.id) in self.olm.identity_changed:
            return Trust.KEYS_CHANGED
        if device.blacklisted:
            return Trust.BLACKLISTED
        if self.is_verified(device):
            return Trust.VERIFIED
        if device.ignored:
            return Trust.IGNORED
        return Trust.UNVERIFIED

    def _message_trust(self, device: Any) -> str:
        if self.is_verified(device):
            return "verified"
        cross_signing = self.cross_signing
        if cross_signing.has_identity(device.user_id) and not cross_signing.device_signed_by_owner(
            device.user_id, device.id
        ):
            return "unsigned"
        return "unverified"

    def identity_state(self, user_id: str) -> str:
        """ "verified", "unverified", "changed" or "none" (no cross-signing)."""
        cross_signing = self.cross_signing
        if user_id in cross_signing.changed:
            return "changed"
        if not cross_signing.has_identity(user_id):
            return "none"
        return "verified" if cross_signing.user_verified(user_id) else "unverified"

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

    def _on_keys_query(self, raw: dict[str, Any]) -> None:
        self.identity_changes |= self.cross_signing.process_query(raw)
        self.devices_changed.update((raw.get("device_keys") or {}).keys())

    def device_infos(self, user_id: str) -> list[DeviceInfo]:
        olm = self.olm
        infos = [
            DeviceInfo(
                user_id=user_id,
                device_id=device.id,
                display_name=clean_line(device.display_name),
                ed25519=device.ed25519,
                curve25519=device.curve25519,
                trust=self.trust_of(device),
                cross_signed=self._cross_signed(user_id, device.id),
            )
            for device in olm.device_store.active_user_devices(user_id)
            if not (user_id == olm.user_id and device.id == olm.device_id)
        ]
        if user_id == olm.user_id:
            keys = olm.account.identity_keys
            infos.insert(
                0,
                DeviceInfo(
                    user_id=user_id,
                    device_id=olm.device_id,
                    display_name="",
                    ed25519=keys["ed25519"],
                    curve25519=keys["curve25519"],
                    trust=Trust.VERIFIED,
                    this_device=True,
                    cross_signed=self._cross_signed(user_id, olm.device_id),
                ),
            )
        return infos

    def _cross_signed(self, user_id: str, device_id: str) -> bool | None:
        if not self.cross_signing.has_identity(user_id):
            return None
        return self.cross_signing.device_signed_by_owner(user_id, device_id)

    def unverified_devices(self, members: Iterable[str]) -> int:
        """How many devices of `members` (not this one) are not verified and
        not blacklisted: what the room header warns about."""
        olm = self.olm
        count = 0
        for user_id in set(members):
            for device in olm.device_store.active_user_devices(user_id):
                if user_id == olm.user_id and device.id == olm.device_id:
                    continue
                if not device.blacklisted and not self.is_verified(device):
                    count += 1
        return count

    def devices_and_keyless(self, members: Iterable[str]) -> tuple[int, int]:
        """How many devices of `members` (not this one) keys can go to (not
        blacklisted), and how many of the other members are known to have
        none: their device list was fetched and holds no such device (a
        list not fetched yet is not counted, it is unknown)."""
        olm = self.olm
        devices = keyless = 0
        for user_id in set(members):
            usable = [
                device
                for device in olm.device_store.active_user_devices(user_id)
                if not device.blacklisted
                and not (user_id == olm.user_id and device.id == olm.device_id)
            ]
            devices += len(usable)
            known = user_id in olm.tracked_users and user_id not in olm.users_for_key_query
            if not usable and known and user_id != olm.user_id:
                keyless += 1
        return devices, keyless

    def set_trust(self, user_id: str, device_id: str, action: str) -> bool:
        """verify, unverify, blacklist, unblacklist, ignore or unignore a
        device; kept in nio's store. Blacklisting rotates every room session
        the device holds; verifying answers its waiting key requests."""
        device = self.olm.device_store[user_id].get(device_id)
        if device is None:
            return False
        client = self.client
        actions = {
            "verify": client.verify_device,
            "unverify": client.unverify_device,
            "blacklist": client.blacklist_device,
            "unblacklist": client.unblacklist_device,
            "ignore": client.ignore_device,
            "unignore": client.unignore_device,
        }
        if action not in actions:
            raise ValueError(f"unknown trust action {action!r}")
        actions[action](device)
        if action == "blacklist":
            self.groups.rotate_where_shared_with(user_id, device_id, "device blacklisted")
        if action == "verify":
            self.requests.continue_for(user_id, device_id)
        self.devices_changed.add(user_id)
        return True

    def _verified_by_sas(self, user_id: str, device_id: str, master: str | None) -> None:
        self.set_trust(user_id, device_id, "verify")
        if user_id == self.olm.user_id:
            # Our other device: ask it for the cross-signing keys (Element
            # answers only devices it trusts, so only now, not before).
            self._background(self.request_secrets(device_id))
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

    # -- cross-signing: our own keys -------------------------------------------------------

    def own_device_keys(self) -> dict[str, Any]:
        """This device's keys as the server holds them (self-signed)."""
        own = self.cross_signing.identity(self.olm.user_id)
        if own is not None and self.olm.device_id in own.devices:
            return dict(own.devices[self.olm.device_id])
        keys = self.olm.account.identity_keys
        device_keys: dict[str, Any] = {
            "algorithms": self.olm._algorithms,
            "device_id": self.olm.device_id,
            "user_id": self.olm.user_id,
            "keys": {
                f"curve25519:{self.olm.device_id}": keys["curve25519"],
                f"ed25519:{self.olm.device_id}": keys["ed25519"],
            },
        }
        device_keys["signatures"] = {
            self.olm.user_id: {f"ed25519:{self.olm.device_id}": self.olm.sign_json(device_keys)}
        }
        return device_keys

    async def refresh_own_identity(self) -> None:
        self.olm.users_for_key_query.add(self.olm.user_id)
        await self.query_keys()

    async def adopt_cross_signing_secrets(self, secrets_by_usage: dict[str, str]) -> bool:
        """Keep the private keys that match our identity; with the SSK, sign
        this device so others (Element) trust it. Returns whether we signed."""
        if self.cross_signing.identity(self.olm.user_id) is None:
            await self.refresh_own_identity()
        for usage, secret in secrets_by_usage.items():
            self.cross_signing.remember_private(usage, secret)
        signed = await self.cross_signing.sign_own_device(self.own_device_keys())
        if signed:
            self.devices_changed.add(self.olm.user_id)
        return signed

    async def request_secrets(self, device_id: str) -> None:
        """m.secret.request for the cross-signing keys and the backup key,
        to one of our own devices that we just verified."""
        for name in [*SECRET_NAMES.values(), BACKUP_SECRET]:
            request_id = uuid.uuid4().hex
            self._secret_requests[request_id] = (name, device_id)
            content = {
                "name": name,
                "action": "request",
                "requesting_device_id": self.olm.device_id,
                "request_id": request_id,
            }
            await self.groups.send_to_device(
                "m.secret.request", {self.olm.user_id: {device_id: content}}
            )

    async def _secret_received(self, event: dict[str, Any]) -> None:
        """m.secret.send arrives Olm-encrypted; accept it only from our own
        verified device that we asked."""
        content = event.get("content") or {}
        request = self._secret_requests.get(str(content.get("request_id")))
        secret = content.get("secret")
        if request is None or not isinstance(secret, str):
            return
        name, device_id = request
        device = self.olm.device_store[self.olm.user_id].get(device_id)
        if (
            event.get("sender") != self.olm.user_id
            or device is None
            or device.curve25519 != event.get("sender_key")
            or not self.is_verified(device)
        ):
            log.warning("ignoring a secret from a device we did not ask or do not trust")
            return
        del self._secret_requests[str(content.get("request_id"))]
        usage = next((u for u, n in SECRET_NAMES.items() if n == name), None)
        if usage is not None:
            try:
                await self.adopt_cross_signing_secrets({usage: secret})
            except (MatrixHttpError, *NETWORK_ERRORS) as error:
                log.warning("signing this device failed: %s", error)
        elif name == BACKUP_SECRET:
            version = await self.backup.fetch_version()
            if version is not None:
                try:
                    self.backup.use_secret(secret, version)
                except BackupError as error:
                    log.warning("the shared backup key was not usable: %s", error)

    def exportable_sessions(self) -> list[ExportedSession]:
        return [
            ExportedSession(
                room_id=session.room_id,
                sender_key=session.sender_key,
                session_id=session.id,
                session_key=session.export_session(session.first_known_index),
                sender_claimed_ed25519=session.ed25519,
                forwarding_chain=tuple(session.forwarding_chain),
            )
            for session in self.olm.inbound_group_store
        ]

    async def export_keys(self, path: Path, passphrase: str, rounds: int = EXPORT_ROUNDS) -> int:
        """Write every inbound session to `path` (mode 0600); returns how many.
        The key derivation runs in a thread so the UI keeps drawing."""
        sessions = self.exportable_sessions()
        text = await asyncio.to_thread(sessions_to_file, sessions, passphrase, rounds)
        write_private(path, text.encode())
        return len(sessions)

    async def import_keys(
        self, text: str, passphrase: str, progress: Progress | None = None
    ) -> tuple[ImportResult, list[Redecrypted]]:
        """Import an export file's text. A wrong passphrase or a damaged file
        raises KeyFileError before anything is changed."""
        sessions, invalid = await asyncio.to_thread(sessions_from_file, text, passphrase)
        return await self.import_sessions(sessions, "imported", invalid, progress)

    async def import_sessions(
        self,
        sessions: list[ExportedSession],
        source: str,
        invalid: int = 0,
        progress: Progress | None = None,
        chunk: int = 500,
    ) -> tuple[ImportResult, list[Redecrypted]]:
        """Add sessions in chunks (one store transaction each), yielding to
        the event loop in between; then retry the events they unlock."""
        imported = 0
        database = self.client.store.database  # type: ignore[union-attr]
        for start in range(0, len(sessions), chunk):
            with database.atomic():
                for entry in sessions[start : start + chunk]:
                    session = _inbound_session(entry)
                    if session is None:
                        invalid += 1
                    elif self.olm.import_inbound_session(session, source):
                        imported += 1
            if progress is not None:
                progress(min(start + chunk, len(sessions)), len(sessions))
            await asyncio.sleep(0)
        result = ImportResult(total=len(sessions) + invalid, imported=imported, invalid=invalid)
        return result, self.keys_arrived()


def _short_string(value: object) -> bool:
    """A non-empty string of a sane length: user ids, room ids, keys and
    session ids are all far shorter (user and room ids at most 255 bytes)."""
    return isinstance(value, str) and 0 < len(value) <= 255


def _inbound_session(entry: ExportedSession) -> InboundGroupSession | None:
    try:
        session = InboundGroupSession.import_session(
            entry.session_key,
            entry.sender_claimed_ed25519,
            entry.sender_key,
            entry.room_id,
            list(entry.forwarding_chain),
        )
    except Exception:  # noqa: BLE001 - one bad entry must not stop the rest
        return None
    return session if session.id == entry.session_id else None


__all__ = ["CryptoEngine", "ImportResult", "KeyFileError", "Redecrypted"]
