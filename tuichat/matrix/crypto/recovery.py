"""Recovery: unlock secret storage with the recovery key or passphrase, get
the key-backup key out of it, and set recovery up when the account has none.

What Element users call "recovery" is secret storage holding the backup
key (and, later, the cross-signing keys). A wrong key is detected by the
key description's check value before anything is read or changed.

The same concept as `tuichat/ui/screens/recovery.py`, seen from the other
side: that dialog asks for the key and shows progress; this module does
the work (through the service).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from tuichat.matrix.crypto.key_backup import (
    BACKUP_SECRET,
    BackupVersion,
    KeyBackup,
    secret_from_decryption,
)
from tuichat.matrix.crypto.secret_storage import (
    DEFAULT_KEY_TYPE,
    KEY_TYPE_PREFIX,
    KeyDescription,
    SecretStorageError,
    decode_recovery_key,
    decrypt_secret,
    derive_key_from_passphrase,
    encode_recovery_key,
    encrypt_secret,
    new_key_description,
)
from tuichat.matrix.transport.http import MatrixHttp

PASSPHRASE_ITERATIONS = 500_000


@dataclass(frozen=True)
class RecoveryStatus:
    key: KeyDescription | None  # the default secret storage key, if any
    backup: BackupVersion | None
    backup_unlocked: bool

    @property
    def has_secret_storage(self) -> bool:
        return self.key is not None


class Recovery:
    def __init__(self, http: MatrixHttp, backup: KeyBackup) -> None:
        self.http = http
        self.backup = backup

    async def default_key(self) -> KeyDescription | None:
        default = await self.http.account_data(DEFAULT_KEY_TYPE)
        key_id = default.get("key") if default else None
        if not isinstance(key_id, str):
            return None
        content = await self.http.account_data(KEY_TYPE_PREFIX + key_id)
        return KeyDescription(key_id, content) if content else None

    async def status(self) -> RecoveryStatus:
        return RecoveryStatus(
            key=await self.default_key(),
            backup=await self.backup.fetch_version(),
            backup_unlocked=self.backup.unlocked,
        )

    async def unlock(
        self, *, recovery_key: str | None = None, passphrase: str | None = None
    ) -> bytes:
        """The secret storage key, checked; SecretStorageError otherwise."""
        description = await self.default_key()
        if description is None:
            raise SecretStorageError("this account has no secret storage (recovery is not set up)")
        if recovery_key is not None:
            key = decode_recovery_key(recovery_key)
        elif passphrase is not None:
            if description.passphrase is None:
                raise SecretStorageError(
                    "this account's recovery key has no passphrase; use the recovery key"
                )
            key = await derive_key_from_passphrase(passphrase, description.passphrase)
        else:
            raise SecretStorageError("give a recovery key or a passphrase")
        if not description.check(key):
            what = "recovery key" if recovery_key is not None else "passphrase"
            raise SecretStorageError(f"wrong {what}: it does not unlock this account's recovery")
        return key

    async def read_secret(self, key: bytes, name: str) -> str | None:
        description = await self.default_key()
        content = await self.http.account_data(name)
        encrypted = (content or {}).get("encrypted")
        if description is None or not isinstance(encrypted, dict):
            return None
        entry = encrypted.get(description.key_id)
        if not isinstance(entry, dict):
            return None
        return decrypt_secret(key, name, entry)

    async def store_secret(self, key: bytes, key_id: str, name: str, secret: str) -> None:
        await self.http.put_account_data(
            name, {"encrypted": {key_id: encrypt_secret(key, name, secret)}}
        )

    async def unlock_backup(self, key: bytes) -> BackupVersion:
        """Take the backup key out of secret storage and keep it (sealed)."""
        version = await self.backup.fetch_version()
        if version is None:
            raise SecretStorageError("this account has no key backup to restore from")
        secret = await self.read_secret(key, BACKUP_SECRET)
        if secret is None:
            raise SecretStorageError("secret storage holds no key-backup key")
        self.backup.use_secret(secret, version)
        return version

    async def setup(self, passphrase: str | None = None) -> tuple[str, bytes, str]:
        """New secret storage key and backup version; (recovery key text,
        key, key id). The backup key is stored in secret storage."""
        passphrase_info = None
        if passphrase:
            salt = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
            passphrase_info = {
                "algorithm": "m.pbkdf2",
                "salt": salt,
                "iterations": PASSPHRASE_ITERATIONS,
                "bits": 256,
            }
            key = await derive_key_from_passphrase(passphrase, passphrase_info)
        else:
            key = secrets.token_bytes(32)
        key_id = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        await self.http.put_account_data(
            KEY_TYPE_PREFIX + key_id, new_key_description(key, passphrase_info)
        )
        await self.http.put_account_data(DEFAULT_KEY_TYPE, {"key": key_id})
        _version, decryption = await self.backup.create_version()
        await self.store_secret(key, key_id, BACKUP_SECRET, secret_from_decryption(decryption))
        return encode_recovery_key(key), key, key_id
