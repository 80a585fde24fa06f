"""How long one slice of work may hold the event loop before it yields so a
frame can be drawn: applying a sync's events, reading cached rooms, handling
a large sync room by room all cut their work into slices this long."""

from __future__ import annotations

SLICE_SECONDS = 0.004
