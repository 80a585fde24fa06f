"""Timeline view items: what one line-group of the timeline shows.

Items are produced from Matrix events by `tuichat.matrix.content.convert` and are
plain data. Every string in an item is already sanitised. An item is never
mutated in place once handed to the UI: a change (decryption, send
confirmation) produces a new item with a higher `version`, so render caches
keyed by ``(key, version, width)`` stay correct.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from tuichat.model.devices import MessageTrust
from tuichat.model.polls import PollStart
from tuichat.model.rich_body import RichBody


class ItemKind(StrEnum):
    TEXT = "text"
    EMOTE = "emote"
    NOTICE = "notice"
    UNDECRYPTABLE = "undecryptable"
    STATE = "state"
    REDACTED = "redacted"
    UNKNOWN = "unknown"


class SendState(StrEnum):
    SENT = "sent"  # confirmed by the server (has an event id)
    PENDING = "pending"  # local echo, waiting for the server
    FAILED = "failed"  # local echo, the send failed; can be retried


# Reasons an event could not be decrypted, with the words the UI shows.
UTD_REASONS: dict[str, str] = {
    "missing_key": "waiting for the key",
    "unknown_index": "the key does not cover this message",
    "before_device": "sent before this device existed",
    "blacklisted": "the sender's device is blacklisted",
    "sender_mismatch": "sender mismatch: the key does not belong to the sender",
    "replay": "rejected: replayed message index",
    "undecodable": "the encrypted payload is malformed",
    "decrypting": "decrypting\u2026",
    "no_store": "this device's keys could not be opened",
    "unsupported": "unsupported encryption algorithm",
    "withheld": "the sender withheld the key",
}


class WithheldCode(StrEnum):
    """The m.room_key.withheld codes the spec defines, and UNKNOWN for any
    other value: a code comes from whoever sent the to-device message, so
    only these values are ever kept or shown."""

    BLACKLISTED = "m.blacklisted"
    UNVERIFIED = "m.unverified"
    UNAUTHORISED = "m.unauthorised"
    UNAVAILABLE = "m.unavailable"
    NO_OLM = "m.no_olm"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> WithheldCode:
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        return cls.UNKNOWN


# m.room_key.withheld codes, as the placeholder explains them.
WITHHELD_CODES: dict[WithheldCode, str] = {
    WithheldCode.BLACKLISTED: "the sender blacklisted this device",
    WithheldCode.UNVERIFIED: "the sender only shares keys with verified devices",
    WithheldCode.UNAUTHORISED: "this device is not allowed to have the key",
    WithheldCode.UNAVAILABLE: "the key is not available",
    WithheldCode.NO_OLM: "no secure channel to this device could be set up",
    WithheldCode.UNKNOWN: "the sender withheld the key (for a reason tuichat does not know)",
}

# Where a message's key came from, when not directly from its sender: such
# keys bind the message to its sender less strongly (Element: "the
# authenticity of this message can't be guaranteed").
KEY_SOURCE_LABELS: dict[str, str] = {
    "forwarded": "key forwarded by another device",
    "imported": "key imported from a file",
    "backup": "key restored from backup",
    # dehydrated devices (issue 26): sent over Olm to the device the server kept
    "dehydrated": "key received by your dehydrated device",
}


class RelationKind(StrEnum):
    """Events that change another event instead of being shown themselves."""

    EDIT = "edit"  # m.replace: the item carries the new content
    REACTION = "reaction"  # m.annotation: `key` is the reaction
    REDACTION = "redaction"
    HIDDEN = "hidden"  # an edit or reaction that could not be decrypted (yet)
    # issue 22: a vote on a poll (`answers`), and a poll's end
    POLL_RESPONSE = "poll_response"
    POLL_END = "poll_end"


@dataclass(frozen=True, slots=True)
class Relation:
    kind: RelationKind
    target: str  # the event id it relates to
    key: str = ""  # the reaction's key (an emoji or short text)
    answers: tuple[str, ...] = ()  # a poll response's answer ids


@dataclass(frozen=True, slots=True)
class Reaction:
    """One reaction key under a message, aggregated."""

    key: str
    count: int
    mine: bool = False


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file, image, video or audio message: what is needed to show and
    fetch it. `url` is a validated `mxc://` URI (None: unusable); `file`
    holds the encryption details of an encrypted one (its key included)."""

    msgtype: str  # "m.image", "m.file", "m.video", "m.audio"
    name: str  # sanitised for display; made safe again before saving
    mimetype: str = ""
    size: int | None = None
    url: str | None = None
    file: dict[str, Any] | None = None
    thumbnail_url: str | None = None
    thumbnail_file: dict[str, Any] | None = None
    width: int | None = None
    height: int | None = None

    @property
    def encrypted(self) -> bool:
        return self.file is not None

    @property
    def is_image(self) -> bool:
        return self.msgtype == "m.image"


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    """What the main timeline shows under a thread root: how many replies,
    the latest one's sender and a short preview (sanitised), and whether
    the user has unread replies in it."""

    count: int
    latest_sender: str = ""
    latest_sender_name: str = ""
    latest_preview: str = ""
    latest_ts: int = 0
    latest_event_id: str | None = None
    participated: bool = False
    unread: bool = False


