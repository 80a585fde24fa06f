"""Command line: `tuichat [--profile DIR] [login|logout|account|demo|...]`.

Kept light on imports: nio and Textual are imported only by the command that
needs them, so `tuichat` paints its first frame quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tuichat import __version__
from tuichat.log_redaction import RedactingFilter, SafeFormatter
from tuichat.matrix.account.session import private_umask
from tuichat.model.sanitize import SafeText, safe_line, safe_text
from tuichat.paths import PROFILE_ENV, resolve_profile_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tuichat",
        description="A terminal Matrix client whose end-to-end encryption simply works.",
    )
    parser.add_argument("--version", action="version", version=f"tuichat {__version__}")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help=f"profile directory (default: ${PROFILE_ENV} or the platform data dir)",
    )
    parser.add_argument(
        "--log-file",
        metavar="FILE",
        help="write a debug log to FILE (off by default; never holds message text or keys)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    login = commands.add_parser("login", help="log in and store the session in the profile")
    login.add_argument(
        "--homeserver",
        metavar="URL",
        help="homeserver URL, or a server name resolved through .well-known",
    )
    login.add_argument(
        "--user", help="@name:server or name (needed for password login, optional for SSO)"
    )
    login.add_argument(
        "--method",
        choices=("password", "sso", "oauth"),
        help="how to log in (default: what the server offers: OAuth 2.0 API, SSO, password)",
    )
    login.add_argument(
        "--idp", metavar="ID", help="single sign-on: the identity provider to sign in with"
    )
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="single sign-on: print the address to open instead of opening a browser",
    )
    login.add_argument(
        "--grant",
        choices=("code", "device"),
        help="OAuth 2.0 API: sign in with a browser here (code) or on another device, "
        "by address, code or QR code (device; the default over SSH and with --no-browser)",
    )
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    login.add_argument("--device-name", default="tuichat", metavar="NAME")

    commands.add_parser("logout", help="log this device out and remove the local session")

    commands.add_parser("devices", help="print your devices and their fingerprints, and exit")

    account = commands.add_parser(
        "account", help="open your account's page on the server (OAuth 2.0 API servers)"
    )
    account.add_argument(
        "action",
        nargs="?",
        choices=(
            "profile",
            "sessions",
            "device",
            "end-device",
            "deactivate",
            "cross-signing-reset",
        ),
        help="the part of the page to open (the server may not support each)",
    )
    account.add_argument(
        "--no-browser", action="store_true", help="print the address instead of opening it"
    )

    recover = commands.add_parser(
        "recover", help="restore encrypted history with your recovery key (or set recovery up)"
    )
    recover.add_argument(
        "--passphrase", action="store_true", help="use the recovery passphrase, not the key"
    )
    recover.add_argument(
        "--setup", action="store_true", help="set up secret storage and key backup"
    )

    keys = commands.add_parser("keys", help="export or import room keys (Element's file format)")
    key_actions = keys.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    export = key_actions.add_parser("export", help="write this device's room keys to FILE")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    imported = key_actions.add_parser("import", help="read room keys from FILE")
    imported.add_argument("file", metavar="FILE")
    commands.add_parser(
        "demo", help="run against a local homeserver with a chatting peer (needs Synapse)"
    )
    config = commands.add_parser("config", help="where the config file is; write or check it")
    config_actions = config.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    config_actions.add_parser("path", help="print the config file's path")
    init = config_actions.add_parser("init", help="write a commented default config file")
    init.add_argument("--force", action="store_true", help="replace an existing config file")
    config_actions.add_parser("check", help="report mistakes in the config file and exit")
    return parser


def _config(args: argparse.Namespace) -> int:
    from tuichat.config import default_config_path, load_config, write_default

    path = default_config_path()
    if args.config_action == "path":
        print(safe_line(str(path)))
        return 0
    if args.config_action == "init":
        if not write_default(path, force=args.force):
            return _fail(safe_line(f"{path} exists already (--force replaces it)"))
        print(safe_line(f"Wrote {path}"))
        return 0
    _config, errors = load_config(path)
    for error in errors:
        print(safe_line(error), file=sys.stderr)
    if not errors:
        state = "fine" if path.exists() else "not there (defaults apply)"
        print(safe_line(f"{path}: {state}"))
    return 1 if errors else 0


def _fail(message: SafeText) -> int:
    """`message` often holds a server's error text: the caller sanitises it."""
    print(f"tuichat: {message}", file=sys.stderr)
    return 1


def _login(args: argparse.Namespace, profile_dir: Path) -> int:
    from tuichat.cli_login import login_command

    return login_command(args, profile_dir)


def _logout(profile_dir: Path) -> int:
    from tuichat.matrix.account.login import LoginError, logout
    from tuichat.matrix.account.session import Profile, ProfileError

    try:
        session = asyncio.run(logout(Profile(profile_dir)))
    except (LoginError, ProfileError) as error:
        return _fail(safe_line(str(error)))
    print(safe_line(f"Logged out {session.user_id} (device {session.device_id})"))
    return 0


