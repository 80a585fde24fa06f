"""Start a throw-away Synapse homeserver on loopback.

One launcher serves both `tuichat demo` and the pytest fixture: it writes a
minimal config into a directory (SQLite, open registration, raised rate
limits, no federation listener), starts `python -m synapse.app.homeserver`
as a child process and waits, with a bounded loop, until
`/_matrix/client/versions` answers.

Registration helpers use the plain client-server API (`m.login.dummy`), so
they work exactly as a real client would see the server. Only the standard
library is used here: this module must import without nio or Textual.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_NAME = "localhost"

# Generous limits: tests create many users and rooms quickly.
_UNLIMITED = {"per_second": 10000, "burst_count": 100000}

_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {log_file}
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class SynapseError(RuntimeError):
    """Synapse could not be installed, configured or started."""


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synapse_available() -> bool:
    """Whether `matrix-synapse` is importable from this interpreter."""
    import importlib.util

    return importlib.util.find_spec("synapse") is not None


def _signing_key_line() -> str:
    # Synapse's key file format: "<algorithm> <version> <unpadded base64 seed>".
    seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"ed25519 a_{secrets.token_hex(2)} {seed}\n"


def _homeserver_config(base: Path, port: int) -> dict[str, Any]:
    rate_limits: dict[str, Any] = {
        "rc_message": _UNLIMITED,
        "rc_registration": _UNLIMITED,
        "rc_login": {
            "address": _UNLIMITED,
            "account": _UNLIMITED,
            "failed_attempts": _UNLIMITED,
        },
        "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
        "rc_joins_per_room": _UNLIMITED,
        "rc_invites": {
            "per_room": _UNLIMITED,
            "per_user": _UNLIMITED,
            "per_issuer": _UNLIMITED,
        },
        "rc_key_requests": _UNLIMITED,
        "rc_3pid_validation": _UNLIMITED,
        "rc_admin_redaction": _UNLIMITED,
        "rc_media_create": _UNLIMITED,
        "rc_room_creation": _UNLIMITED,
        "rc_presence": {"per_user": _UNLIMITED},
        "rc_delayed_event_mgmt": _UNLIMITED,
        "rc_reports": _UNLIMITED,
        "rc_user_directory": _UNLIMITED,
        "rc_profile": _UNLIMITED,
    }
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "pid_file": str(base / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {
            "name": "sqlite3",
            "args": {"database": str(base / "homeserver.db")},
        },
        "log_config": str(base / "log.config"),
        "media_store_path": str(base / "media"),
        "signing_key_path": str(base / "signing.key"),
        "trusted_key_servers": [],
        # Anyone may list a room in the room directory (Synapse's default
        # lets nobody), so /create --public and /directory can be tried.
        "room_list_publication_rules": [{"action": "allow"}],
        "suppress_key_server_warning": True,
        "report_stats": False,
        "enable_metrics": False,
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "registration_shared_secret": secrets.token_hex(16),
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "federation_domain_whitelist": [],
        "max_upload_size": "50M",
        **rate_limits,
    }


@dataclass
class RegisteredUser:
    user_id: str
    localpart: str
    password: str
    access_token: str
    device_id: str


class LocalSynapse:
    """A Synapse process bound to 127.0.0.1, living in `base_dir`.

    Reusing `base_dir` (same database) after `stop()` brings the server back
    with all its data, which the fault-tolerance tests rely on.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        # Top-level config sections added or replaced (tests: single sign-on).
        self.extra_config = dict(extra_config or {})
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_name(self) -> str:
        return SERVER_NAME

    @property
    def log_file(self) -> Path:
        return self.base_dir / "homeserver.log"

    def write_config(self) -> Path:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "media").mkdir(exist_ok=True)
        key_file = self.base_dir / "signing.key"
        if not key_file.exists():
            key_file.write_text(_signing_key_line())
        (self.base_dir / "log.config").write_text(
            _LOG_CONFIG.format(log_file=json.dumps(str(self.log_file)))
        )
        config_file = self.base_dir / "homeserver.yaml"
        # JSON is valid YAML, so no YAML writer is needed here.
        config = _homeserver_config(self.base_dir, self.port) | self.extra_config
        config_file.write_text(json.dumps(config, indent=2))
        return config_file

    def start(self, timeout: float = 60.0) -> None:
        if not synapse_available():
            raise SynapseError(
                "matrix-synapse is not installed in this environment; "
                "install tuichat with the 'demo' extra (make demo does this)"
            )
        config_file = self.write_config()
        stderr = open(self.base_dir / "synapse.stderr", "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config_file)],
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()
        self._wait_until_up(timeout)

    def _wait_until_up(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SynapseError(
                    f"Synapse exited with code {self.process.returncode}: " + self._tail_of_logs()
                )
            try:
                with urllib.request.urlopen(
                    f"{self.url}/_matrix/client/versions", timeout=2
                ) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise SynapseError(f"Synapse did not answer within {timeout:.0f} s")

    def _tail_of_logs(self) -> str:
        parts = []
        for name in ("synapse.stderr", "homeserver.log"):
            path = self.base_dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> LocalSynapse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client-server helpers (standard library only) ---------------------

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def register(
        self, localpart: str, password: str | None = None, device_id: str | None = None
    ) -> RegisteredUser:
        """Register `localpart` with the dummy auth flow and return its login."""
        password = password or secrets.token_urlsafe(12)
        body: dict[str, Any] = {"username": localpart, "password": password}
        if device_id:
            body["device_id"] = device_id
        status, reply = self._request("POST", "/_matrix/client/v3/register", body)
        if status == 401 and "session" in reply:
            body["auth"] = {"type": "m.login.dummy", "session": reply["session"]}
            status, reply = self._request("POST", "/_matrix/client/v3/register", body)
        if status != 200:
            raise SynapseError(f"registering {localpart!r} failed: {status} {reply}")
        return RegisteredUser(
            user_id=reply["user_id"],
            localpart=localpart,
            password=password,
            access_token=reply["access_token"],
            device_id=reply["device_id"],
        )

    def set_display_name(self, user: RegisteredUser, name: str) -> None:
        path = f"/_matrix/client/v3/profile/{urllib.request.quote(user.user_id)}/displayname"
        status, reply = self._request("PUT", path, {"displayname": name}, token=user.access_token)
        if status != 200:
            raise SynapseError(f"setting display name failed: {status} {reply}")
