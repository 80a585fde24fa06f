"""What the composer is writing besides a new message: a reply to a
message or an edit of one. Shown by the draft bar, read when sending."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from tuichat.model.items import TimelineItem


class DraftKind(Enum):
    REPLY = "reply"
    EDIT = "edit"


@dataclass(frozen=True)
class Draft:
    kind: DraftKind
    item: TimelineItem  # the message replied to or edited
