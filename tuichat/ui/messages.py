"""Textual messages that carry the service's domain events to the App."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from tuichat.model.events import DomainEvent


class MatrixEvent(Message):
    """A domain event from the service, delivered on the UI loop in order."""

    def __init__(self, event: DomainEvent) -> None:
        super().__init__()
        self.event = event


class MatrixEventsReady(Message):
    """Domain events wait in the App's inbox (see `TuichatApp._sink`)."""
