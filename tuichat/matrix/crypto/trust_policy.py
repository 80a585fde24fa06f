"""Who is trusted, and who room keys go to.

A device is verified here (emoji verification, a manual "verify") or
through cross-signing (`cross_signing.py`). From that this module answers:
a device's trust (`Trust`) and a message's trust marker (`MessageTrust`), a
user's identity state (`IdentityState`), whether a device may receive room
keys (blacklists, changed identity keys, the per-room "verified only" and
the global "signed only" rules), the devices a room header warns about, and
the devices shown on the Devices screen. `set_trust` applies the user's
actions (`TrustAction`) and their consequences.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tuichat.matrix.crypto.cross_signing import CrossSigning
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.group_sessions import GroupSessions
from tuichat.matrix.crypto.key_requests import KeyRequests
from tuichat.matrix.crypto.nio_extensions import TuichatClient, TuichatOlm
from tuichat.model.devices import (
    DeviceInfo,
    IdentityState,
    MessageTrust,
    SignedOnly,
    Trust,
    TrustAction,
)
from tuichat.model.sanitize import clean_line

_SIGNED_ONLY = frozenset(policy.value for policy in SignedOnly)


class TrustPolicy:
    def __init__(
        self,
        client: TuichatClient,
        extras: CryptoExtrasStore,
        cross_signing: CrossSigning,
        groups: GroupSessions,
        requests: KeyRequests,
        devices_changed: set[str],
    ) -> None:
        self.client = client
        self.olm: TuichatOlm = client.tuichat_olm
        self.extras = extras
        self.cross_signing = cross_signing
        self.groups = groups
        self.requests = requests
        # Users whose devices' trust changed; shared with the engine, which
        # reports them.
        self.devices_changed = devices_changed

    # -- rules -----------------------------------------------------------------------

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

    def signed_only(self) -> SignedOnly:
        """Send keys only to devices their owners cross-signed: for people
        you verified (the default, as Element), for all, or off."""
        value = self.extras.get("signed_only")
        return SignedOnly(value) if value in _SIGNED_ONLY else SignedOnly.VERIFIED

    def set_signed_only(self, value: str) -> None:
        if value not in _SIGNED_ONLY:
            raise ValueError(value)
        self.extras.set("signed_only", str(value))

    # -- devices ---------------------------------------------------------------------

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
        if policy != SignedOnly.OFF and not verified:
            signed = self.cross_signing.device_signed_by_owner(device.user_id, device.id)
            if not signed and (
                policy == SignedOnly.ALL or self.cross_signing.user_verified(device.user_id)
            ):
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

    def message_trust(self, device: Any) -> MessageTrust:
        """The marker of a message from `device` (bound to it already)."""
        if self.is_verified(device):
            return MessageTrust.VERIFIED
        cross_signing = self.cross_signing
        if cross_signing.has_identity(device.user_id) and not cross_signing.device_signed_by_owner(
            device.user_id, device.id
        ):
            return MessageTrust.UNSIGNED
        return MessageTrust.UNVERIFIED

    def identity_state(self, user_id: str) -> IdentityState:
        cross_signing = self.cross_signing
        if user_id in cross_signing.changed:
            return IdentityState.CHANGED
        if not cross_signing.has_identity(user_id):
            return IdentityState.NONE
        if cross_signing.user_verified(user_id):
            return IdentityState.VERIFIED
        return IdentityState.UNVERIFIED

    def device_ed25519(self, user_id: str, device_id: str) -> str | None:
        """The device's signing key, unless unknown or changed since first seen."""
        device = self.olm.device_store[user_id].get(device_id)
        if device is None or (user_id, device_id) in self.olm.identity_changed:
            return None
        return str(device.ed25519)

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
        """Apply a `TrustAction` to a device; kept in nio's store.
        Blacklisting rotates every room session the device holds; verifying
        answers its waiting key requests. ValueError for another action."""
        device = self.olm.device_store[user_id].get(device_id)
        if device is None:
            return False
        client = self.client
        actions = {
            TrustAction.VERIFY: client.verify_device,
            TrustAction.UNVERIFY: client.unverify_device,
            TrustAction.BLACKLIST: client.blacklist_device,
            TrustAction.UNBLACKLIST: client.unblacklist_device,
            TrustAction.IGNORE: client.ignore_device,
            TrustAction.UNIGNORE: client.unignore_device,
        }
        if action not in actions:
            raise ValueError(f"unknown trust action {action!r}")
        actions[TrustAction(action)](device)
        if action == TrustAction.BLACKLIST:
            self.groups.rotate_where_shared_with(user_id, device_id, "device blacklisted")
        if action == TrustAction.VERIFY:
            self.requests.continue_for(user_id, device_id)
        self.devices_changed.add(user_id)
        return True
