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
    block freezes the survivors before the collector runs again."""

    __slots__ = ("_resume", "freeze_after")

    def __init__(self) -> None:
        self._resume = False
        self.freeze_after = False

    def __enter__(self) -> GcPause:
        self._resume = gc.isenabled()
        gc.disable()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._resume:
            if self.freeze_after:
                gc.freeze()
            gc.enable()
