"""Data at rest: one sealing format, one SQLite helper, and nothing a user
already has becomes unreadable.

Each migration test writes a store the way the code before
`storage/sealing.py` did (the old algorithms are written out here, not
imported), opens it with today's code, and checks the data is read and
rewritten in the current format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
from pathlib import Path

import pytest
import vodozemac
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.crypto.cross_signing import USAGES, CrossSigning, SigningKey
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.key_backup import KeyBackup, secret_from_decryption
from tuichat.matrix.storage import sqlite_store
from tuichat.matrix.storage.cache import Cache, RoomWrite, SyncWrite
from tuichat.matrix.storage.outbox import Outbox
from tuichat.matrix.storage.sealing import TEXT_PREFIX, Purpose, Sealer, SealError

PICKLE_KEY = base64.b64encode(b"\x07" * 32).decode()


# -- the old algorithms, as the code before sealing.py had them ---------------------------


def _old_gcm(key: bytes, plaintext: bytes, associated: bytes | None) -> bytes:
    nonce = secrets.token_bytes(12)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    if associated is not None:
        cipher.update(associated)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return nonce + tag + ciphertext


def _old_hkdf(pickle_key: str, info: bytes) -> bytes:
    key = HKDF(pickle_key.encode(), 32, b"", SHA256, context=info)
    assert isinstance(key, bytes)
    return key


def old_outbox_seal(pickle_key: str, room: str, txn: str, kind: str, content: dict) -> bytes:
    return _old_gcm(
        _old_hkdf(pickle_key, b"tuichat outbox v1"),
        json.dumps(content, ensure_ascii=False).encode(),
        f"{room}\n{txn}\n{kind}".encode(),
    )


def old_token_seal(pickle_key: str, user: str, device: str, token: str) -> str:
    raw = _old_gcm(
        _old_hkdf(pickle_key, b"tuichat tokens v1"), token.encode(), f"{user}\n{device}".encode()
    )
    return base64.b64encode(raw).decode()


def old_labelled_seal(pickle_key: str, label: str, secret: str) -> str:
    key = hashlib.sha256(f"{label}|{pickle_key}".encode()).digest()
    return base64.b64encode(_old_gcm(key, secret.encode(), None)).decode()


# -- the format ----------------------------------------------------------------------------


def test_a_sealed_value_opens_only_with_its_key_purpose_and_context() -> None:
    sealer = Sealer(PICKLE_KEY, Purpose.OUTBOX)
    sealed = sealer.seal(b"a secret", "!r:x", "t1")
    assert sealed[0] == 2 and b"a secret" not in sealed
    assert sealer.open(sealed, "!r:x", "t1") == b"a secret"
    with pytest.raises(SealError):
        sealer.open(sealed, "!r:x", "t2")  # another place
    with pytest.raises(SealError):
        Sealer(PICKLE_KEY, Purpose.TOKENS).open(sealed, "!r:x", "t1")  # another purpose
    with pytest.raises(SealError):
        Sealer("another key", Purpose.OUTBOX).open(sealed, "!r:x", "t1")
    damaged = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        sealer.open(damaged, "!r:x", "t1")
    text = sealer.seal_text("a token", "@a:x", "DEV")
    assert text.startswith(TEXT_PREFIX)
    assert sealer.open_text(text, "@a:x", "DEV") == "a token"
    with pytest.raises(SealError):
        sealer.open_text("v2:not base64!", "@a:x", "DEV")


# -- the SQLite helper ---------------------------------------------------------------------


def test_stores_are_private_and_versioned_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    schema = sqlite_store.Schema(version=1, script="CREATE TABLE IF NOT EXISTS t (x);")
    path = tmp_path / "s.sqlite3"
    db = sqlite_store.connect(path)
    sqlite_store.apply_schema(db, schema, "a store")
    assert sqlite_store.user_version(db) == 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("INSERT INTO t VALUES (1)")
    db.close()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    later = sqlite_store.Schema(version=2, script=schema.script, steps={1: _add_column})
    db = sqlite_store.connect(path)
    sqlite_store.apply_schema(db, later, "a store")
    assert sqlite_store.user_version(db) == 2
    assert db.execute("SELECT x, y FROM t").fetchall() == [(1, "added")]
    db.close()
    db = sqlite_store.connect(path)
    with pytest.raises(sqlite_store.StoreVersionError, match="newer tuichat"):
        sqlite_store.apply_schema(db, schema, "a store")
    db.close()


def _add_column(db: sqlite3.Connection) -> None:
    db.execute("ALTER TABLE t ADD COLUMN y TEXT DEFAULT 'added'")


def test_a_failed_step_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = sqlite_store.connect(path)
    sqlite_store.apply_schema(db, sqlite_store.Schema(1, "CREATE TABLE t (x);"), "a store")

    def broken(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("step failed")

    with pytest.raises(RuntimeError):
        sqlite_store.apply_schema(db, sqlite_store.Schema(2, "", steps={1: broken}), "a store")
    assert sqlite_store.user_version(db) == 1
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    db.close()


# -- migrations ----------------------------------------------------------------------------


def test_an_outbox_sealed_the_old_way_is_read_and_sealed_again(tmp_path: Path) -> None:
    path = tmp_path / Outbox.FILE_NAME
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, room_id TEXT NOT NULL,"
        " txn_id TEXT NOT NULL UNIQUE, event_type TEXT NOT NULL, sealed BLOB NOT NULL,"
        " created_ms INTEGER NOT NULL);"
    )
    for n in range(2):
        sealed = old_outbox_seal(
            PICKLE_KEY, "!r:x", f"t{n}", "m.room.message", {"body": f"secret {n}"}
        )
        old.execute(
            "INSERT INTO outbox (room_id, txn_id, event_type, sealed, created_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            ("!r:x", f"t{n}", "m.room.message", sealed, n),
        )
    # One the old code could not open either (another key): still counted.
    sealed = old_outbox_seal("another key", "!r:x", "t2", "m.room.message", {"body": "?"})
    old.execute(
        "INSERT INTO outbox (room_id, txn_id, event_type, sealed, created_ms)"
        " VALUES ('!r:x', 't2', 'm.room.message', ?, 2)",
        (sealed,),
    )
    old.commit()
    old.close()

    outbox = Outbox(tmp_path, PICKLE_KEY)
    entries, unreadable = outbox.pending()
    outbox.close()
    assert [(e.txn_id, e.content) for e in entries] == [
        ("t0", {"body": "secret 0"}),
        ("t1", {"body": "secret 1"}),
    ]
    assert unreadable == 1
    db = sqlite3.connect(path)
    assert sqlite_store.user_version(db) == 1
    rows = db.execute("SELECT room_id, txn_id, event_type, sealed FROM outbox").fetchall()
    db.close()
    sealer = Sealer(PICKLE_KEY, Purpose.OUTBOX)
    for room_id, txn_id, event_type, sealed in rows:  # rewritten in the current format
        assert json.loads(sealer.open(bytes(sealed), room_id, txn_id, event_type))["body"]
    entries, unreadable = Outbox(tmp_path, PICKLE_KEY).pending()
    assert [e.txn_id for e in entries] == ["t0", "t1"] and unreadable == 0


def test_tokens_sealed_the_old_way_load_and_are_sealed_anew_when_saved(tmp_path: Path) -> None:
    profile = Profile(tmp_path / "profile")
    profile.ensure()
    profile.pickle_key_file.write_text(PICKLE_KEY)
    user, device = "@alice:x", "DEV"
    data = {
        "homeserver": "http://x",
        "user_id": user,
        "device_id": device,
        "created_ms": 1,
        "access_token_sealed": old_token_seal(PICKLE_KEY, user, device, "syt_access"),
        "refresh_token_sealed": old_token_seal(PICKLE_KEY, user, device, "syr_refresh"),
    }
    profile.session_file.write_text(json.dumps(data))
    session = profile.load_session()
    assert session is not None
    assert (session.access_token, session.refresh_token) == ("syt_access", "syr_refresh")
    profile.save_session(session)
    saved = json.loads(profile.session_file.read_text())
    assert saved["access_token_sealed"].startswith(TEXT_PREFIX)
    assert saved["refresh_token_sealed"].startswith(TEXT_PREFIX)
    again = profile.load_session()
    assert again is not None and again.access_token == "syt_access"
    assert again.refresh_token == "syr_refresh"


def test_a_token_sealed_for_another_device_does_not_open(tmp_path: Path) -> None:
    profile = Profile(tmp_path / "profile")
    profile.ensure()
    profile.pickle_key_file.write_text(PICKLE_KEY)
    profile.save_session(Session("http://x", "@alice:x", "DEV", "syt_access"))
    data = json.loads(profile.session_file.read_text())
    data["device_id"] = "OTHER"
    profile.session_file.write_text(json.dumps(data))
    session = profile.load_session()
    assert session is not None and session.access_token == ""


def test_crypto_secrets_sealed_the_old_way_are_read_and_sealed_again(tmp_path: Path) -> None:
    keys = {usage: SigningKey.generate() for usage in USAGES}
    backup = vodozemac.PkDecryption()
    extras = CryptoExtrasStore(tmp_path)
    for usage, key in keys.items():
        extras.set(
            f"cross_signing_private:{usage}",
            old_labelled_seal(PICKLE_KEY, "tuichat cross-signing", key.secret),
        )
    extras.set(
        "backup_key",
        old_labelled_seal(PICKLE_KEY, "tuichat backup key", secret_from_decryption(backup)),
    )
    extras.close()

    extras = CryptoExtrasStore(tmp_path)
    cross_signing = CrossSigning(
        own_user="@alice:x", own_device="DEV", extras=extras, http=None, pickle_key=PICKLE_KEY
    )  # type: ignore[arg-type]
    key_backup = KeyBackup(None, None, extras, PICKLE_KEY)  # type: ignore[arg-type]
    assert {u: k.seed for u, k in cross_signing.private.items()} == {
        u: k.seed for u, k in keys.items()
    }
    assert key_backup.public_key == backup.public_key.to_base64()
    for name in [*(f"cross_signing_private:{usage}" for usage in USAGES), "backup_key"]:
        assert (extras.get(name) or "").startswith(TEXT_PREFIX), name
    extras.close()

    extras = CryptoExtrasStore(tmp_path)  # and read in the new format
    cross_signing = CrossSigning(
        own_user="@alice:x", own_device="DEV", extras=extras, http=None, pickle_key=PICKLE_KEY
    )  # type: ignore[arg-type]
    assert set(cross_signing.private) == set(USAGES)
    assert KeyBackup(None, None, extras, PICKLE_KEY).unlocked  # type: ignore[arg-type]
    extras.close()


def test_an_extras_store_from_before_versions_drops_its_untrustworthy_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / CryptoExtrasStore.FILE_NAME
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('verified_only', '1');"
        "CREATE TABLE withheld (session_id TEXT PRIMARY KEY, code TEXT);"
    )
    old.close()
    extras = CryptoExtrasStore(tmp_path)
    assert extras.get("verified_only") == "1"
    assert not sqlite_store.table_exists(extras._db, "withheld")
    assert sqlite_store.user_version(extras._db) == 1
    extras.close()


def test_a_cache_of_the_last_unversioned_schema_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    cache = Cache(path)
    cache.commit_sync(SyncWrite("t1", rooms={"!r": RoomWrite("join")}))
    cache.close()
    # As the code before the helper left it: no user_version, its own row.
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 0")
    db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    db.commit()
    db.close()
    cache = Cache(path)
    assert cache.sync_token == "t1"
    assert [room.room_id for room in cache.load_rooms()] == ["!r"]
    assert sqlite_store.user_version(cache._db) == 1
    cache.close()