def _read_secret(label: str, confirm: bool) -> str:
    """From the terminal without echo (twice to confirm), or one line of
    standard input when it is not a terminal (scripts)."""
    if not sys.stdin.isatty():
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass(f"{label}: ")
        if confirm and getpass.getpass(f"{label} again: ") != secret:
            raise ValueError(f"the two {label.lower()}s differ")
    if not secret:
        raise ValueError(f"no {label.lower()} given")
    return secret


def _key_file_and_passphrase(path: Path, exporting: bool, force: bool) -> tuple[str, str]:
    """The text to import (or "" to export) and the passphrase; ValueError
    (KeyFileError) with a sentence if the file is wrong, checked before the
    passphrase is asked, or if an export's passphrase is too weak."""
    from tuichat.matrix.crypto.key_export import (
        check_export_target,
        key_file_text,
        passphrase_problem,
    )

    if exporting:
        check_export_target(path, force=force)
        text = ""
    else:
        text = key_file_text(path)
    passphrase = _read_secret("Passphrase", confirm=exporting)
    if exporting:
        attempts = 3 if sys.stdin.isatty() else 1
        while problem := passphrase_problem(passphrase):
            attempts -= 1
            if not attempts:
                raise ValueError(problem)
            print(safe_line(f"tuichat: {problem}"), file=sys.stderr)
            passphrase = _read_secret("Passphrase", confirm=True)
    return text, passphrase


def _keys(args: argparse.Namespace, profile_dir: Path) -> int:
    from tuichat.matrix.account.session import Profile, ProfileError
    from tuichat.matrix.service import Failed, MatrixService, Outcome

    path = Path(args.file).expanduser()
    exporting = args.keys_action == "export"
    try:
        force = exporting and args.force
        text, passphrase = _key_file_and_passphrase(path, exporting, force)
    except (OSError, UnicodeDecodeError, ValueError, EOFError, KeyboardInterrupt) as error:
        return _fail(safe_line(str(error)) or "cancelled")

    def progress(done: int, total: int) -> None:
        if total >= 500:
            print(f"\rImporting room keys: {done}/{total}", end="", file=sys.stderr, flush=True)

    async def run() -> Outcome[str]:
        service = MatrixService(Profile(profile_dir), lambda event: None)
        await service.open()
        try:
            if exporting:
                count = await service.export_keys(path, passphrase)
                if isinstance(count, Failed):
                    return count
                return f"Exported {count} room keys to {path}"
            result = await service.import_keys(text, passphrase, progress)
            if isinstance(result, Failed):
                return result
            if result.total >= 500:
                print(file=sys.stderr)
            invalid = f", {result.invalid} unusable" if result.invalid else ""
            return f"Imported {result.imported} new room keys ({result.total} in the file{invalid})"
        finally:
            await service.stop()

    try:
        done = asyncio.run(run())
    except (ProfileError, LookupError, OSError) as error:
        return _fail(safe_line(str(error)))
    if isinstance(done, Failed):
        return _fail(safe_line(done.message))
    print(safe_text(done))
    return 0


def _devices(profile_dir: Path) -> int:
    from datetime import datetime

    from tuichat.matrix.account.session import Profile, ProfileError
    from tuichat.matrix.service import MatrixService

    async def run() -> list[str]:
        service = MatrixService(Profile(profile_dir), lambda event: None)
        await service.open()
        try:
            devices = await service.devices(service.user_id)
        finally:
            await service.stop()
        lines = [safe_line(f"Devices of {service.user_id}"), ""]
        for device in devices:
            title = "This device" if device.this_device else "Device"
            name = f" ({safe_line(device.display_name)})" if device.display_name else ""
            lines.append(f"{title}: {safe_line(device.device_id)}{name}")
            lines.append(f"  Session key (Ed25519): {device.fingerprint}")
            lines.append(f"  Curve25519:            {device.curve25519}")
            lines.append(f"  Trust:                 {device.trust.value}")
            if device.last_seen_ts:
                when = datetime.fromtimestamp(device.last_seen_ts / 1000)
                where = safe_line(device.last_seen_ip)
                lines.append(f"  Last seen:             {when:%Y-%m-%d %H:%M} {where}")
            lines.append("")
        return lines

    try:
        print(safe_text("\n".join(asyncio.run(run())).rstrip()))
    except (ProfileError, LookupError, OSError) as error:
        return _fail(safe_line(str(error)))
    return 0


