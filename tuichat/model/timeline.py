"""One room's timeline: ordered items, local echoes, relations, read marker.

Remote items (those with an event id, in server order) come first; local
echoes (messages being sent, or failed) follow at the bottom, as Element
shows them. Each mutation returns a `TimelineChange` saying which part of the
list changed, so the view can invalidate only that part.

Edits, reactions and redactions are not shown as items of their own: they
are kept by the event they relate to and *decorate* it (latest valid edit,
aggregated reactions, "message deleted"), whichever arrives first; read
receipts decorate the item they point at the same way. Replies register
with their parent, so a parent that changes (decrypted, edited, fetched)
redraws the quotes of its replies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice

from tuichat.model.items import (
    ItemKind,
    Reaction,
    RelationKind,
    SendState,
    TimelineItem,
)
from tuichat.model.packed_timeline import Packable
from tuichat.model.polls import PollBook

# Shown under a message at most: different reactions, and names of readers.
MAX_REACTION_KEYS = 24
MAX_READERS_SHOWN = 6

# Kinds whose content an edit may replace.
EDITABLE_KINDS = frozenset({ItemKind.TEXT, ItemKind.EMOTE, ItemKind.NOTICE})


class ChangeKind(StrEnum):
    APPENDED = "appended"  # items from `index` to the end are new or changed
    PREPENDED = "prepended"  # `count` items were inserted at the top
    REPLACED = "replaced"  # the items at `indices` changed in place
    RESET = "reset"  # everything changed


@dataclass(frozen=True, slots=True)
class TimelineChange:
    kind: ChangeKind
    index: int = 0
    count: int = 0
    indices: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        return self.kind is not ChangeKind.RESET and not self.count and not self.indices


def _valid_edit(edit: TimelineItem, sender: str, encrypted: bool) -> bool:
    """Whether `edit` may replace an original by `sender` (encrypted or not)."""
    return (
        edit.sender == sender and edit.kind in EDITABLE_KINDS and (edit.encrypted or not encrypted)
    )


def _edit_order(edit: TimelineItem) -> tuple[int, str]:
    """Edits are ordered by timestamp, then event id (the spec's order)."""
    return (edit.timestamp, edit.event_id or "")


class Timeline(Packable, Sequence[TimelineItem]):
    """Items of one room (packed while unused: see `packed_timeline`)."""

    def __init__(self, room_id: str, own_user_id: str = "") -> None:
        self.room_id = room_id
        self.own_user_id = own_user_id
        self._clear_relations()
        self._receipts: dict[str, tuple[str, str]] = {}  # user id -> (event id, name)
        # event id -> {user id: name} of those who read up to it
        self._readers: dict[str, dict[str, str]] = {}
        self._remote: list[TimelineItem] = []
        # item key (the event id for events) -> sequence number;
        # index = seq - self._first_seq. Local notices (not events) have keys
        # of their own and sit among the events in arrival order.
        self._seq: dict[str, int] = {}
        self._first_seq = 0
        self._echoes: list[TimelineItem] = []
        self.read_marker: str | None = None  # event id of the last item read
        self.has_more_history = True
        self._track()

    # -- Sequence protocol -------------------------------------------------

    def __len__(self) -> int:
        return len(self._remote) + len(self._echoes)

    def __getitem__(self, index: int) -> TimelineItem:  # type: ignore[override]
        remote = len(self._remote)
        if index < 0:
            index += len(self)
        if index < remote:
            return self._remote[index]
        return self._echoes[index - remote]

    @property
    def remote_count(self) -> int:
        return len(self._remote)

    def index_of(self, key: str) -> int | None:
        """Index of the item with this key (an event id, for events)."""
        seq = self._seq.get(key)
        return None if seq is None else seq - self._first_seq

    def get(self, event_id: str) -> TimelineItem | None:
        index = self.index_of(event_id)
        return None if index is None else self._remote[index]

    @property
    def local_echoes(self) -> list[TimelineItem]:
        return list(self._echoes)

    @property
    def last_event_id(self) -> str | None:
        return next((i.event_id for i in reversed(self._remote) if i.event_id), None)

    def lookup(self, event_id: str) -> TimelineItem | None:
        """An event shown here, or one fetched to quote it (a reply's parent)."""
        return self.get(event_id) or self._context.get(event_id)

    def own_reaction(self, event_id: str, key: str) -> str | None:
        """The event id of our reaction `key` to `event_id`, if we reacted."""
        for reaction_id, (reaction_key, sender) in self._reactions.get(event_id, {}).items():
            if reaction_key == key and sender == self.own_user_id:
                return reaction_id
        return None

    # -- mutations -----------------------------------------------------------

    def _clear_relations(self) -> None:
        # target -> {edit event id: edit}: replacing or removing one is O(1).
        self._edits: dict[str, dict[str, TimelineItem]] = {}
        # target -> ((sender, encrypted) of the original it was chosen for,
        # its latest valid edit), kept up to date as edits come, so a flood
        # of edits to one message is not rescanned on every new one.
        self._latest: dict[str, tuple[tuple[str, bool], TimelineItem | None]] = {}
        self.polls = PollBook()  # issue 22: votes and ends, by poll
        self._edit_target: dict[str, str] = {}  # edit event id -> target
        self._reactions: dict[str, dict[str, tuple[str, str]]] = {}  # target -> {id: (key, sender)}
        self._reaction_target: dict[str, str] = {}  # reaction event id -> target
        # target -> key -> [count, own count], kept up to date as reactions
        # come and go (recounting all of a target's reactions on every new
        # one would be quadratic in a room that spams them).
        self._reaction_counts: dict[str, dict[str, list[int]]] = {}
        self._redacted: set[str] = set()
        self._base: dict[str, TimelineItem] = {}  # edited items as first received
        self._replies: dict[str, set[str]] = {}  # parent event id -> keys of replies
        self._context: dict[str, TimelineItem] = {}  # parents fetched for quotes
        # A hidden event (a relation) -> the item shown last when it came:
        # a read receipt on the hidden event shows there.
        self._anchor: dict[str, str] = {}

    def append(self, items: Iterable[TimelineItem]) -> TimelineChange:
        """Add newer remote items. Known event ids are replaced in place, and a
        remote echo of our own message removes its local echo. Relations are
        applied to their targets.

        The change covers everything from the old end of the remote items
        down (local echoes move below new items), plus `indices` of items
        replaced further up.
        """
        remote_before = len(self._remote)
        length_before = len(self)
        replaced: list[int] = []
        for item in items:
            if item.relation is not None:
                if item.event_id is not None and self._remote:
                    self._anchor[item.event_id] = self._remote[-1].key
                replaced.extend(self._relate(item))
                continue
            if item.event_id is None and not item.key.startswith("notice:"):
                continue
            known = self.index_of(item.key)
            if known is not None:
                replaced.extend(self._put(known, item))
                continue
            if item.txn_id and item.event_id:
                self._drop_echo(item.txn_id, item.event_id)
            self._seq[item.key] = self._first_seq + len(self._remote)
            self._remote.append(self._admit(item))
        moved = len(self._remote) != remote_before or len(self) != length_before
        return TimelineChange(
            ChangeKind.APPENDED if moved else ChangeKind.REPLACED,
            index=remote_before,
            count=max(len(self), length_before) - remote_before if moved else 0,
            indices=tuple(sorted({i for i in replaced if i < remote_before})),
        )

    def _admit(self, item: TimelineItem) -> TimelineItem:
        """A new item as shown: decorated, and known to its parent."""
        if item.reply_to is not None:
            self._replies.setdefault(item.reply_to, set()).add(item.key)
        return self._decorate(item)

    def _put(self, index: int, item: TimelineItem) -> list[int]:
        """Replace the item at `index` (a new version of the event, e.g.
        decrypted). The new one always has a higher version than the old, so
        caches keyed by version see the change. Returns the indices changed
        (with replies quoting it)."""
        old = self._remote[index]
        if item.event_id is not None:
            self._base.pop(item.event_id, None)
        item = self._admit(item)
        if item.version <= old.version:
            item = item.replace(version=old.version + 1)
        self._remote[index] = item
        return [index, *self._touch_replies(item.key)]

    def _touch_replies(self, parent: str) -> list[int]:
        """New versions of the replies quoting `parent` (their quote changed)."""
        touched = []
        for key in self._replies.get(parent, ()):
            index = self.index_of(key)
            if index is not None:
                self._remote[index] = self._remote[index].evolve()
                touched.append(index)
        return touched

    def _redecorate(self, event_id: str) -> list[int]:
        index = self.index_of(event_id)
        if index is None:
            return []
        return self._put(index, self._base.get(event_id, self._remote[index]))

    def _relate(self, item: TimelineItem) -> list[int]:
        """Apply an edit, reaction or redaction; returns the indices changed."""
        relation, event_id = item.relation, item.event_id
        if relation is None or event_id is None or event_id in self._redacted:
            return []
        target = relation.target
        if relation.kind is RelationKind.EDIT:
            edits = self._edits.setdefault(target, {})
            edits.pop(event_id, None)
            edits[event_id] = item
            self._edit_target[event_id] = target
            self._note_edit(target, item)
            return self._redecorate(target)
        if relation.kind is RelationKind.REACTION:
            if event_id in self._reaction_target:
                return []
            self._reactions.setdefault(target, {})[event_id] = (relation.key, item.sender)
            self._reaction_target[event_id] = target
            self._count_reaction(target, relation.key, item.sender, 1)
            return self._redecorate(target)
        if relation.kind is RelationKind.REDACTION:
            self._redacted.add(target)
            poll = self.polls.forget_response(target)
            if poll is not None:
                return self._redecorate(poll)
            if target in self._reaction_target:
                parent = self._reaction_target.pop(target)
                removed = self._reactions.get(parent, {}).pop(target, None)
                if removed is not None:
                    self._count_reaction(parent, removed[0], removed[1], -1)
                return self._redecorate(parent)
            if target in self._edit_target:
                parent = self._edit_target.pop(target)
                self._edits.get(parent, {}).pop(target, None)
                self._forget_latest(parent, target)
                return self._redecorate(parent)
            return self._redecorate(target)
        if relation.kind in (RelationKind.POLL_RESPONSE, RelationKind.POLL_END):
            end = relation.kind is RelationKind.POLL_END
            answers = None if end else relation.answers
            self.polls.add(target, event_id, item.sender, item.timestamp, answers)
            return self._redecorate(target)
        return []  # HIDDEN: applied once it decrypts (an ItemsReplaced)

    def _decorate(self, base: TimelineItem) -> TimelineItem:
        """`base` with what relates to it applied: redaction, latest valid
        edit, reactions and read receipts."""
        key = base.event_id
        if key is None or (
            key not in self._edits
            and key not in self._reactions
            and key not in self._readers
            and key not in self._redacted
            # A reader who moved on leaves nothing in `_readers`: the names
            # the item still carries must go.
            and not base.read_by
            and base.poll is None
        ):
            return base
        readers = self._readers_of(key)
        if key in self._redacted:
            if base.kind is ItemKind.REDACTED and base.read_by == readers:
                return base
            return base.replace(
                kind=ItemKind.REDACTED,
                body="message deleted",
                formatted=None,
                reply_to=None,
                highlight=False,
                edited=False,
                reactions=(),
                read_by=readers,
            )
        item = base
        edit = self._latest_edit(base)
        if edit is not None:
            self._base[key] = base
            item = item.replace(
                kind=edit.kind,
                body=edit.body,
                formatted=edit.formatted,
                highlight=edit.highlight,
                edited=True,
            )
        if base.poll is not None:
            body = self.polls.text(key, base.poll, base.sender, self.own_user_id)
            item = item.replace(body=body) if body != item.body else item
        reactions = self._aggregate(key)
        if reactions != item.reactions or readers != item.read_by:
            item = item.replace(reactions=reactions, read_by=readers)
        return item

    def _latest_edit(self, original: TimelineItem) -> TimelineItem | None:
        """The newest edit by the original's sender (spec: by timestamp, then
        event id). An encrypted original takes only encrypted edits. All
        edits are scanned only when the original's sender or encryption is
        new (or the latest edit was redacted); `_note_edit` keeps it."""
        if original.kind not in EDITABLE_KINDS or original.event_id is None:
            return None
        target = original.event_id
        who = (original.sender, original.encrypted)
        known = self._latest.get(target)
        if known is not None and known[0] == who:
            return known[1]
        valid = [edit for edit in self._edits.get(target, {}).values() if _valid_edit(edit, *who)]
        latest = max(valid, key=_edit_order) if valid else None
        self._latest[target] = (who, latest)
        return latest

    def _note_edit(self, target: str, edit: TimelineItem) -> None:
        """A new edit (or a new version of one) of `target`: the latest?"""
        known = self._latest.get(target)
        if known is None:
            return  # worked out when the target is decorated
        who, latest = known
        if latest is not None and latest.event_id == edit.event_id:
            del self._latest[target]  # the latest itself changed: scan again
        elif _valid_edit(edit, *who) and (
            latest is None or _edit_order(edit) > _edit_order(latest)
        ):
            self._latest[target] = (who, edit)

    def _forget_latest(self, target: str, edit_id: str) -> None:
        """Edit `edit_id` of `target` was redacted."""
        known = self._latest.get(target)
        if known is not None and known[1] is not None and known[1].event_id == edit_id:
            del self._latest[target]

    def _count_reaction(self, target: str, key: str, sender: str, step: int) -> None:
        counts = self._reaction_counts.setdefault(target, {})
        entry = counts.setdefault(key, [0, 0])
        entry[0] += step
        if sender == self.own_user_id:
            entry[1] += step
        if entry[0] <= 0:
            del counts[key]

    def _aggregate(self, event_id: str) -> tuple[Reaction, ...]:
        """The first MAX_REACTION_KEYS different reactions, in the order
        they first came."""
        counts = self._reaction_counts.get(event_id, {})
        return tuple(
            Reaction(key, count, own > 0)
            for key, (count, own) in islice(counts.items(), MAX_REACTION_KEYS)
        )

    def _readers_of(self, event_id: str) -> tuple[str, ...]:
        """Names of who read up to here: a few, then how many more."""
        readers = self._readers.get(event_id)
        if not readers:
            return ()
        names = tuple(islice(readers.values(), MAX_READERS_SHOWN))
        more = len(readers) - len(names)
        return (*names, f"{more} more") if more > 0 else names

    def _drop_echo(self, txn_id: str, event_id: str | None = None) -> None:
        self._echoes = [
            echo
            for echo in self._echoes
            if echo.txn_id != txn_id and (event_id is None or echo.event_id != event_id)
        ]

    def prepend(self, items: Sequence[TimelineItem]) -> TimelineChange:
        """Add older remote items (oldest first) above the current ones.
        Relations among them are recorded first, so the items they concern
        come in decorated."""
        changed: list[int] = []
        for item in items:
            if item.relation is not None:
                changed.extend(self._relate(item))
        fresh = [
            item
            for item in items
            if item.relation is None
            and item.event_id is not None
            and item.event_id not in self._seq
        ]
        if not fresh:
            return TimelineChange(ChangeKind.PREPENDED, count=0, indices=tuple(sorted(changed)))
        self._first_seq -= len(fresh)
        for offset, item in enumerate(fresh):
            assert item.event_id is not None
            self._seq[item.event_id] = self._first_seq + offset
        self._remote[:0] = [self._admit(item) for item in fresh]
        # Replies below may quote what just arrived.
        shifted = {index + len(fresh) for index in changed}
        for item in fresh:
            shifted.update(self._touch_replies(item.key))
        return TimelineChange(
            ChangeKind.PREPENDED, count=len(fresh), indices=tuple(sorted(shifted))
        )

    def replace(self, items: Iterable[TimelineItem], hidden: Iterable[str] = ()) -> TimelineChange:
        """Replace known remote items (matched by event id) in place; apply
        relations that could be decrypted now; update quoted parents.
        Placeholders that decrypted to events not shown (`hidden`), or to a
        relation that did not say so in the clear, leave the timeline, as
        if they had come decrypted."""
        indices: list[int] = []
        placeholders = list(hidden)
        for item in items:
            if item.relation is not None:
                if self.index_of(item.key) is not None:
                    placeholders.append(item.key)
                indices.extend(self._relate(item))
                continue
            index = self.index_of(item.key)
            if index is not None:
                indices.extend(self._put(index, item))
            elif item.event_id is not None and item.event_id in self._context:
                self._context[item.event_id] = item
                indices.extend(self._touch_replies(item.event_id))
        if any(key in self._seq for key in placeholders):
            return self.remove(placeholders)
        return TimelineChange(ChangeKind.REPLACED, indices=tuple(sorted(set(indices))))

    def remove(self, event_ids: Iterable[str]) -> TimelineChange:
        """Take out events that turned out not to be shown: placeholders
        whose decrypted event is of a kind no timeline shows (in-room
        verification steps, calls, unknown types). The timeline is then as
        if they had come decrypted: a read receipt or the read marker on
        one moves to the item shown before it."""
        gone = {event_id for event_id in event_ids if event_id in self._seq}
        if not gone:
            return TimelineChange(ChangeKind.REPLACED)
        kept: list[TimelineItem] = []
        for item in self._remote:
            if item.key not in gone:
                kept.append(item)
                continue
            before = next((i.event_id for i in reversed(kept) if i.event_id), None)
            if before is not None:
                self._anchor[item.key] = before
            if self.read_marker == item.key:
                self.read_marker = before
        self._remote = kept
        self._seq = {item.key: self._first_seq + n for n, item in enumerate(kept)}
        moved = {
            user_id: (event_id, name)
            for user_id, (event_id, name) in self._receipts.items()
            if event_id in gone
        }
        for event_id in gone:
            self._readers.pop(event_id, None)
        for user_id in moved:
            del self._receipts[user_id]
        self.set_receipts(moved)
        return TimelineChange(ChangeKind.RESET)

    def settle_waiting(self, reason: str) -> TimelineChange:
        """Placeholders still "decrypting…" that nothing will decrypt any
        more (the crypto store did not open) say why instead."""
        indices = []
        for index, item in enumerate(self._remote):
            if item.utd_reason == "decrypting":
                self._remote[index] = item.evolve(utd_reason=reason)
                indices.append(index)
        return TimelineChange(ChangeKind.REPLACED, indices=tuple(indices))

    def add_context(self, items: Iterable[TimelineItem]) -> TimelineChange:
        """Events fetched to quote them (reply parents not loaded here)."""
        indices: list[int] = []
        for item in items:
            if item.event_id is None or item.event_id in self._seq:
                continue
            self._context[item.event_id] = item
            indices.extend(self._touch_replies(item.event_id))
        return TimelineChange(ChangeKind.REPLACED, indices=tuple(sorted(set(indices))))

    def set_receipts(self, receipts: dict[str, tuple[str, str]]) -> TimelineChange:
        """Other members' read receipts: user id -> (event id, name). A
        receipt on a hidden event (a reaction, an edit) shows on the item
        shown before it; a receipt never moves back up the timeline."""
        changed: set[str] = set()
        for user_id, (event_id, name) in receipts.items():
            if user_id == self.own_user_id:
                continue
            event_id = self._anchor.get(event_id, event_id)
            old = self._receipts.get(user_id)
            if old is not None:
                if old[0] == event_id and old[1] == name:
                    continue
                old_index, new_index = self.index_of(old[0]), self.index_of(event_id)
                if old_index is not None and (new_index is None or new_index < old_index):
                    continue
                readers = self._readers.get(old[0], {})
                readers.pop(user_id, None)
                if not readers:
                    self._readers.pop(old[0], None)
                changed.add(old[0])
            self._receipts[user_id] = (event_id, name)
            self._readers.setdefault(event_id, {})[user_id] = name
            changed.add(event_id)
        indices: list[int] = []
        for event_id in changed:
            indices.extend(self._redecorate(event_id))
        return TimelineChange(ChangeKind.REPLACED, indices=tuple(sorted(set(indices))))

    def add_local_echo(self, item: TimelineItem) -> TimelineChange:
        self._echoes.append(item)
        return TimelineChange(ChangeKind.APPENDED, index=len(self) - 1, count=1)

    def update_local_echo(
        self, txn_id: str, state: SendState, event_id: str | None = None
    ) -> TimelineChange:
        """Mark a local echo sent (with its event id) or failed."""
        for position, echo in enumerate(self._echoes):
            if echo.txn_id != txn_id:
                continue
            if event_id is not None and event_id in self._seq:
                # The remote echo came down sync first: the echo is redundant.
                del self._echoes[position]
                index = len(self._remote) + position
                return TimelineChange(ChangeKind.APPENDED, index=index, count=len(self) - index)
            self._echoes[position] = echo.evolve(send_state=state, event_id=event_id)
            return TimelineChange(ChangeKind.REPLACED, indices=(len(self._remote) + position,))
        return TimelineChange(ChangeKind.REPLACED)

    def local_echo(self, txn_id: str) -> TimelineItem | None:
        for echo in self._echoes:
            if echo.txn_id == txn_id:
                return echo
        return None

    def reset(self, items: Sequence[TimelineItem] = ()) -> TimelineChange:
        """Drop all remote items (a gap after a limited sync), keep echoes."""
        self._remote = []
        self._seq = {}
        self._first_seq = 0
        self._clear_relations()
        self.has_more_history = True
        self.append(items)
        return TimelineChange(ChangeKind.RESET)

    # -- read marker and counters -----------------------------------------------

    def mark_read(self) -> None:
        for item in reversed(self._remote):
            if item.event_id is not None:
                self.read_marker = item.event_id
                return

    def has_read_marker_here(self) -> bool:
        """Whether the read marker is one of the events here (so everything
        after it is here to count)."""
        return self.read_marker is not None and self.index_of(self.read_marker) is not None

    def unread_counts(self, own_user_id: str) -> tuple[int, int]:
        """(unread, highlight) messages from others after the read marker."""
        start = 0
        if self.read_marker is not None:
            marker = self.index_of(self.read_marker)
            start = 0 if marker is None else marker + 1
        unread = highlight = 0
        for item in self._remote[start:]:
            if item.sender == own_user_id or not item.counts_unread:
                continue
            unread += 1
            if item.highlight:
                highlight += 1
        return unread, highlight

    def undecryptable(self) -> list[TimelineItem]:
        return [item for item in self._remote if item.utd_reason is not None]
