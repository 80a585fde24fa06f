"""Domain events the service and the start-up cache reader emit to their
sink (the App's inbox, in the TUI).

Plain dataclasses: no nio, no Textual. Neither emitter touches the model;
they describe what happened and `tuichat.model.state.ChatState` applies it
on the UI loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tuichat.model.connection import ConnectionState
from tuichat.model.items import SendState, TimelineItem
from tuichat.model.rooms import RoomSummary
from tuichat.model.search_query import IndexProgress
from tuichat.model.verification import VerificationView


@dataclass(frozen=True)
class ConnectionChanged:
    state: ConnectionState
    detail: str = ""


@dataclass(frozen=True)
class RoomsChanged:
    """Summaries (name, topic, flags) of rooms that are new or changed."""

    rooms: list[RoomSummary]


@dataclass(frozen=True)
class RoomRemoved:
    """We left, were kicked from, or declined the room."""

    room_id: str


@dataclass(frozen=True)
class TimelineAppended:
    """Newer events of one room (one per room per sync response)."""

    room_id: str
    items: list[TimelineItem]
    limited: bool = False  # a gap: earlier items are no longer contiguous


@dataclass(frozen=True)
class TimelinePrepended:
    """Older events of one room, oldest first (cache or /messages)."""

    room_id: str
    items: list[TimelineItem]
    has_more: bool = True


@dataclass(frozen=True)
class ItemsReplaced:
    """Known events changed in place (decrypted, redacted, edited).
    `hidden`: events shown as placeholders that decrypted to something no
    timeline shows (in-room verification steps, unknown types): they go,
    as they would never have come had they arrived decrypted."""

    room_id: str
    items: list[TimelineItem]
    hidden: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalEchoAdded:
    room_id: str
    item: TimelineItem


@dataclass(frozen=True)
class SendStateChanged:
    room_id: str
    txn_id: str
    state: SendState
    event_id: str | None = None
    error: str = ""


@dataclass(frozen=True)
class Notice:
    """A message for the user: command results and errors."""

    text: str
    error: bool = False
    room_id: str | None = None


@dataclass(frozen=True)
class SwitchToRoom:
    """The service joined or created a room the user asked for."""

    room_id: str


@dataclass(frozen=True)
class ReadMarkers:
    """Fully-read markers (`m.fully_read`, set by any of our devices), by
    room id: the user read up to there."""

    markers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReceiptsChanged:
    """Other members' read receipts moved: user id -> (event id, name)."""

    room_id: str
    receipts: dict[str, tuple[str, str]]


@dataclass(frozen=True)
class TypingChanged:
    """Who is typing in a room now (names, not counting us)."""

    room_id: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class ContextFetched:
    """Events fetched to quote them (the parents of replies)."""

    room_id: str
    items: list[TimelineItem]


@dataclass(frozen=True)
class DevicesChanged:
    """Device lists or trust of these users changed (refresh device views)."""

    user_ids: frozenset[str]


@dataclass(frozen=True)
class VerificationChanged:
    """A key verification started, moved on, finished or was cancelled."""

    view: VerificationView


@dataclass(frozen=True)
class RecoveryOffered:
    """A new device on an account with secret storage: offer to recover
    encrypted history (`count` sessions are in the backup)."""

    count: int


@dataclass(frozen=True)
class CachedRoomsRead:
    """The rooms the cache holds, read at start-up before the first frame."""

    rooms: list[RoomSummary]


@dataclass(frozen=True)
class CachedTimelineRead:
    """One room's recent history as the cache holds it, oldest first, with
    what the cache knows beside it."""

    room_id: str
    items: Sequence[TimelineItem]
    read_marker: str | None = None
    has_older: bool = True
    receipts: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class WaitingSettled:
    """Cached encrypted messages will not be decrypted (`reason`, e.g.
    "no_store": this device's crypto store did not open): the placeholders
    say why instead of "decrypting…"."""

    reason: str


# -- notifications and unread state (issue 23) ---------------------------------------


@dataclass(frozen=True)
class PushSettingsChanged:
    """The account's push rules changed: each room's own setting (room id ->
    a `RoomMode` value, rooms without one left out) and the keywords."""

    room_modes: dict[str, str]
    keywords: tuple[str, ...] = ()
    group_default: str = "all"  # group rooms without a setting: "all" or "mentions"


@dataclass(frozen=True)
class MarkedUnread:
    """A room was marked unread (or no longer) by one of our clients."""

    room_id: str
    unread: bool


@dataclass(frozen=True)
class ServerCounts:
    """The server's notification and highlight counts of a clear-text room
    (`unread_notifications`): used where the events after the read marker
    are not all here to count."""

    room_id: str
    notifications: int
    highlights: int


# -- threads (issue 21) ------------------------------------------------------------


@dataclass(frozen=True)
class ThreadPage:
    """Earlier replies of a thread (relations API), oldest first."""

    room_id: str
    root: str
    items: list[TimelineItem]
    has_more: bool = False
    next_token: str | None = None


@dataclass(frozen=True)
class ThreadsListed:
    """Thread roots of a room from the thread list (`/threads`), newest
    activity first, with their server summaries."""

    room_id: str
    roots: list[TimelineItem]
    has_more: bool = False


@dataclass(frozen=True)
class ThreadReceipts:
    """Our own threaded read receipts (MSC3771): thread root -> event id."""

    room_id: str
    receipts: dict[str, str]


@dataclass(frozen=True)
class ThreadCounts:
    """The server's unread counts per thread (MSC3773): root ->
    (notifications, highlights); threads not named have none."""

    room_id: str
    counts: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class ThreadReaders:
    """Other members' read receipts in thread `root`: user id -> (event
    id, name)."""

    room_id: str
    root: str
    receipts: dict[str, tuple[str, str]]


# -- search (issue 24) ----------------------------------------------------------------


@dataclass(frozen=True)
class SearchIndexProgress:
    """How far indexing the existing history for search has come."""

    progress: IndexProgress


DomainEvent = (
    ConnectionChanged
    | RoomsChanged
    | RoomRemoved
    | TimelineAppended
    | TimelinePrepended
    | ItemsReplaced
    | LocalEchoAdded
    | SendStateChanged
    | Notice
    | SwitchToRoom
    | ReadMarkers
    | ReceiptsChanged
    | TypingChanged
    | ContextFetched
    | DevicesChanged
    | VerificationChanged
    | RecoveryOffered
    | CachedRoomsRead
    | CachedTimelineRead
    | WaitingSettled
    | PushSettingsChanged
    | MarkedUnread
    | ServerCounts
    | ThreadPage
    | ThreadsListed
    | ThreadReceipts
    | ThreadCounts
    | ThreadReaders
    | SearchIndexProgress  # search (issue 24)
)

Sink = Callable[[DomainEvent], None]
