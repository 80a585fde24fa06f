"""A sink for the service's domain events, with helpers to wait on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuichat.matrix.events import (
    ItemsReplaced,
    RoomsChanged,
    TimelineAppended,
)
from tuichat.model.items import ItemKind, TimelineItem


class Recorder:
    """A sink that keeps every domain event, with helpers to wait on them."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def items(self, room_id: str) -> list[TimelineItem]:
        items: dict[str, TimelineItem] = {}
        for event in self.events:
            if isinstance(event, (TimelineAppended, ItemsReplaced)) and event.room_id == room_id:
                for item in event.items:
                    items[item.key] = item
        return list(items.values())

    def text_from(self, room_id: str, body: str) -> TimelineItem | None:
        for item in self.items(room_id):
            if item.body == body and item.kind is ItemKind.TEXT:
                return item
        return None

    def rooms(self) -> dict[str, Any]:
        rooms = {}
        for event in self.events:
            if isinstance(event, RoomsChanged):
                rooms.update({room.room_id: room for room in event.rooms})
        return rooms

    def item(self, room_id: str, event_id: str) -> TimelineItem | None:
        for item in self.items(room_id):
            if item.event_id == event_id:
                return item
        return None


ServiceFactory = Callable[..., Any]