# Kinds that count as messages for unread counters.
MESSAGE_KINDS = frozenset({ItemKind.TEXT, ItemKind.EMOTE, ItemKind.NOTICE, ItemKind.UNDECRYPTABLE})


@dataclass(frozen=True, slots=True)
class ItemDetails:
    """The fields of a `TimelineItem` most items leave at their defaults
    (or share with many others: a plain message's push-rule outcome, a
    Megolm session's trust). Items hold one of these, shared between items
    with equal details where the values allow it, so an item costs a few
    machine words instead of one per field."""

    txn_id: str | None = None
    encrypted: bool = False
    send_state: SendState = SendState.SENT
    utd_reason: str | None = None
    session_id: str | None = None
    highlight: bool = False
    # For decrypted events: how the message is bound to its sender's device.
    trust: MessageTrust | None = None
    # Set when the key did not come directly from the sender (see above).
    key_source: str | None = None
    # The sanitised formatted body (HTML through the whitelist), if any.
    formatted: RichBody | None = None
    reply_to: str | None = None  # the event id this message answers
    # Set on edits, reactions and redactions, which the timeline applies to
    # their target instead of showing.
    relation: Relation | None = None
    edited: bool = False
    reactions: tuple[Reaction, ...] = ()
    read_by: tuple[str, ...] = ()  # names of members whose read receipt is here
    # Membership changes, for condensing runs of them: (action, name).
    membership: tuple[str, str] | None = None
    attachment: Attachment | None = None
    # Push rules (notifications feature): whether the account's rules say
    # to notify (None: not evaluated; every message counts) and to make a
    # sound; `highlight` above follows them too when evaluated.
    notify: bool | None = None
    loud: bool = False
    # Threads (issue 21): the root of the thread this event is a reply in,
    # and, on a thread root, the summary of its thread.
    thread_root: str | None = None
    thread: ThreadSummary | None = None
    # issue 22: a poll's question and answers (its body shows the counts).
    poll: PollStart | None = None
    # A room this item leads to (a tombstone's successor, a predecessor).
    link_room: str | None = None
    # A line naming only an event's type (a state event or type tuichat has
    # no rendering for): kept, shown only with `show_hidden_events`.
    type_only: bool = False


_NO_DETAILS = ItemDetails()
DETAIL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ItemDetails))
_DEFAULTS: dict[str, object] = {name: getattr(_NO_DETAILS, name) for name in DETAIL_FIELDS}
_CORE_FIELDS = ("key", "sender", "sender_name", "timestamp", "kind", "body", "event_id", "version")
# Details shared between items, by the values given: a bounded table,
# emptied when full (a value that is unique to one item only passes
# through it).
_SHARED_DETAILS: dict[tuple[tuple[tuple[str, object], ...], tuple[type, ...]], ItemDetails] = {}
_SHARED_LIMIT = 4096


def _details(values: dict[str, Any]) -> ItemDetails:
    if not values:
        return _NO_DETAILS
    # With the types: equal values of other types (a StrEnum member and its
    # string) must not share, or `is` comparisons would see the wrong one.
    key = (tuple(values.items()), tuple(map(type, values.values())))
    try:
        found = _SHARED_DETAILS.get(key)
    except TypeError:  # an unhashable value (an encrypted file's keys)
        return ItemDetails(**values)
    if found is None:
        found = ItemDetails(**values)
        if len(_SHARED_DETAILS) >= _SHARED_LIMIT:
            _SHARED_DETAILS.clear()
        _SHARED_DETAILS[key] = found
    return found


