"""A sink for the service's domain events, with helpers to wait on them;
`expect_failed` for the service calls that return `Failed`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuichat.matrix.service.outcome import Failed
from tuichat.model.events import (
    ItemsReplaced,
    RoomsChanged,
    TimelineAppended,
)
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.rooms import Membership

if TYPE_CHECKING:
    from tests.peers import NioPeer
    from tuichat.matrix.service import MatrixService


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


async def join_invite(
    service: MatrixService, recorder: Recorder, peer: NioPeer, room_id: str
) -> None:
    """Accept `peer`'s invite to `room_id` and wait until both sides see the
    service's user joined."""
    from tests.peers import wait_until

    await wait_until(lambda: room_id in recorder.rooms(), 30)
    assert await service.join(room_id)
    await peer.wait_for_member(room_id, service.user_id)
    await wait_until(
        lambda: (r := recorder.rooms().get(room_id)) and r.membership is Membership.JOIN, 30
    )


def expect_failed(outcome: object, match: str = "") -> Failed:
    """What `pytest.raises(match=...)` asserts of a raising call, for one
    that returns `Failed`: it failed, with a message `match` is found in
    (`re.search`)."""
    assert isinstance(outcome, Failed), f"expected a failure, got {outcome!r}"
    assert re.search(match, outcome.message), f"{match!r} not in {outcome.message!r}"
    return outcome
