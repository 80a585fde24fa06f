"""Server-side key backup, `m.megolm_backup.v1.curve25519-aes-sha2`.

Each Megolm session is stored encrypted to the backup's Curve25519 public
key (vodozemac's PkEncryption / PkDecryption); whoever holds the private
key (kept in secret storage, unlocked by the recovery key) can restore
them. nio has no key backup; this module provides:

- reading the current backup version and checking it is one we may trust
  (we hold its private key, or its auth_data is signed by this device or
  by one of our own verified devices);
- restoring every session, or fetching just one when an event waits for it;
- uploading the sessions this device holds that the backup lacks, in
  batches, noticing when the backup version changed or was deleted;
- creating a new backup version (for `tuichat recover --setup`).

The private key is kept in the profile, sealed with the profile's key
(`storage/sealing.py`), so later sessions do not ask for the recovery key.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import vodozemac

from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.key_export import ExportedSession
from tuichat.matrix.crypto.nio_extensions import MEGOLM, TuichatOlm
from tuichat.matrix.crypto.sas import canonical_json
from tuichat.matrix.storage import legacy_sealing
from tuichat.matrix.storage.sealing import Purpose, Sealer
from tuichat.matrix.transport.http import MatrixHttp, MatrixHttpError, path_segment

log = logging.getLogger(__name__)

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
BACKUP_SECRET = "m.megolm_backup.v1"
UPLOAD_BATCH = 100

Progress = Callable[[int, int], None]


class BackupError(Exception):
    """Something about the backup the user must hear (message is for them)."""


@dataclass(frozen=True)
class BackupVersion:
    version: str
    algorithm: str
    auth_data: dict[str, Any]
    count: int = 0

    @property
    def public_key(self) -> str | None:
        value = self.auth_data.get("public_key")
        return value if isinstance(value, str) else None


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def decryption_from_secret(secret: str) -> vodozemac.PkDecryption:
    """The backup private key as secret storage holds it (base64)."""
    try:
        return vodozemac.PkDecryption.from_key(
            vodozemac.Curve25519SecretKey.from_bytes(_unb64(secret))
        )
    except (ValueError, vodozemac.KeyException, vodozemac.PkInvalidKeySizeException):
        raise BackupError("the stored key-backup key is malformed") from None


def secret_from_decryption(decryption: vodozemac.PkDecryption) -> str:
    return base64.b64encode(decryption.key.to_bytes()).decode()


class KeyBackup:
    def __init__(
        self,
        http: MatrixHttp,
        olm: TuichatOlm,
        extras: CryptoExtrasStore,
        pickle_key: str,
    ) -> None:
        self.http = http
        self.olm = olm
        self.extras = extras
        self._sealer = Sealer(pickle_key, Purpose.BACKUP_KEY)
        self.version: BackupVersion | None = None
        self._decryption: vodozemac.PkDecryption | None = None
        self.problem = ""  # why uploads stopped, for the user

        def legacy(sealed: str) -> str:
            return legacy_sealing.open_labelled(pickle_key, legacy_sealing.BACKUP_KEY_LABEL, sealed)

        try:
            stored = self.extras.get_sealed("backup_key", self._sealer, legacy)
            if stored is not None:
                self._decryption = decryption_from_secret(stored)
        except (BackupError, ValueError):
            log.warning("the cached backup key could not be read; ignoring it")

    @property
    def unlocked(self) -> bool:
        return self._decryption is not None

    @property
    def public_key(self) -> str | None:
        return self._decryption.public_key.to_base64() if self._decryption else None

    def remember(self, decryption: vodozemac.PkDecryption, version: str) -> None:
        self._decryption = decryption
        self.extras.set_sealed("backup_key", self._sealer, secret_from_decryption(decryption))
        self.extras.set("backup_version", version)

    # -- the backup on the server -------------------------------------------------------

    async def fetch_version(self) -> BackupVersion | None:
        try:
            reply = await self.http.request("GET", "/room_keys/version")
        except MatrixHttpError as error:
            if error.status == 404:
                self.version = None
                return None
            raise
        auth = reply.get("auth_data") if isinstance(reply.get("auth_data"), dict) else {}
        self.version = BackupVersion(
            version=str(reply.get("version", "")),
            algorithm=str(reply.get("algorithm", "")),
            auth_data=auth,
            count=int(reply.get("count", 0) or 0),
        )
        return self.version

    def use_secret(self, secret: str, version: BackupVersion) -> None:
        """Unlock with the private key from secret storage; it must belong to
        the current backup."""
        if version.algorithm != BACKUP_ALGORITHM:
            raise BackupError(f"the backup uses {version.algorithm!r}, which tuichat cannot read")
        decryption = decryption_from_secret(secret)
        if decryption.public_key.to_base64() != version.public_key:
            raise BackupError(
                "the key in secret storage does not belong to the current backup "
                f"(version {version.version}); the backup may have been replaced"
            )
        self.remember(decryption, version.version)

    def trusted(self, version: BackupVersion) -> bool:
        """Whether keys may be uploaded to this backup."""
        if version.algorithm != BACKUP_ALGORITHM or not version.public_key:
            return False
        if self._decryption is not None and self.public_key == version.public_key:
            return True
        signatures = version.auth_data.get("signatures")
        own = signatures.get(self.olm.user_id) if isinstance(signatures, dict) else None
        if not isinstance(own, dict):
            return False
        signed = {k: v for k, v in version.auth_data.items() if k not in ("signatures", "unsigned")}
        for key_id in own:
            if not key_id.startswith("ed25519:"):
                continue
            device_id = key_id.split(":", 1)[1]
            if device_id == self.olm.device_id:
                key = self.olm.account.identity_keys["ed25519"]
            else:
                device = self.olm.device_store[self.olm.user_id].get(device_id)
                if device is None or not device.verified:
                    continue
                key = device.ed25519
            if self._verify(signed, own[key_id], key):
                return True
        return False

    @staticmethod
    def _verify(content: dict[str, Any], signature: str, key: str) -> bool:
        try:
            vodozemac.Ed25519PublicKey.from_base64(key).verify_signature(
                canonical_json(content).encode(), vodozemac.Ed25519Signature.from_base64(signature)
            )
        except (vodozemac.SignatureException, vodozemac.KeyException, ValueError):
            return False
        return True

    # -- restoring ------------------------------------------------------------------------

    def _decrypt(self, room_id: str, session_id: str, data: dict[str, Any]) -> ExportedSession:
        assert self._decryption is not None
        session_data = data.get("session_data") or {}
        message = vodozemac.Message.from_base64(
            session_data["ciphertext"], session_data["mac"], session_data["ephemeral"]
        )
        plain = json.loads(self._decryption.decrypt(message))
        if plain.get("algorithm", MEGOLM) != MEGOLM:
            raise ValueError("not a Megolm session")
        return ExportedSession(
            room_id=room_id,
            sender_key=plain["sender_key"],
            session_id=session_id,
            session_key=plain["session_key"],
            sender_claimed_ed25519=(plain.get("sender_claimed_keys") or {})["ed25519"],
            forwarding_chain=tuple(plain.get("forwarding_curve25519_key_chain") or ()),
        )

    def _decrypt_rooms(
        self, rooms: dict[str, Any], progress: Progress | None
    ) -> tuple[list[ExportedSession], int]:
        entries = [
            (room_id, session_id, data)
            for room_id, room in rooms.items()
            if isinstance(room, dict)
            for session_id, data in (room.get("sessions") or {}).items()
        ]
        sessions, failed = [], 0
        for position, (room_id, session_id, data) in enumerate(entries, 1):
            try:
                sessions.append(self._decrypt(room_id, session_id, data))
            except (KeyError, TypeError, ValueError, vodozemac.PkDecodeException) as error:
                log.warning("a backed-up session could not be decrypted: %s", error)
                failed += 1
            if progress is not None and position % 250 == 0:
                progress(position, len(entries))
        if progress is not None:
            progress(len(entries), len(entries))
        return sessions, failed

    async def download_all(
        self, progress: Progress | None = None
    ) -> tuple[list[ExportedSession], int]:
        """Every session in the backup, decrypted: (sessions, undecryptable)."""
        version = self.version or await self.fetch_version()
        if version is None:
            raise BackupError("there is no key backup on this account")
        if self._decryption is None:
            raise BackupError("the backup is locked: unlock it with the recovery key")
        reply = await self._get_keys(version.version, "/room_keys/keys")
        rooms = reply.get("rooms") if isinstance(reply.get("rooms"), dict) else {}
        return self._decrypt_rooms(rooms, progress)

    async def fetch_session(self, room_id: str, session_id: str) -> ExportedSession | None:
        """One session, for an event that waits for it."""
        if self._decryption is None:
            return None
        version = self.version or await self.fetch_version()
        if version is None:
            return None
        path = f"/room_keys/keys/{path_segment(room_id)}/{path_segment(session_id)}"
        try:
            data = await self._get_keys(version.version, path)
        except BackupError:
            return None
        except MatrixHttpError as error:
            if error.status == 404:
                return None
            raise
        try:
            return self._decrypt(room_id, session_id, data)
        except (KeyError, TypeError, ValueError, vodozemac.PkDecodeException):
            return None

    async def _get_keys(self, version: str, path: str) -> dict[str, Any]:
        try:
            return await self.http.request("GET", path, query={"version": version})
        except MatrixHttpError as error:
            if error.errcode == "M_NOT_FOUND" and path == "/room_keys/keys":
                raise BackupError(f"backup version {version} was deleted") from None
            raise

    def mark_backed_up(self, session_ids: Iterable[str], version: str) -> None:
        self.extras.mark_backed_up(session_ids, version)

    # -- uploading ---------------------------------------------------------------------

    def _pending(self, version: str) -> list[Any]:
        done = self.extras.backed_up(version)
        return [s for s in self.olm.inbound_group_store if s.id not in done]

    async def upload_new(self) -> int:
        """Back up sessions the backup lacks; returns how many went up."""
        version = self.version
        if version is None or not version.public_key:
            return 0
        if not self.trusted(version):
            # A new device does not trust the account's backup until it is
            # recovered or verified: normal, so only said when it matters.
            if self.unlocked:
                self.problem = (
                    f"backup version {version.version} is not signed by a device you trust; "
                    "no keys are uploaded to it"
                )
            log.info("not uploading to untrusted backup version %s", version.version)
            return 0
        encryption = vodozemac.PkEncryption.from_key(
            vodozemac.Curve25519PublicKey.from_base64(version.public_key)
        )
        pending = self._pending(version.version)
        uploaded = 0
        for start in range(0, len(pending), UPLOAD_BATCH):
            batch = pending[start : start + UPLOAD_BATCH]
            rooms: dict[str, Any] = {}
            for session in batch:
                payload = {
                    "algorithm": MEGOLM,
                    "sender_key": session.sender_key,
                    "sender_claimed_keys": {"ed25519": session.ed25519},
                    "forwarding_curve25519_key_chain": list(session.forwarding_chain),
                    "session_key": session.export_session(session.first_known_index),
                }
                message = encryption.encrypt(json.dumps(payload).encode())
                source = self.extras.key_source(session.room_id, session.sender_key, session.id)
                rooms.setdefault(session.room_id, {"sessions": {}})["sessions"][session.id] = {
                    "first_message_index": session.first_known_index,
                    "forwarded_count": len(session.forwarding_chain),
                    "is_verified": source is None,
                    "session_data": {
                        "ephemeral": _b64(message.ephemeral_key),
                        "ciphertext": _b64(message.ciphertext),
                        "mac": _b64(message.mac),
                    },
                }
            try:
                await self.http.request(
                    "PUT", "/room_keys/keys", {"rooms": rooms}, query={"version": version.version}
                )
            except MatrixHttpError as error:
                if error.errcode == "M_WRONG_ROOM_KEYS_VERSION":
                    current = error.body.get("current_version")
                    self.problem = (
                        f"the key backup changed (now version {current}); "
                        "run `tuichat recover` to use the new one"
                    )
                elif error.errcode == "M_NOT_FOUND":
                    self.problem = f"key backup version {version.version} was deleted"
                else:
                    raise
                self.version = None
                return uploaded
            self.extras.mark_backed_up((s.id for s in batch), version.version)
            uploaded += len(batch)
        self.problem = ""
        return uploaded

    # -- creating ---------------------------------------------------------------------

    async def create_version(self) -> tuple[BackupVersion, vodozemac.PkDecryption]:
        decryption = vodozemac.PkDecryption()
        auth_data: dict[str, Any] = {"public_key": decryption.public_key.to_base64()}
        signature = self.olm.account.sign(canonical_json(auth_data))
        auth_data["signatures"] = {self.olm.user_id: {f"ed25519:{self.olm.device_id}": signature}}
        reply = await self.http.request(
            "POST", "/room_keys/version", {"algorithm": BACKUP_ALGORITHM, "auth_data": auth_data}
        )
        version = BackupVersion(str(reply["version"]), BACKUP_ALGORITHM, auth_data)
        self.version = version
        self.remember(decryption, version.version)
        return version, decryption
