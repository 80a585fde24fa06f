"""Processes the start-up and memory benchmarks measure: a bare Textual app
(one Static) or tuichat, on a profile. Prints one JSON line and exits.

    python -m benchmarks.child start bare|tuichat [PROFILE]
    python -m benchmarks.child memory bare|tuichat [PROFILE]
"""

from __future__ import annotations

import sys
import time


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    mode, kind = sys.argv[1], sys.argv[2]
    import json

    from textual.app import App, ComposeResult
    from textual.widgets import Static

    result: dict[str, float] = {}

    if kind == "bare":

        class Bare(App[None]):
            def compose(self) -> ComposeResult:
                yield Static("hello")

            def on_mount(self) -> None:
                self.call_after_refresh(self.painted)

            def painted(self) -> None:
                result["painted"] = time.monotonic()
                if mode == "memory":
                    self.set_timer(0.3, self.measure)
                else:
                    self.exit()

            def measure(self) -> None:
                import gc

                gc.collect()
                result["rss_kb"] = _rss_kb()
                self.exit()

        Bare().run(headless=True, size=(120, 40))
    else:
        from pathlib import Path

        from tuichat.matrix.account.session import Profile
        from tuichat.ui.app import TuichatApp

        class Measured(TuichatApp):
            def _load(self) -> None:
                # Before the app's own after-the-frame work, so the time is
                # that of the first frame itself.
                self.call_after_refresh(self.painted)
                super()._load()

            def painted(self) -> None:
                result["painted"] = time.monotonic()
                if mode == "memory":
                    self.run_worker(self.measure())
                else:
                    self.exit()

            async def measure(self) -> None:
                import gc

                # As in use: the service and its parts (nio among them)
                # imported, every room's timeline loaded.
                import tuichat.matrix.service.wiring  # noqa: F401

                for room in list(self.state.rooms.ordered()):
                    self.read_cached_room(room.room_id)
                gc.collect()
                result["rss_kb"] = _rss_kb()
                result["items"] = sum(len(t) for t in self.state.timelines.values())
                self.exit()

        Measured(Profile(Path(sys.argv[3])), connect=False).run(headless=True, size=(120, 40))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
