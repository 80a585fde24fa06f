"""A profile directory and the login session stored in it.

Everything of one account lives in its profile directory: the session file
(homeserver, user id, device id, access token), the pickle key that encrypts
nio's crypto store, the crypto store itself, tuichat's local cache and
outbox, and the lock file that keeps a second process out (`ProfileLock`).
The directory is mode 0700 and every file in it 0600; `Profile.ensure()`
creates it so and repairs looser modes it finds, reporting what it fixed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tuichat.log_redaction import register_secret

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


class ProfileError(RuntimeError):
    """The profile is unusable; the message says what to do."""


@dataclass(frozen=True)
class Session:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str
    # When this device was created (ms); events older than this that lack a
    # key are explained as "sent before this device existed".
    created_ms: int = 0
    # With a server's refreshable access tokens: the token that gets a new
    # access token (kept on disk sealed with the profile's pickle key), when
    # the access token expires and when tuichat refreshes it (ms since the
    # epoch; 0: it does not expire).
    refresh_token: str = ""
    expires_at_ms: int = 0
    refresh_at_ms: int = 0
    # A session of the OAuth 2.0 API (tuichat/matrix/account/oauth.py): the
    # authorization server, tuichat's client id there and its token
    # endpoint, where the tokens are refreshed. Empty: the Matrix login API.
    oauth_issuer: str = ""
    oauth_client_id: str = ""
    oauth_token_endpoint: str = ""

    def __repr__(self) -> str:  # never print the tokens
        return (
            f"Session(homeserver={self.homeserver!r}, user_id={self.user_id!r}, "
            f"device_id={self.device_id!r}, access_token=<hidden>, refresh_token=<hidden>)"
        )

    def with_tokens(
        self, access_token: str, refresh_token: str, expires_in_ms: int | None, now_ms: int
    ) -> Session:
        """This session with new tokens from a login or refresh answer: the
        refresh falls due a fifth of the lifetime (at most a minute) early."""
        from dataclasses import replace

        if not refresh_token or not expires_in_ms or expires_in_ms <= 0:
            return replace(
                self,
                access_token=access_token,
                refresh_token=refresh_token,
                expires_at_ms=0,
                refresh_at_ms=0,
            )
        margin = min(60_000, expires_in_ms // 5)
        return replace(
            self,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at_ms=now_ms + expires_in_ms,
            refresh_at_ms=now_ms + expires_in_ms - margin,
        )


@contextmanager
def private_umask() -> Iterator[None]:
    """Create files and directories readable by the owner only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def write_private(path: Path, data: bytes) -> None:
    """Atomically write `data` to `path` with mode 0600."""
    import secrets  # here: with hashlib and OpenSSL, 2.5 ms of a start that writes nothing

    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except OSError as error:  # named for the file asked for, not the temporary one
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ProfileInUse(ProfileError):
    """Another tuichat process holds the profile."""


