"""The Textual message that brings domain events to the App."""

from __future__ import annotations

from textual.message import Message


class MatrixEventsReady(Message):
    """Domain events wait in the App's inbox (see `TuichatApp.sink`): the
    one path by which the cache reader's and the service's events arrive."""
