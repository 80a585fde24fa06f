"""Cross-signing: identities, trust through signatures, and our own keys.

matrix-nio has no cross-signing. Spec ("Cross-signing"): each user has a
master key (MSK); it signs a self-signing key (SSK), which signs the user's
devices, and a user-signing key (USK), which signs other users' master keys.
So:

- a device is *signed by its owner* when the owner's SSK signed it and the
  SSK is signed by the owner's MSK;
- another user is *verified by us* when our USK signed their MSK (and our
  USK is signed by our MSK, which we trust because we hold it or it came
  to us over a verified channel);
- a device is *cross-signing verified* when its owner is verified by us
  (or is us) and the owner signed the device.

Identities from /keys/query are checked and kept (with the raw device keys,
whose signatures nio throws away). The first master key seen for each user
is pinned: a different one later is an identity change, shown prominently
until the person looks at it. Our own private keys (from secret storage, a
verified device's m.secret.send, or a bootstrap) are kept in the profile,
sealed under the profile's key (`storage/sealing.py`). Signing uses
pycryptodome's Ed25519.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import vodozemac
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from tuichat.matrix.account.oauth_uia import uia_auth
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.sas import canonical_json
from tuichat.matrix.storage import legacy_sealing
from tuichat.matrix.storage.sealing import Purpose, Sealer
from tuichat.matrix.transport.http import MatrixHttp, MatrixHttpError

log = logging.getLogger(__name__)

MASTER = "master"
SELF_SIGNING = "self_signing"
USER_SIGNING = "user_signing"
USAGES = (MASTER, SELF_SIGNING, USER_SIGNING)
SECRET_NAMES = {
    MASTER: "m.cross_signing.master",
    SELF_SIGNING: "m.cross_signing.self_signing",
    USER_SIGNING: "m.cross_signing.user_signing",
}
QUERY_FIELDS = {
    MASTER: "master_keys",
    SELF_SIGNING: "self_signing_keys",
    USER_SIGNING: "user_signing_keys",
}

# Runs a request that needs user-interactive auth, given the auth dict to add.
AuthedRequest = Callable[[dict[str, Any] | None], Awaitable[dict[str, Any]]]
PasswordAuth = Callable[[str], Awaitable[dict[str, Any]]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def signable(obj: dict[str, Any]) -> bytes:
    return canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    ).encode()


def verify_signature(obj: dict[str, Any], signer: str, key_id: str, public_key: str) -> bool:
    signature = ((obj.get("signatures") or {}).get(signer) or {}).get(key_id)
    if not isinstance(signature, str):
        return False
    try:
        vodozemac.Ed25519PublicKey.from_base64(public_key).verify_signature(
            signable(obj), vodozemac.Ed25519Signature.from_base64(signature)
        )
    except (vodozemac.SignatureException, vodozemac.KeyException, ValueError):
        return False
    return True


def key_of(obj: dict[str, Any] | None) -> str | None:
    """The single public key of a cross-signing key object."""
    keys = (obj or {}).get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        return None
    value = next(iter(keys.values()))
    return value if isinstance(value, str) else None


class SigningKey:
    """A private Ed25519 cross-signing key (32-byte seed)."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self._key = ECC.construct(curve="Ed25519", seed=seed)
        self.public_key = _b64(self._key.public_key().export_key(format="raw"))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_secret(cls, secret: str) -> SigningKey:
        return cls(_unb64(secret))

    @property
    def secret(self) -> str:
        return base64.b64encode(self.seed).decode()

    def sign(self, obj: dict[str, Any], user_id: str) -> dict[str, Any]:
        """`obj` with our signature added (a copy)."""
        signature = _b64(eddsa.new(self._key, "rfc8032").sign(signable(obj)))
        signed = json.loads(json.dumps(obj))
        signed.setdefault("signatures", {}).setdefault(user_id, {})[
            f"ed25519:{self.public_key}"
        ] = signature
        return signed


@dataclass
class Identity:
    """A user's cross-signing keys as the server reports them."""

    user_id: str
    master: dict[str, Any] | None = None
    self_signing: dict[str, Any] | None = None
    user_signing: dict[str, Any] | None = None
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw device keys

    @property
    def master_key(self) -> str | None:
        return key_of(self.master)

    @property
    def self_signing_key(self) -> str | None:
        """The SSK, if the MSK signed it."""
        ssk, msk = key_of(self.self_signing), self.master_key
        if (
            ssk
            and msk
            and verify_signature(self.self_signing or {}, self.user_id, f"ed25519:{msk}", msk)
        ):
            return ssk
        return None

    @property
    def user_signing_key(self) -> str | None:
        usk, msk = key_of(self.user_signing), self.master_key
        if (
            usk
            and msk
            and verify_signature(self.user_signing or {}, self.user_id, f"ed25519:{msk}", msk)
        ):
            return usk
        return None

    def device_signed(self, device_id: str) -> bool:
        ssk = self.self_signing_key
        device = self.devices.get(device_id)
        return bool(ssk and device) and verify_signature(
            device or {}, self.user_id, f"ed25519:{ssk}", ssk or ""
        )