def _progress_bar(done: int, total: int) -> None:
    if total <= 0:
        return
    width = 30
    filled = width * done // total
    bar = "#" * filled + "-" * (width - filled)
    end = "\n" if done >= total else ""
    print(f"\rRestoring keys [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)


def _recover(args: argparse.Namespace, profile_dir: Path) -> int:
    from tuichat.cli_login import terminal_approval
    from tuichat.matrix.account.session import Profile, ProfileError
    from tuichat.matrix.service import Failed, MatrixService, Outcome

    async def run() -> Outcome[str]:
        service = MatrixService(Profile(profile_dir), lambda event: None)
        await service.open()
        try:
            status = await service.recovery_status()
            if isinstance(status, Failed):
                return status
            if args.setup:
                if status.has_secret_storage:
                    return Failed(
                        "recovery is already set up on this account; "
                        "use `tuichat recover` to restore with it"
                    )
                passphrase = _read_secret("Passphrase", confirm=True) if args.passphrase else None
                password = None
                has_keys = await service.has_cross_signing()
                if isinstance(has_keys, Failed):
                    return has_keys
                if not has_keys and not service.oauth_account:
                    password = _read_secret(
                        "Account password (to create your cross-signing keys)", confirm=False
                    )
                # OAuth 2.0 API accounts have no password: the server may
                # ask for an approval in the browser instead.
                approve = terminal_approval().approve if service.oauth_account else None
                recovery_key = await service.setup_recovery(passphrase, password, approve)
                if isinstance(recovery_key, Failed):
                    return recovery_key
                return (
                    "Recovery is set up. Your recovery key is:\n\n"
                    f"    {recovery_key}\n\n"
                    "Write it down and keep it somewhere safe: it is shown only this once, and\n"
                    "with it (or your passphrase) any new device, tuichat or Element, can read\n"
                    "your encrypted history."
                )
            if not status.has_secret_storage:
                return Failed(
                    "this account has no recovery set up; `tuichat recover --setup` creates it"
                )
            if args.passphrase:
                secret = _read_secret("Recovery passphrase", confirm=False)
                result = await service.recover(passphrase=secret, progress=_progress_bar)
            else:
                secret = _read_secret("Recovery key", confirm=False)
                result = await service.recover(recovery_key=secret, progress=_progress_bar)
            if isinstance(result, Failed):
                return result
            return (
                f"Restored {result.imported} new room keys from the key backup "
                f"({result.total} in it"
                + (f", {result.invalid} unreadable" if result.invalid else "")
                + ")."
            )
        finally:
            await service.stop()

    try:
        done = asyncio.run(run())
    except (ProfileError, LookupError, OSError) as error:
        return _fail(safe_line(str(error)))
    except (ValueError, EOFError, KeyboardInterrupt) as error:
        return _fail(safe_line(str(error)) or "cancelled")
    if isinstance(done, Failed):
        return _fail(safe_line(done.message))
    print(safe_text(done))
    return 0


def _run_tui(profile_dir: Path) -> int:
    from tuichat.matrix.account.session import Profile, ProfileError

    profile = Profile(profile_dir)
    try:
        session = profile.load_session(tokens=False)
    except ProfileError as error:
        return _fail(safe_line(str(error)))
    if session is None:
        return _fail(
            safe_text(
                f"no session in {profile_dir}; log in first:\n"
                "  tuichat login --homeserver https://matrix.example.org --user @you:example.org"
            )
        )
    for fixed in profile.ensure():
        print(safe_line(f"tuichat: tightened permissions of {fixed}"), file=sys.stderr)
    from tuichat.config import load_config
    from tuichat.ui.app import TuichatApp

    config, errors = load_config()
    if config.previews:
        from tuichat.ui.graphics import prepare_graphics

        prepare_graphics()  # before Textual owns the terminal's input
    app = TuichatApp(profile, config=config, config_errors=errors)
    app.run()
    return app.return_code or 0


def _configure_logging(log_file: str | None) -> None:
    """Libraries (nio above all) log warnings; without a handler Python would
    print them on stderr, over the TUI or after a one-line CLI error."""
    root = logging.getLogger()
    root.handlers.clear()
    if log_file:
        with private_umask():
            handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        root.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    root.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_file)
    profile_dir = resolve_profile_dir(args.profile)
    if args.command in _COMMANDS_ON_THE_PROFILE:
        return _run_locked(args, profile_dir)
    return _run_command(args, profile_dir)


# The commands that open the profile's stores (the TUI is None): each holds
# the profile's lock from before its first prompt to its exit.
_COMMANDS_ON_THE_PROFILE = (None, "login", "logout", "recover", "devices", "keys")


def _run_locked(args: argparse.Namespace, profile_dir: Path) -> int:
    """Run a command holding the profile's lock; refused with a clear
    message when another tuichat process holds it."""
    from tuichat.matrix.account.session import Profile, ProfileError

    profile = Profile(profile_dir)
    if args.command != "login" and not profile.root.is_dir():
        # Nothing to protect: the command says there is no session.
        return _run_command(args, profile_dir)
    try:
        lock = profile.lock(create=args.command == "login")
    except ProfileError as error:
        return _fail(safe_line(str(error)))
    with lock:
        return _run_command(args, profile_dir)


def _run_command(args: argparse.Namespace, profile_dir: Path) -> int:
    if args.command == "login":
        return _login(args, profile_dir)
    if args.command == "logout":
        return _logout(profile_dir)
    if args.command == "recover":
        return _recover(args, profile_dir)
    if args.command == "devices":
        return _devices(profile_dir)
    if args.command == "keys":
        return _keys(args, profile_dir)
    if args.command == "config":
        return _config(args)
    if args.command == "account":
        from tuichat.cli_login import account_command

        return account_command(args, profile_dir)
    if args.command == "demo":
        from tuichat.demo.runner import run_demo

        return run_demo()
    return _run_tui(profile_dir)
