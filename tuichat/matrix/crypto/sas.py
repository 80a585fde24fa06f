"""Interactive emoji verification (SAS, `m.sas.v1`), written for tuichat.

nio 0.26's SAS does not complete against Element's stack: it encodes the
commitment as hex where the spec wants unpadded base64 (Element cancels
with m.key_mismatch), maps vodozemac's emoji indices to the wrong emoji,
announces MAC method `hkdf-hmac-sha256` but computes `.v2`, and has no
request/ready/done. This module implements the spec's flow on vodozemac's
primitives (`Sas`, `EstablishedSas`) and is independent of the transport:
it asks a `send` callback to deliver each message, so the to-device flow
here and the in-room flow of cross-signing share it.

Flow: request -> ready -> start -> accept -> key (both) -> the people
compare 7 emoji -> mac (both) -> done (both). The legacy flow that opens
with `start` is accepted too.

Interoperating with nio (which tuichat's tests use as a peer): a peer that
sends a hex commitment is nio; with it, MACs announced as the old
`hkdf-hmac-sha256` are computed the `.v2` way, which is what nio does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import vodozemac

from tuichat.matrix.crypto import qr_verification as qr
from tuichat.matrix.crypto.qr_verification import OUR_METHODS, SAS_METHOD
from tuichat.matrix.crypto.sas_emoji import SAS_EMOJI
from tuichat.model.verification import Phase, VerificationView

log = logging.getLogger(__name__)

KEY_AGREEMENT = "curve25519-hkdf-sha256"
HASH = "sha256"
MAC_V2 = "hkdf-hmac-sha256.v2"
MAC_MSC3783 = "org.matrix.msc3783.hkdf-hmac-sha256"
MAC_OLD = "hkdf-hmac-sha256"
MAC_METHODS = (MAC_V2, MAC_MSC3783, MAC_OLD)
SAS_STRINGS = ("emoji", "decimal")
TIMEOUT_SECONDS = 600.0

Send = Callable[[str, dict[str, Any]], Awaitable[bool]]
# (user id, device id) -> the device's ed25519 key, if we know the device.
KeyLookup = Callable[[str, str], str | None]
# user id -> their cross-signing master key, if they have one.
MasterLookup = Callable[[str], str | None]
# () -> our own master key, if this device trusts it (else None).
OwnMasterLookup = Callable[[], str | None]
# user id -> (fetches their device and cross-signing keys from the server)
RefreshKeys = Callable[[str], Awaitable[None]]


CANCEL_REASONS = {
    "m.user": "cancelled by the user",
    "m.timeout": "the verification timed out",
    "m.unknown_transaction": "unknown verification",
    "m.unknown_method": "no common verification method",
    "m.unexpected_message": "an unexpected message arrived",
    "m.key_mismatch": "the keys did not match",
    "m.user_mismatch": "the user did not match",
    "m.invalid_message": "an invalid message arrived",
    "m.accepted": "accepted on another device",
    "m.mismatched_commitment": "the key commitment did not match",
    "m.mismatched_sas": "the emoji did not match",
}


def canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _unpadded_b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def commitment(public_key: str, start_content: dict[str, Any]) -> str:
    """The spec's commitment: unpadded base64 of sha256(key + canonical start)."""
    digest = hashlib.sha256((public_key + canonical_json(start_content)).encode()).digest()
    return _unpadded_b64(digest)


def emoji_for(indices: bytes | list[int]) -> list[tuple[str, str]]:
    return [SAS_EMOJI[index] for index in indices]