class CrossSigning:
    def __init__(
        self,
        *,
        own_user: str,
        own_device: str,
        extras: CryptoExtrasStore,
        http: MatrixHttp,
        pickle_key: str,
    ) -> None:
        self.own_user = own_user
        self.own_device = own_device
        self.extras = extras
        self.http = http
        self._sealer = Sealer(pickle_key, Purpose.CROSS_SIGNING)
        self.identities: dict[str, Identity] = {}
        self.pinned: dict[str, str] = json.loads(extras.get("pinned_master_keys") or "{}")
        self.changed: set[str] = set(json.loads(extras.get("changed_identities") or "[]"))
        self.private: dict[str, SigningKey] = {}

        def legacy(sealed: str) -> str:
            return legacy_sealing.open_labelled(
                pickle_key, legacy_sealing.CROSS_SIGNING_LABEL, sealed
            )

        for usage in USAGES:
            try:
                secret = extras.get_sealed(f"cross_signing_private:{usage}", self._sealer, legacy)
                if secret is not None:
                    self.private[usage] = SigningKey.from_secret(secret)
            except (ValueError, KeyError):
                log.warning("the stored %s key could not be read; ignoring it", usage)
        for user_id, data in json.loads(extras.get("identities") or "{}").items():
            self.identities[user_id] = Identity(user_id, **data)

    def _save(self) -> None:
        self.extras.set(
            "identities",
            json.dumps(
                {
                    user: {
                        "master": ident.master,
                        "self_signing": ident.self_signing,
                        "user_signing": ident.user_signing,
                        "devices": ident.devices,
                    }
                    for user, ident in self.identities.items()
                }
            ),
        )
        self.extras.set("pinned_master_keys", json.dumps(self.pinned))
        self.extras.set("changed_identities", json.dumps(sorted(self.changed)))

    # -- what the server says ------------------------------------------------------------

    def process_query(self, raw: dict[str, Any]) -> set[str]:
        """Take /keys/query's cross-signing keys and raw device keys; returns
        the users whose master key differs from the one first seen."""
        changed: set[str] = set()
        queried = set((raw.get("device_keys") or {}).keys())
        for key in QUERY_FIELDS.values():
            queried |= set((raw.get(key) or {}).keys())
        for user_id in queried:
            if not isinstance(user_id, str):
                continue
            identity = self.identities.setdefault(user_id, Identity(user_id))
            for usage, key in QUERY_FIELDS.items():
                obj = (raw.get(key) or {}).get(user_id)
                if isinstance(obj, dict) and obj.get("user_id") == user_id:
                    setattr(identity, usage, obj)
            devices = (raw.get("device_keys") or {}).get(user_id)
            if isinstance(devices, dict):
                identity.devices = {d: k for d, k in devices.items() if isinstance(k, dict)}
            master = identity.master_key
            if master:
                pinned = self.pinned.get(user_id)
                if pinned is None:
                    self.pinned[user_id] = master
                elif pinned != master:
                    if user_id not in self.changed:
                        changed.add(user_id)
                    self.changed.add(user_id)
                    if user_id == self.own_user:
                        self._drop_private_keys_not_matching()
        self._save()
        return changed

    def acknowledge_change(self, user_id: str) -> None:
        """The person looked at the identity change: pin the new master key."""
        identity = self.identities.get(user_id)
        if identity and identity.master_key:
            self.pinned[user_id] = identity.master_key
        self.changed.discard(user_id)
        self._save()

    def identity(self, user_id: str) -> Identity | None:
        return self.identities.get(user_id)

    def device_signed_by_owner(self, user_id: str, device_id: str) -> bool:
        identity = self.identities.get(user_id)
        return bool(identity and identity.device_signed(device_id))

    def has_identity(self, user_id: str) -> bool:
        identity = self.identities.get(user_id)
        return bool(identity and identity.master_key)

    # -- trust ---------------------------------------------------------------------------

    def own_master_trusted(self) -> bool:
        own = self.identities.get(self.own_user)
        master = self.private.get(MASTER)
        if own is None or not own.master_key:
            return False
        if master is not None:
            return master.public_key == own.master_key
        # Without the master key itself: its SSK is ours (from secret storage
        # or a verified device) and the MSK signed it.
        ssk = self.private.get(SELF_SIGNING)
        return ssk is not None and ssk.public_key == own.self_signing_key

    def user_verified(self, user_id: str) -> bool:
        if user_id == self.own_user:
            return self.own_master_trusted()
        if user_id in self.changed or not self.own_master_trusted():
            return False
        own = self.identities.get(self.own_user)
        them = self.identities.get(user_id)
        usk = own.user_signing_key if own else None
        if not usk or them is None or them.master is None:
            return False
        return verify_signature(them.master, self.own_user, f"ed25519:{usk}", usk)

    def device_verified(self, user_id: str, device_id: str) -> bool:
        return self.user_verified(user_id) and self.device_signed_by_owner(user_id, device_id)

    # -- our private keys ---------------------------------------------------------------

    def _drop_private_keys_not_matching(self) -> None:
        own = self.identities.get(self.own_user)
        current = {
            MASTER: own.master_key if own else None,
            SELF_SIGNING: key_of(own.self_signing) if own else None,
            USER_SIGNING: key_of(own.user_signing) if own else None,
        }
        for usage, key in list(self.private.items()):
            if key.public_key != current[usage]:
                del self.private[usage]
                self.extras.set(f"cross_signing_private:{usage}", "")

    def remember_private(self, usage: str, secret: str) -> bool:
        """Keep a private key if it belongs to our current public key."""
        try:
            key = SigningKey.from_secret(secret)
        except (ValueError, TypeError):
            return False
        own = self.identities.get(self.own_user)
        expected = {
            MASTER: own.master_key if own else None,
            SELF_SIGNING: key_of(own.self_signing) if own else None,
            USER_SIGNING: key_of(own.user_signing) if own else None,
        }[usage]
        if key.public_key != expected:
            log.warning("a %s key that is not ours was offered; ignoring it", usage)
            return False
        self.private[usage] = key
        self.extras.set_sealed(f"cross_signing_private:{usage}", self._sealer, secret)
        return True

    # -- signing and uploading -------------------------------------------------------------

    async def sign_own_device(self, device_keys: dict[str, Any]) -> bool:
        """Sign this device's keys with our SSK and upload the signature."""
        ssk = self.private.get(SELF_SIGNING)
        if ssk is None:
            return False
        signed = ssk.sign(device_keys, self.own_user)
        await self.http.request(
            "POST", "/keys/signatures/upload", {self.own_user: {self.own_device: signed}}
        )
        self.identities.setdefault(self.own_user, Identity(self.own_user)).devices[
            self.own_device
        ] = signed
        self._save()
        return True

    async def sign_user(self, user_id: str) -> bool:
        """Vouch for another user: our USK signs their master key."""
        usk = self.private.get(USER_SIGNING)
        them = self.identities.get(user_id)
        if usk is None or them is None or them.master is None or not them.master_key:
            return False
        signed = usk.sign(them.master, self.own_user)
        await self.http.request(
            "POST", "/keys/signatures/upload", {user_id: {them.master_key: signed}}
        )
        them.master = signed
        self.acknowledge_change(user_id)
        return True

    async def bootstrap(
        self, device_keys: dict[str, Any], authenticate: PasswordAuth
    ) -> dict[str, SigningKey]:
        """New master, self-signing and user-signing keys: uploaded (with
        user-interactive auth), and this device signed."""
        master, ssk, usk = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()

        def key_object(key: SigningKey, usage: str) -> dict[str, Any]:
            return {
                "user_id": self.own_user,
                "usage": [usage],
                "keys": {f"ed25519:{key.public_key}": key.public_key},
            }

        body = {
            "master_key": key_object(master, MASTER),
            "self_signing_key": master.sign(key_object(ssk, SELF_SIGNING), self.own_user),
            "user_signing_key": master.sign(key_object(usk, USER_SIGNING), self.own_user),
        }
        try:
            await self.http.request("POST", "/keys/device_signing/upload", body)
        except MatrixHttpError as error:
            if error.status != 401 or "session" not in error.body:
                raise
            # The password stage, or an approval in the browser on OAuth 2.0 API servers.
            auth = await uia_auth(error.body, authenticate)
            await self.http.request("POST", "/keys/device_signing/upload", {**body, "auth": auth})
        own = self.identities.setdefault(self.own_user, Identity(self.own_user))
        own.master = body["master_key"]
        own.self_signing = body["self_signing_key"]
        own.user_signing = body["user_signing_key"]
        self.pinned[self.own_user] = master.public_key
        self.changed.discard(self.own_user)
        for usage, key in ((MASTER, master), (SELF_SIGNING, ssk), (USER_SIGNING, usk)):
            self.remember_private(usage, key.secret)
        await self.sign_own_device(device_keys)
        return {MASTER: master, SELF_SIGNING: ssk, USER_SIGNING: usk}