class ProfileLock:
    """An OS-level exclusive lock on a profile, held for a process's life.

    Two processes on one profile would each load the same Olm account and
    Megolm sessions and save them over each other: a message index one of
    them used is later used again by the other (peers reject it as replayed)
    or one-time keys are handed out twice. So every tuichat process that
    opens a profile takes this lock first and a second one is refused.

    `flock` on a file in the profile: the kernel drops it when the process
    exits or is killed, so a crash never leaves a stale lock. The file holds
    the holder's pid, for the message only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            with private_umask():
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
            try:
                _try_lock(fd)
            except BlockingIOError:
                try:
                    holder = os.read(fd, 32).decode("ascii", "replace").strip()
                except OSError:  # Windows: the locked byte cannot be read
                    holder = ""
                os.close(fd)
                by = f" (process {holder})" if holder.isdigit() else ""
                raise ProfileInUse(
                    f"the profile {self.path.parent} is in use by another tuichat{by}. "
                    "Two at once would damage its encryption keys: quit the other one "
                    "first, or use another profile (--profile DIR)."
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # A `logout` in another process may have removed the file between
            # our open and our lock: then we hold a lock on nothing; try again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Unlock; after a logout (no session left) the lock file goes too,
        removed while still held so no other process can be holding it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if not (self.path.parent / Profile.SESSION_FILE).exists():
            self.path.unlink(missing_ok=True)
        os.close(fd)  # closing the descriptor drops the lock

    def __enter__(self) -> ProfileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> None:
    """Lock `fd` exclusively without waiting; BlockingIOError if held."""
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the first byte
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            raise BlockingIOError from None
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


class Profile:
    """The directory holding one account's session, keys and cache."""

    SESSION_FILE = "session.json"
    PICKLE_KEY_FILE = "pickle.key"
    STORE_DIR = "crypto"
    CACHE_FILE = "cache.sqlite3"
    OUTBOX_FILE = "outbox.sqlite3"  # the outbox (tuichat.matrix.storage.outbox) is named from here
    # The encrypted search index (tuichat.matrix.storage.search_index, issue 24).
    SEARCH_FILE = "search.sqlite3"
    LOCK_FILE = "lock"
    # Registrations with OAuth 2.0 authorization servers
    # (account/oauth_client_registration.py).
    OAUTH_CLIENTS_FILE = "oauth_clients.json"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Profile({str(self.root)!r})"

    @property
    def session_file(self) -> Path:
        return self.root / self.SESSION_FILE

    @property
    def pickle_key_file(self) -> Path:
        return self.root / self.PICKLE_KEY_FILE

    @property
    def store_dir(self) -> Path:
        return self.root / self.STORE_DIR

    @property
    def cache_file(self) -> Path:
        return self.root / self.CACHE_FILE

    @property
    def search_file(self) -> Path:
        return self.root / self.SEARCH_FILE

    def ensure(self) -> list[str]:
        """Create the profile (0700) and repair modes; returns what was fixed."""
        with private_umask():
            self.root.mkdir(parents=True, exist_ok=True)
            self.store_dir.mkdir(exist_ok=True)
        return self.fix_permissions()

    def fix_permissions(self) -> list[str]:
        fixed: list[str] = []
        for path in [self.root, *self.root.rglob("*")]:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            wanted = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
            if stat.S_IMODE(info.st_mode) & ~wanted:
                os.chmod(path, wanted)
                fixed.append(f"{path}: {stat.S_IMODE(info.st_mode):o} -> {wanted:o}")
        return fixed

    def lock(self, *, create: bool = False) -> ProfileLock:
        """Take the profile's lock (see ProfileLock), creating the directory
        if `create`; raises ProfileInUse if another process holds it."""
        try:
            if create:
                with private_umask():
                    self.root.mkdir(parents=True, exist_ok=True)
            lock = ProfileLock(self.root / self.LOCK_FILE)
            lock.acquire()
        except OSError as error:
            raise ProfileError(f"cannot lock the profile {self.root}: {error.strerror}") from None
        return lock

    # -- session -------------------------------------------------------------

    def load_session(self, *, tokens: bool = True) -> Session | None:
        """The stored session; with `tokens` False its tokens stay sealed
        ("" here), for a start-up that only needs to know who is logged in
        (opening them loads the AES code, which the first frame can do
        without)."""
        try:
            data = json.loads(self.session_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise ProfileError(f"cannot read {self.session_file}: {error}") from None
        try:
            session = Session(
                homeserver=str(data["homeserver"]),
                user_id=str(data["user_id"]),
                device_id=str(data["device_id"]),
                # Written in the clear before tokens were sealed.
                access_token=str(data.get("access_token", "")),
                created_ms=int(data.get("created_ms", 0)),
                expires_at_ms=int(data.get("expires_at_ms", 0)),
                refresh_at_ms=int(data.get("refresh_at_ms", 0)),
                oauth_issuer=str(data.get("oauth_issuer", "")),
                oauth_client_id=str(data.get("oauth_client_id", "")),
                oauth_token_endpoint=str(data.get("oauth_token_endpoint", "")),
            )
        except KeyError as missing:
            raise ProfileError(f"{self.session_file} lacks {missing}; log in again") from None
        sealed = {
            name: value
            for name in ("access_token", "refresh_token")
            if isinstance(value := data.get(f"{name}_sealed"), str) and value
        }
        if not sealed and "access_token" not in data:
            raise ProfileError(f"{self.session_file} lacks 'access_token'; log in again")
        if tokens and sealed:
            from dataclasses import replace

            opened = {name: self.unseal_token(session, value) for name, value in sealed.items()}
            session = replace(session, **opened)
        register_secret(session.access_token)
        return session

    def save_session(self, session: Session) -> None:
        """Store the session, its tokens sealed with the pickle key (created
        here if the profile has none yet)."""
        register_secret(session.access_token)
        register_secret(session.refresh_token)
        self.ensure()
        if not self.pickle_key_file.exists():
            self.create_pickle_key()
        data = asdict(session)
        for name in ("access_token", "refresh_token"):
            token = data.pop(name)
            if token:
                data[f"{name}_sealed"] = self.seal_token(session, token)
        write_private(self.session_file, json.dumps(data, indent=2).encode())

    # The tokens are kept sealed with the profile's key, bound to the user
    # and device they belong to (tuichat/matrix/storage/sealing.py): a copy
    # of the session file alone gives no access to the account.

    def seal_token(self, session: Session, token: str) -> str:
        """`token` sealed with the profile's token key, bound to the
        session's user and device."""
        from tuichat.matrix.storage.sealing import Purpose, Sealer

        sealer = Sealer(self.pickle_key(), Purpose.TOKENS)
        return sealer.seal_text(token, session.user_id, session.device_id)

    def unseal_token(self, session: Session, sealed: str) -> str:
        """The token, or "" if it cannot be opened (another pickle key, a
        damaged one: opening the crypto store then says what is wrong). One
        sealed in an older format is read, and sealed anew at the next save."""
        from tuichat.matrix.storage import legacy_sealing
        from tuichat.matrix.storage.sealing import Purpose, Sealer, is_sealed_text

        try:
            key = self.pickle_key()
            if is_sealed_text(sealed):
                sealer = Sealer(key, Purpose.TOKENS)
                token = sealer.open_text(sealed, session.user_id, session.device_id)
            else:
                token = legacy_sealing.open_token(key, session.user_id, session.device_id, sealed)
        except (ValueError, ProfileError):
            log.warning("a stored token cannot be opened; it is not used")
            return ""
        register_secret(token)
        return token

    def remove_session(self) -> None:
        """Forget the login: remove every file tuichat writes in the profile
        (the crypto store, the caches, the outbox, the keys, then the session
        last, so that an interrupted logout can be run again). Files the user
        put in the profile directory stay, and so does the directory."""
        import shutil

        if self.store_dir.is_dir() and not self.store_dir.is_symlink():
            shutil.rmtree(self.store_dir)
        else:
            self.store_dir.unlink(missing_ok=True)
        for name in (
            self.CACHE_FILE,
            self.OUTBOX_FILE,
            self.SEARCH_FILE,
            self.OAUTH_CLIENTS_FILE,
            self.PICKLE_KEY_FILE,
            self.SESSION_FILE,
        ):
            path = self.root / name
            for suffix in ("-wal", "-shm", "-journal"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            # Left over by a `write_private` that was killed mid-write.
            for leftover in self.root.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    # -- pickle key ------------------------------------------------------------

    def create_pickle_key(self) -> str:
        """Create this profile's random 32-byte pickle key (once per login)."""
        import secrets

        self.ensure()
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        register_secret(key)
        write_private(self.pickle_key_file, key.encode())
        return key

    def pickle_key(self) -> str:
        """The key nio uses to encrypt the crypto store (never nio's default)."""
        choice = (
            "Restore the file from a backup, or run `tuichat logout` and log in "
            "again as a new device."
        )
        try:
            key = self.pickle_key_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise ProfileError(
                f"the pickle key {self.pickle_key_file} is missing, so the crypto "
                f"store cannot be opened. {choice}"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            # Binary garbage, a directory in its place, no permission.
            reason = "it is not text" if isinstance(error, UnicodeDecodeError) else error.strerror
            raise ProfileError(
                f"the pickle key {self.pickle_key_file} cannot be read ({reason}), so the "
                f"crypto store cannot be opened. {choice}"
            ) from None
        try:
            valid = len(base64.b64decode(key, validate=True)) == 32
        except ValueError:  # binascii.Error: a truncated or garbled key
            valid = False
        if not valid:
            raise ProfileError(
                f"the pickle key {self.pickle_key_file} is damaged (not 32 bytes of base64), "
                f"so the crypto store cannot be opened. {choice}"
            )
        register_secret(key)
        return key

    def crypto_store_files(self) -> list[Path]:
        if not self.store_dir.exists():
            return []
        return sorted(p for p in self.store_dir.iterdir() if p.is_file())
