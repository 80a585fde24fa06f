"""Pausing Python's cyclic garbage collector around a burst of allocations.

Parsing a large sync body or handling a large sync creates many containers
that reference counting frees (or that live on); a full collection in the
middle would walk the whole heap and stall a frame. `GcPause` pauses the
collector for a block when it was running, and on leaving can freeze what
survived (`gc.freeze`), so later collections do not walk it again.
"""

from __future__ import annotations

import gc
from types import TracebackType


class GcPause:
    """`with GcPause() as pause:` runs the block with the collector paused
    (if it was enabled); setting `pause.freeze_after = True` inside the
    block freezes the survivors before the collector runs again.

    A pause that spans more than one block (start-up reading the cache
    across frames) calls `pause()` and, later, `resume()`."""

    __slots__ = ("_resume", "freeze_after")

    def __init__(self) -> None:
        self._resume = False
        self.freeze_after = False

    def pause(self) -> None:
        self._resume = gc.isenabled()
        gc.disable()

    def resume(self) -> None:
        """Let the collector run again if this pause stopped it (once)."""
        if self._resume:
            self._resume = False
            if self.freeze_after:
                gc.freeze()
            gc.enable()

    def __enter__(self) -> GcPause:
        self.pause()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.resume()
