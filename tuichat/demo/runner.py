"""`tuichat demo`: a local homeserver, a chatting peer, and the TUI logged in.

Everything lives in a temporary directory that is removed on exit; quitting
the TUI stops the bot and the homeserver.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from tuichat.demo.synapse import LocalSynapse, RegisteredUser, SynapseError, synapse_available
from tuichat.matrix.account.session import FILE_MODE, Profile, private_umask

BOT_START_TIMEOUT = 60.0


class DemoError(RuntimeError):
    pass


class DemoEnvironment:
    """Synapse + a registered user logged in to a profile + the demo bot."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.synapse = LocalSynapse(base / "synapse")
        self.profile = Profile(base / "profile")
        self.bot_process: subprocess.Popen[str] | None = None
        self.room_id: str | None = None
        self.you: RegisteredUser | None = None
        self.bot: RegisteredUser | None = None

    def start(self) -> None:
        self.synapse.start()
        # A name, not "You": the timeline says "Sam joined", "Sam was invited".
        self.you = self.synapse.register("sam")
        self.synapse.set_display_name(self.you, "Sam")
        self.bot = self.synapse.register("ada")
        self.synapse.set_display_name(self.bot, "Ada")
        from tuichat.matrix.account.login import login

        asyncio.run(
            login(
                self.profile,
                homeserver=self.synapse.url,
                user=self.you.user_id,
                password=self.you.password,
                device_name="tuichat demo",
            )
        )
        self.room_id = self._start_bot()
        self._accept_dm(self.room_id)

    def _start_bot(self) -> str:
        assert self.bot is not None and self.you is not None
        password_file = self.base / "bot-password"
        with private_umask():
            password_file.write_text(self.bot.password)
        password_file.chmod(FILE_MODE)
        with open(self.base / "bot.log", "w") as log_file:
            self.bot_process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tuichat.demo.bot",
                    "--homeserver",
                    self.synapse.url,
                    "--user",
                    self.bot.user_id,
                    "--password-file",
                    str(password_file),
                    "--partner",
                    self.you.user_id,
                    "--store",
                    str(self.base / "bot-store"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
        assert self.bot_process.stdout is not None
        ready, _, _ = select.select([self.bot_process.stdout], [], [], BOT_START_TIMEOUT)
        line = self.bot_process.stdout.readline().strip() if ready else ""
        if not line.startswith("!"):
            log = (self.base / "bot.log").read_text(errors="replace")[-2000:]
            raise DemoError(f"the demo bot did not start:\n{log}")
        return line

    def _accept_dm(self, room_id: str) -> None:
        """Join the bot's DM as the demo user and record it in m.direct, as
        accepting a DM invite in Element does."""
        assert self.you is not None and self.bot is not None
        token = self.you.access_token
        status, reply = self.synapse._request(
            "POST", f"/_matrix/client/v3/join/{quote(room_id, safe='')}", {}, token=token
        )
        if status != 200:
            raise DemoError(f"joining the demo DM failed: {status} {json.dumps(reply)}")
        user = quote(self.you.user_id, safe="")
        self.synapse._request(
            "PUT",
            f"/_matrix/client/v3/user/{user}/account_data/m.direct",
            {self.bot.user_id: [room_id]},
            token=token,
        )

    def stop(self) -> None:
        process, self.bot_process = self.bot_process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self.synapse.stop()


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run_demo() -> int:
    if not synapse_available():
        print(
            "tuichat demo needs Synapse: install tuichat with the 'demo' extra "
            "(pip install 'tuichat[demo]'), or run `make demo` in a checkout.",
            file=sys.stderr,
        )
        return 1
    # A closed terminal (SIGHUP) or a kill (SIGTERM) must still stop the bot
    # and the homeserver: turn them into SystemExit so `finally` runs.
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="tuichat-demo-") as tmp:
        os.chmod(tmp, 0o700)
        environment = DemoEnvironment(Path(tmp))
        try:
            print("Starting a local Synapse homeserver and the demo peer…", flush=True)
            try:
                environment.start()
            except (SynapseError, DemoError) as error:
                print(f"tuichat demo: {error}", file=sys.stderr)
                return 1
            from tuichat.ui.app import TuichatApp

            app = TuichatApp(environment.profile)
            # As every tuichat process on a profile: no second one beside it.
            with environment.profile.lock():
                app.run()
            return app.return_code or 0
        finally:
            environment.stop()