class SasVerification:
    """One verification with one device of another (or our own) user."""

    def __init__(
        self,
        *,
        transaction_id: str,
        own_user: str,
        own_device: str,
        own_ed25519: str,
        other_user: str,
        other_device: str | None,
        we_requested: bool,
        send: Send,
        device_key: KeyLookup,
        master_key: MasterLookup | None = None,
        refresh_keys: RefreshKeys | None = None,
        trusted_own_master: OwnMasterLookup | None = None,
        room_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transaction_id = transaction_id
        self.own_user = own_user
        self.own_device = own_device
        self.own_ed25519 = own_ed25519
        self.other_user = other_user
        self.other_device = other_device
        self.we_requested = we_requested
        self._send = send
        self._send_lock = asyncio.Lock()
        self._device_key = device_key
        self._master_key = master_key or (lambda user: None)
        self._refresh_keys = refresh_keys
        self._trusted_own_master = trusted_own_master or (lambda: None)
        # In-room verification (between users): the request's event id is
        # the transaction id, and messages refer to it by m.relates_to.
        self.room_id = room_id
        # Their cross-signing master key, once their MAC proved it.
        self.verified_master: str | None = None
        self._clock = clock
        self.deadline = clock() + TIMEOUT_SECONDS
        self.phase = Phase.REQUESTED
        # The methods the other side offered (their request or ready).
        self.their_methods: list[str] = []
        # The QR code we show (None: none, emoji only), and whether the
        # verified device key was checked by this flow (a QR code of modes
        # 0x00 and 0x02 proves a master key, not their device's key).
        self.qr: qr.QrPayload | None = None
        self.device_key_checked = True
        self._sas = vodozemac.Sas()
        self._established: vodozemac.EstablishedSas | None = None
        self._our_start: dict[str, Any] | None = None
        self._their_start: dict[str, Any] | None = None
        self._we_started = False
        self._their_commitment: str | None = None
        self._their_key: str | None = None
        self._mac_method = MAC_V2
        self._nio_peer = False
        self._sas_strings: list[str] = list(SAS_STRINGS)
        self._their_mac: dict[str, Any] | None = None
        self._sent_mac = False
        self._sent_done = False
        self._their_done = False
        self.cancel_code = ""
        self.cancel_reason = ""
        self.cancelled_by_us = False
        self.verified_keys: list[str] = []
        # Opened with `start` and no request (the older flow nio uses).
        self.legacy = False
        self.emoji: list[tuple[str, str]] = []
        self.decimals: tuple[int, ...] = ()

    # -- views -----------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.DONE, Phase.CANCELLED)

    def view(self) -> VerificationView:
        return VerificationView(
            transaction_id=self.transaction_id,
            other_user=self.other_user,
            other_device=self.other_device,
            we_requested=self.we_requested,
            phase=self.phase,
            emoji=list(self.emoji),
            decimals=self.decimals,
            cancel_code=self.cancel_code,
            cancel_reason=self.cancel_reason,
            cancelled_by_us=self.cancelled_by_us,
            their_mac_received=self._their_mac is not None,
            verified=self.phase is Phase.DONE,
            qr=self.qr.encode() if self.qr is not None and self.phase is Phase.READY else b"",
        )

    def _content(self, **fields: Any) -> dict[str, Any]:
        if self.room_id is not None:
            relation = {"rel_type": "m.reference", "event_id": self.transaction_id}
            return {**fields, "m.relates_to": relation}
        return {"transaction_id": self.transaction_id, **fields}

    async def _out(self, event_type: str, content: dict[str, Any]) -> bool:
        # One message at a time, in the order they were made: the `done` that
        # the other side's MAC triggers must not overtake our own `mac` still
        # being sent (Element ignores a `done` before the MAC, then waits).
        async with self._send_lock:
            return await self._send(event_type, content)

    # -- our actions -----------------------------------------------------------------

    async def request(self) -> bool:
        return await self._out(
            "m.key.verification.request",
            self._content(
                from_device=self.own_device,
                methods=list(OUR_METHODS),
                timestamp=int(time.time() * 1000),
            ),
        )

    async def accept_request(self) -> bool:
        """Answer their request with `ready`; they start the SAS next."""
        if self.phase is not Phase.REQUESTED or self.we_requested:
            return False
        self.phase = Phase.READY
        sent = await self._out(
            "m.key.verification.ready",
            self._content(from_device=self.own_device, methods=list(OUR_METHODS)),
        )
        if qr.they_can_scan(self.their_methods):
            self.qr = await self._make_qr()
        return sent

    async def start_emoji(self) -> None:
        """Compare emoji instead of (or before) a QR code being scanned."""
        if self.phase is Phase.READY and not self._we_started and self.other_device:
            await self.start()

    async def _make_qr(self) -> qr.QrPayload | None:
        keys = await self._qr_keys(fetch=True)
        return qr.payload_for(self.transaction_id, keys)

    async def _qr_keys(self, *, fetch: bool) -> qr.QrKeys:
        device = self.other_device
        own = self.other_user == self.own_user
        unknown = self._master_key(self.other_user) is None or bool(
            own and device and self._device_key(self.other_user, device) is None
        )
        if fetch and unknown and self._refresh_keys is not None:
            await self._refresh_keys(self.other_user)
        return qr.QrKeys(
            own_user=self.own_user,
            own_ed25519=self.own_ed25519,
            other_user=self.other_user,
            trusted_own_master=self._trusted_own_master(),
            other_master=self._master_key(self.other_user),
            other_device_key=self._device_key(self.other_user, device) if device else None,
        )

    async def start(self) -> bool:
        content = self._content(
            from_device=self.own_device,
            method=SAS_METHOD,
            key_agreement_protocols=[KEY_AGREEMENT],
            hashes=[HASH],
            message_authentication_codes=list(MAC_METHODS),
            short_authentication_string=list(SAS_STRINGS),
        )
        self._our_start = content
        self._we_started = True
        self.phase = Phase.STARTED
        return await self._out("m.key.verification.start", content)

    async def confirm(self) -> None:
        """The people compared the emoji and they match: send our MAC. Or:
        they did scan our QR code: trust what it said and send `done`."""
        if self.phase is Phase.QR_SCANNED:
            return await self._confirm_scan()
        if self.phase is not Phase.SHOW_SAS:
            return
        assert self._established is not None and self.other_device is not None
        base = (
            f"MATRIX_KEY_VERIFICATION_MAC{self.own_user}{self.own_device}"
            f"{self.other_user}{self.other_device}{self.transaction_id}"
        )
        key_id = f"ed25519:{self.own_device}"
        mac = {key_id: self._mac(self.own_ed25519, base + key_id)}
        own_master = self._trusted_own_master()
        if own_master:
            # Our cross-signing identity rides along, if this device trusts
            # it (holds its keys): they can vouch for it. A key known only
            # from the server is not ours to vouch for (nor does Element).
            master_id = f"ed25519:{own_master}"
            mac[master_id] = self._mac(own_master, base + master_id)
        content = self._content(mac=mac, keys=self._mac(",".join(sorted(mac)), base + "KEY_IDS"))
        self.phase = Phase.CONFIRMED
        self._sent_mac = True
        await self._out("m.key.verification.mac", content)
        await self._maybe_done()

    async def mismatch(self) -> None:
        await self.cancel("m.mismatched_sas")

    async def cancel(self, code: str = "m.user", reason: str | None = None) -> None:
        if self.finished:
            return
        self._cancelled(code, reason, by_us=True)
        await self._out(
            "m.key.verification.cancel",
            self._content(code=code, reason=reason or CANCEL_REASONS.get(code, code)),
        )

    async def check_timeout(self) -> bool:
        if not self.finished and self._clock() > self.deadline:
            await self.cancel("m.timeout")
            return True
        return False

    # -- their messages ----------------------------------------------------------------

    def _cancelled(self, code: str, reason: str | None, *, by_us: bool) -> None:
        self.phase = Phase.CANCELLED
        self.cancel_code = code
        self.cancel_reason = CANCEL_REASONS.get(code) or reason or code
        self.cancelled_by_us = by_us

    async def handle(
        self, event_type: str, content: dict[str, Any], sender_device: str | None
    ) -> None:
        """Process one message from the other side (already checked to come
        from the other user)."""
        if self.finished:
            return
        kind = event_type.rsplit(".", 1)[-1]
        handler = {
            "ready": self._on_ready,
            "start": self._on_start,
            "accept": self._on_accept,
            "key": self._on_key,
            "mac": self._on_mac,
            "done": self._on_done,
            "cancel": self._on_cancel,
        }.get(kind)
        if handler is None:
            return
        try:
            await handler(content, sender_device)
        except (KeyError, TypeError, ValueError, vodozemac.SasException) as error:
            log.warning("invalid verification message %s: %s", event_type, error)
            await self.cancel("m.invalid_message")

    async def _on_cancel(self, content: dict[str, Any], _device: str | None) -> None:
        code = content.get("code") if isinstance(content.get("code"), str) else "m.user"
        self._cancelled(str(code), content.get("reason"), by_us=False)

    async def _on_ready(self, content: dict[str, Any], device: str | None) -> None:
        if not self.we_requested or self.phase is not Phase.REQUESTED:
            return await self.cancel("m.unexpected_message")
        methods = content.get("methods") or []
        self.their_methods = [m for m in methods if isinstance(m, str)]
        can_scan = qr.they_can_scan(methods)
        if SAS_METHOD not in methods and not can_scan:
            return await self.cancel("m.unknown_method")
        self.other_device = str(content.get("from_device") or device or "")
        self.phase = Phase.READY
        if can_scan:
            self.qr = await self._make_qr()
            if self.qr is not None or self.finished:
                return  # they scan it, or the person here chooses emoji
        if SAS_METHOD not in methods:
            return await self.cancel("m.unknown_method")
        await self.start()

    async def _on_start(self, content: dict[str, Any], device: str | None) -> None:
        if self._we_started:
            # Both sides started: the lexicographically smaller party wins.
            ours = (self.own_user, self.own_device)
            theirs = (self.other_user, str(content.get("from_device") or device))
            if ours < theirs:
                return
            self._we_started = False
            self._our_start = None
        if content.get("method") == qr.RECIPROCATE:
            return await self._on_reciprocate(content, device)
        if content.get("method") != SAS_METHOD:
            return await self.cancel("m.unknown_method")
        if KEY_AGREEMENT not in (content.get("key_agreement_protocols") or []):
            return await self.cancel("m.unknown_method")
        if HASH not in (content.get("hashes") or []):
            return await self.cancel("m.unknown_method")
        offered_macs = content.get("message_authentication_codes") or []
        mac = next((m for m in MAC_METHODS if m in offered_macs), None)
        strings = [
            s for s in SAS_STRINGS if s in (content.get("short_authentication_string") or [])
        ]
        if mac is None or not strings:
            return await self.cancel("m.unknown_method")
        self.other_device = str(content.get("from_device") or device or self.other_device or "")
        self._mac_method = mac
        self._sas_strings = strings
        self._their_start = content
        self.phase = Phase.ACCEPTED
        await self._out(
            "m.key.verification.accept",
            self._content(
                method=SAS_METHOD,
                key_agreement_protocol=KEY_AGREEMENT,
                hash=HASH,
                message_authentication_code=mac,
                short_authentication_string=strings,
                commitment=commitment(self._sas.public_key.to_base64(), content),
            ),
        )

    async def _on_reciprocate(self, content: dict[str, Any], device: str | None) -> None:
        """They scanned our code (and checked our keys in it)."""
        if self.qr is None or self.phase is not Phase.READY:
            return await self.cancel("m.unknown_method")
        if not self.qr.secret_matches(content.get("secret")):
            log.warning("verification %s: the QR code's secret did not match", self.transaction_id)
            return await self.cancel("m.key_mismatch")
        self.other_device = str(content.get("from_device") or device or self.other_device or "")
        self.phase = Phase.QR_SCANNED

    async def _confirm_scan(self) -> None:
        """The person here saw their device confirm the scan."""
        assert self.qr is not None
        result = qr.outcome(self.qr, await self._qr_keys(fetch=False))
        if result is None:
            log.warning("verification %s: keys changed since the QR code", self.transaction_id)
            return await self.cancel("m.key_mismatch")
        self.device_key_checked = result.device_key is not None
        self.verified_master = result.master_key
        proven = (result.device_key, result.master_key)
        self.verified_keys = [f"ed25519:{key}" for key in proven if key]
        self.phase = Phase.CONFIRMED
        self._sent_mac = True  # nothing to MAC: the scan proved the keys
        self._sent_done = True
        await self._out("m.key.verification.done", self._content())
        if self._their_done:
            self.phase = Phase.DONE

    async def _on_accept(self, content: dict[str, Any], _device: str | None) -> None:
        if not self._we_started or self.phase is not Phase.STARTED:
            return await self.cancel("m.unexpected_message")
        if content.get("key_agreement_protocol") != KEY_AGREEMENT or content.get("hash") != HASH:
            return await self.cancel("m.unknown_method")
        mac = content.get("message_authentication_code")
        if mac not in MAC_METHODS:
            return await self.cancel("m.unknown_method")
        self._mac_method = str(mac)
        strings = content.get("short_authentication_string") or []
        self._sas_strings = [s for s in SAS_STRINGS if s in strings] or list(SAS_STRINGS)
        self._their_commitment = str(content["commitment"])
        self.phase = Phase.ACCEPTED
        await self._out(
            "m.key.verification.key", self._content(key=self._sas.public_key.to_base64())
        )

    async def _on_key(self, content: dict[str, Any], _device: str | None) -> None:
        if self.phase is not Phase.ACCEPTED or self._their_key is not None:
            return await self.cancel("m.unexpected_message")
        their_key = str(content["key"])
        if self._we_started:
            assert self._our_start is not None
            if not self._commitment_matches(their_key):
                return await self.cancel("m.mismatched_commitment")
        self._their_key = their_key
        self._established = self._sas.diffie_hellman(
            vodozemac.Curve25519PublicKey.from_base64(their_key)
        )
        if not self._we_started:
            await self._out(
                "m.key.verification.key", self._content(key=self._sas.public_key.to_base64())
            )
        sas_bytes = self._established.bytes(self._sas_info())
        self.emoji = emoji_for(list(sas_bytes.emoji_indices))
        self.decimals = tuple(sas_bytes.decimals)
        self.phase = Phase.SHOW_SAS

    def _commitment_matches(self, their_key: str) -> bool:
        assert self._our_start is not None and self._their_commitment is not None
        digest = hashlib.sha256((their_key + canonical_json(self._our_start)).encode()).digest()
        if secrets.compare_digest(self._their_commitment, _unpadded_b64(digest)):
            return True
        if secrets.compare_digest(self._their_commitment, digest.hex()):
            self._nio_peer = True  # nio's hex commitment (see module docstring)
            return True
        return False

    def _sas_info(self) -> str:
        assert self._their_key is not None and self.other_device is not None
        ours = f"{self.own_user}|{self.own_device}|{self._sas.public_key.to_base64()}"
        theirs = f"{self.other_user}|{self.other_device}|{self._their_key}"
        first, second = (ours, theirs) if self._we_started else (theirs, ours)
        return f"MATRIX_KEY_VERIFICATION_SAS|{first}|{second}|{self.transaction_id}"

    def _mac(self, value: str, info: str) -> str:
        assert self._established is not None
        if self._mac_method == MAC_OLD and not self._nio_peer:
            return self._established.calculate_mac_invalid_base64(value, info)
        return self._established.calculate_mac(value, info)

    async def _on_mac(self, content: dict[str, Any], _device: str | None) -> None:
        if self.phase not in (Phase.SHOW_SAS, Phase.CONFIRMED):
            return await self.cancel("m.unexpected_message")
        self._their_mac = content
        if self.phase is Phase.CONFIRMED:
            await self._check_their_mac()

    async def _check_their_mac(self) -> None:
        content = self._their_mac
        assert content is not None and self.other_device is not None
        macs = content.get("mac")
        if not isinstance(macs, dict) or not macs:
            return await self.cancel("m.invalid_message")
        base = (
            f"MATRIX_KEY_VERIFICATION_MAC{self.other_user}{self.other_device}"
            f"{self.own_user}{self.own_device}{self.transaction_id}"
        )
        if content.get("keys") != self._mac(",".join(sorted(macs)), base + "KEY_IDS"):
            log.warning(
                "verification %s: the MAC of the key ids did not match", self.transaction_id
            )
            return await self.cancel("m.key_mismatch")
        device_key_id = f"ed25519:{self.other_device}"
        their_master = self._master_key(self.other_user)
        unknown_keys = self._device_key(self.other_user, self.other_device) is None or (
            their_master is None and any(key_id != device_key_id for key_id in macs)
        )
        if unknown_keys and self._refresh_keys is not None:
            # A device we have not looked up yet (a new session of our own
            # user that shares no room with us, say): fetch its keys before
            # judging the MAC, which then proves them.
            await self._refresh_keys(self.other_user)
            if self.finished:
                return
            their_master = self._master_key(self.other_user)
        verified = []
        for key_id, mac in macs.items():
            if key_id == device_key_id:
                known = self._device_key(self.other_user, self.other_device)
                if known is None or mac != self._mac(known, base + key_id):
                    log.warning(
                        "verification %s: device key %s %s",
                        self.transaction_id,
                        key_id,
                        "unknown" if known is None else "did not match its MAC",
                    )
                    return await self.cancel("m.key_mismatch")
                verified.append(key_id)
            elif their_master and key_id == f"ed25519:{their_master}":
                if mac != self._mac(their_master, base + key_id):
                    log.warning(
                        "verification %s: master key %s did not match its MAC",
                        self.transaction_id,
                        key_id,
                    )
                    return await self.cancel("m.key_mismatch")
                verified.append(key_id)
                self.verified_master = their_master
            # Keys we do not know are ignored (the spec allows that).
        if device_key_id not in verified:
            return await self.cancel("m.key_mismatch")
        self.verified_keys = verified
        await self._maybe_done()

    async def _maybe_done(self) -> None:
        if self._sent_mac and self._their_mac is not None and not self.verified_keys:
            await self._check_their_mac()
            if self.finished:
                return
        if self._sent_mac and self.verified_keys and not self._sent_done:
            self._sent_done = True
            await self._out("m.key.verification.done", self._content())
        # The legacy flow (opened by `start`, no request) has no `done`.
        if self._sent_done and (self._their_done or self.legacy):
            self.phase = Phase.DONE

    async def _on_done(self, content: dict[str, Any], _device: str | None) -> None:
        self._their_done = True
        if self._sent_done:
            self.phase = Phase.DONE