class TimelineItem:
    """One timeline entry: immutable, compared and hashed by value like a
    frozen dataclass. The fields every item has are slots; the rest (see
    `ItemDetails`) are read through properties from its shared details."""

    __slots__ = (*_CORE_FIELDS, "_details")

    key: str  # event id, or "txn:<id>" for a local echo not yet confirmed
    sender: str
    sender_name: str
    timestamp: int  # milliseconds since the epoch
    kind: ItemKind
    body: str
    event_id: str | None
    version: int
    _details: ItemDetails

    if TYPE_CHECKING:  # read from `_details` (properties set below the class)
        txn_id: str | None
        encrypted: bool
        send_state: SendState
        utd_reason: str | None
        session_id: str | None
        highlight: bool
        trust: MessageTrust | None
        key_source: str | None
        formatted: RichBody | None
        reply_to: str | None
        relation: Relation | None
        edited: bool
        reactions: tuple[Reaction, ...]
        read_by: tuple[str, ...]
        membership: tuple[str, str] | None
        attachment: Attachment | None
        notify: bool | None
        loud: bool
        thread_root: str | None
        thread: ThreadSummary | None
        poll: PollStart | None
        link_room: str | None
        type_only: bool

    def __init__(
        self,
        key: str,
        sender: str,
        sender_name: str,
        timestamp: int,
        kind: ItemKind,
        body: str,
        event_id: str | None = None,
        version: int = 0,
        **details: Any,
    ) -> None:
        put = object.__setattr__
        put(self, "key", key)
        put(self, "sender", sender)
        put(self, "sender_name", sender_name)
        put(self, "timestamp", timestamp)
        put(self, "kind", kind)
        put(self, "body", body)
        put(self, "event_id", event_id)
        put(self, "version", version)
        put(self, "_details", _details(details))

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[object, ...]:
        return (
            self.key,
            self.sender,
            self.sender_name,
            self.timestamp,
            self.kind,
            self.body,
            self.event_id,
            self.version,
            self._details,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not TimelineItem:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = [f"{name}={getattr(self, name)!r}" for name in _CORE_FIELDS]
        shown += [f"{name}={value!r}" for name, value in self.details().items()]
        return f"TimelineItem({', '.join(shown)})"

    def details(self) -> dict[str, Any]:
        """The detail fields this item sets to other than their defaults."""
        found = self._details
        if found is _NO_DETAILS:
            return {}
        return {
            name: value
            for name in DETAIL_FIELDS
            if (value := getattr(found, name)) is not _DEFAULTS[name] and value != _DEFAULTS[name]
        }

    def replace(self, **changes: Any) -> TimelineItem:
        """A copy with `changes` applied (what `dataclasses.replace` does
        for a dataclass); `evolve` also bumps the version."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _CORE_FIELDS}
        values.update(self.details())
        values.update(changes)
        return TimelineItem(**values)

    @property
    def is_local_echo(self) -> bool:
        return self.send_state is not SendState.SENT or self.key.startswith("txn:")

    def evolve(self, **changes: object) -> TimelineItem:
        """A copy with `changes` applied and the version bumped."""
        return self.replace(version=self.version + 1, **changes)

    @property
    def is_message(self) -> bool:
        return self.kind in MESSAGE_KINDS

    @property
    def counts_unread(self) -> bool:
        """Counted in the room's unread count: what the push rules say to
        notify of, or, not evaluated, every message."""
        return self.notify if self.notify is not None else self.kind in MESSAGE_KINDS

    @property
    def rings(self) -> bool:
        """Worth the bell: by the push rules, a notifying highlight or a
        rule with a sound; not evaluated, a highlight."""
        if self.notify is None:
            return self.highlight
        return self.notify and (self.highlight or self.loud)

    @property
    def utd_text(self) -> str:
        reason = self.utd_reason or "missing_key"
        if reason.startswith("withheld:"):
            # Parsed again: a reason built before codes were checked may
            # carry anything.
            code = WithheldCode.parse(reason.partition(":")[2])
            return f"withheld: {WITHHELD_CODES[code]}"
        return UTD_REASONS.get(reason, "unable to decrypt")


for _name in DETAIL_FIELDS:
    # attrgetter reads through `_details` in C.
    setattr(TimelineItem, _name, property(attrgetter(f"_details.{_name}")))
