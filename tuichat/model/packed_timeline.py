"""Timelines of rooms not on screen, kept packed in memory.

A loaded event as a `TimelineItem` costs its item, its strings (key, body,
event id), its timestamp object and its places in the timeline's list and
index: several hundred bytes. A room's items packed (`PackedItems`) cost
their text as UTF-8 in one shared buffer, offsets, timestamps in an array
and one small index per item into a table of what items share (sender, name,
kind, details, version): the text plus about a dozen bytes.

A `Timeline` (it is a `Packable`) is packed by `settle_packing`, which the
model calls only between events (never inside a timeline's own work): the
timelines used least recently beyond `UNPACKED_LIMIT` are packed, except
those kept (the room shown). A packed timeline unpacks itself the moment
anything reads or changes its items, so every reader sees it as before; the
events stay in memory either way (nothing is read from disk again).
"""

from __future__ import annotations

import sys
import weakref
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

from tuichat.model.items import MESSAGE_KINDS, TimelineItem
from tuichat.model.polls import PollBook

# How many timelines stay unpacked, those kept (the room shown) among them:
# rooms just opened, rooms receiving events, their threads.
UNPACKED_LIMIT = 8

# How an item's event id relates to its key.
_ID_IS_KEY, _NO_ID, _OTHER_ID = 0, 1, 2

_put = object.__setattr__
_new_item = TimelineItem.__new__


def _utf8(text: str) -> bytes:
    # Lone surrogates (they do not come out of the sanitiser, but a str may
    # hold them) round-trip too.
    return text.encode("utf-8", "surrogatepass")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class PackedItems(Sequence[TimelineItem]):
    """Items packed: read-only; each read builds an item equal to the one
    packed (sharing its sender, name, kind and details objects)."""

    __slots__ = ("_blob", "_codes", "_count", "_other_ids", "_palette", "_stamp_base")

    # One buffer: the timestamps (after `_stamp_base`), where each key and
    # each body ends in the text, each item's entry in `_palette`, then the
    # text (each item's key then body, UTF-8); `_codes` are the three
    # arrays' type codes (narrow where the values allow).
    _blob: bytes
    _codes: str
    _count: int
    _stamp_base: int
    # (sender, sender name, kind, details, version, how the event id is kept)
    _palette: tuple[tuple[Any, ...], ...]
    _other_ids: dict[int, str] | None  # event ids that are not the item's key

    @classmethod
    def of(cls, items: Iterable[TimelineItem]) -> PackedItems | None:
        """`items` packed; None if one holds a value packing would not give
        back exactly (a timestamp out of 64 bits, a str subclass)."""
        chunks: list[bytes] = []
        ends: list[int] = []
        stamps = array("q")
        styles: list[int] = []
        palette: list[tuple[Any, ...]] = []
        known: dict[tuple[Any, ...], int] = {}
        others: dict[int, str] = {}
        end = 0
        try:
            for number, item in enumerate(items):
                if item.__class__ is not TimelineItem:
                    return None
                key, body, event_id, stamp = item.key, item.body, item.event_id, item.timestamp
                if type(key) is not str or type(body) is not str or type(stamp) is not int:
                    return None
                if event_id is None:
                    how = _NO_ID
                elif event_id == key:
                    how = _ID_IS_KEY
                elif type(event_id) is str:
                    how = _OTHER_ID
                    others[number] = event_id
                else:
                    return None
                sender, name, version = item.sender, item.sender_name, item.version
                if type(sender) is not str or type(name) is not str or type(version) is not int:
                    return None
                kind, details = item.kind, item._details
                # Strings by value, the rest by identity (details may hold
                # unhashable values; equal ones are shared already).
                style = (sender, name, id(kind), id(details), version, how)
                index = known.get(style)
                if index is None:
                    index = known[style] = len(palette)
                    palette.append((sender, name, kind, details, version, how))
                styles.append(index)
                for text in (key, body):
                    data = _utf8(text)
                    end += len(data)
                    ends.append(end)
                    chunks.append(data)
                stamps.append(stamp)
            # Most rooms' loaded events span less than 49 days: 4 bytes each.
            base = min(stamps, default=0)
            try:
                stamp_array = array("I", (stamp - base for stamp in stamps))
            except OverflowError:
                stamp_array, base = stamps, 0
            end_array = array("H" if end < 1 << 16 else "I", ends)
            style_array = array("B" if len(palette) <= 1 << 8 else "I", styles)
        except (OverflowError, UnicodeEncodeError):
            return None
        packed = cls.__new__(cls)
        # Widest first: each array starts aligned for its type.
        packed._blob = b"".join(
            (stamp_array.tobytes(), end_array.tobytes(), style_array.tobytes(), *chunks)
        )
        packed._codes = sys.intern(stamp_array.typecode + end_array.typecode + style_array.typecode)
        packed._count = len(stamps)
        packed._stamp_base = base
        packed._palette = _shared_palette(known, palette)
        packed._other_ids = others or None
        return packed

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> TimelineItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[TimelineItem]: ...

    def __getitem__(self, index: int | slice) -> TimelineItem | list[TimelineItem]:
        if isinstance(index, slice):
            return self._items(range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("packed item index out of range")
        return self._items(range(index, index + 1))[0]

    def __iter__(self) -> Iterator[TimelineItem]:
        return iter(self.unpack())

    def unpack(self) -> list[TimelineItem]:
        return self._items(range(self._count))

    def _items(self, numbers: range) -> list[TimelineItem]:
        blob, count, codes = self._blob, self._count, self._codes
        view = memoryview(blob)
        stamps_end = count * array(codes[0]).itemsize
        ends_end = stamps_end + 2 * count * array(codes[1]).itemsize
        text_start = ends_end + count * array(codes[2]).itemsize
        with (
            view[:stamps_end].cast(codes[0]) as stamps,
            view[stamps_end:ends_end].cast(codes[1]) as ends,
            view[ends_end:text_start].cast(codes[2]) as styles,
        ):
            base, palette, others = self._stamp_base, self._palette, self._other_ids
            made = []
            for number in numbers:
                start = text_start + (ends[2 * number - 1] if number else 0)
                middle, end = text_start + ends[2 * number], text_start + ends[2 * number + 1]
                key = _text(blob[start:middle])
                sender, name, kind, details, version, how = palette[styles[number]]
                if how == _ID_IS_KEY:
                    event_id: str | None = key
                elif how == _NO_ID:
                    event_id = None
                else:
                    assert others is not None
                    event_id = others[number]
                item = _new_item(TimelineItem)
                _put(item, "key", key)
                _put(item, "sender", sender)
                _put(item, "sender_name", name)
                _put(item, "timestamp", base + stamps[number])
                _put(item, "kind", kind)
                _put(item, "body", _text(blob[middle:end]))
                _put(item, "event_id", event_id)
                _put(item, "version", version)
                _put(item, "_details", details)
                made.append(item)
        view.release()
        return made

    def index_of(self, key: str) -> int | None:
        """The position of the item with this key (as `Timeline.index_of`
        for remote items), without unpacking."""
        wanted = _utf8(key)
        blob, count, codes = self._blob, self._count, self._codes
        stamps_end = count * array(codes[0]).itemsize
        ends_end = stamps_end + 2 * count * array(codes[1]).itemsize
        text_start = ends_end + count * array(codes[2]).itemsize
        with memoryview(blob)[stamps_end:ends_end].cast(codes[1]) as ends:
            for number in range(count - 1, -1, -1):
                start = text_start + (ends[2 * number - 1] if number else 0)
                if blob[start : text_start + ends[2 * number]] == wanted:
                    return number
        return None

    def timestamp(self, number: int) -> int:
        stamps_end = self._count * array(self._codes[0]).itemsize
        with memoryview(self._blob)[:stamps_end].cast(self._codes[0]) as stamps:
            return self._stamp_base + stamps[number]

    def unread_counts(self, read_marker: str | None, own_user_id: str) -> tuple[int, int]:
        """What `Timeline.unread_counts` counts (messages from others after
        the read marker, and highlights among them), without unpacking."""
        start = 0
        if read_marker is not None:
            marker = self.index_of(read_marker)
            start = 0 if marker is None else marker + 1
        count, codes, palette = self._count, self._codes, self._palette
        stamps_end = count * array(codes[0]).itemsize
        ends_end = stamps_end + 2 * count * array(codes[1]).itemsize
        styles_end = ends_end + count * array(codes[2]).itemsize
        unread = highlight = 0
        with memoryview(self._blob)[ends_end:styles_end].cast(codes[2]) as styles:
            for number in range(start, count):
                sender, _name, kind, details, _version, _how = palette[styles[number]]
                if sender == own_user_id:
                    continue
                notify = details.notify
                if not (notify if notify is not None else kind in MESSAGE_KINDS):
                    continue
                unread += 1
                if details.highlight:
                    highlight += 1
        return unread, highlight

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedItems):
            return NotImplemented
        return (
            self._blob == other._blob
            and self._codes == other._codes
            and self._stamp_base == other._stamp_base
            and self._other_ids == other._other_ids
            and len(self._palette) == len(other._palette)
            and all(
                a[0] == b[0] and a[1] == b[1] and a[2] is b[2] and a[3] is b[3] and a[4:] == b[4:]
                for a, b in zip(self._palette, other._palette, strict=True)
            )
        )

    __hash__ = None  # type: ignore[assignment]


# Palettes shared between rooms (a sender seen in many rooms, with the
# same details): a bounded table, emptied when full.
_SHARED_PALETTES: dict[tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...]] = {}
_SHARED_LIMIT = 4096


def _shared_palette(
    known: dict[tuple[Any, ...], int], palette: list[tuple[Any, ...]]
) -> tuple[tuple[Any, ...], ...]:
    # Keyed as entries were found (by identity for kinds and details),
    # each entry holding the objects whose ids the key names.
    key = tuple(known)
    found = _SHARED_PALETTES.get(key)
    if found is None:
        if len(_SHARED_PALETTES) >= _SHARED_LIMIT:
            _SHARED_PALETTES.clear()
        found = _SHARED_PALETTES[key] = tuple(palette)
    return found


# Containers a timeline may drop while packed, when empty: they come back
# empty the moment they are read. (None of them is shared with another
# object, so a new empty one is the same as the old.)
_EMPTY_WHEN_PACKED: dict[str, type] = {
    name: dict
    for name in (
        "_edits",
        "_latest",
        "_edit_target",
        "_reactions",
        "_reaction_target",
        "_reaction_counts",
        "_base",
        "_replies",
        "_context",
        "_anchor",
        "_receipts",
        "_readers",
        # RoomTimeline (threads)
        "threads",
        "_thread_of",
        "_echo_thread",
    )
} | {"_redacted": set, "_echoes": list, "polls": PollBook}


class Packable:
    """What a timeline needs to be packed: its remote items (`_remote`, in
    order) and their index (`_seq`: key -> `_first_seq` + position) are
    replaced by packed items and made again when first read. (Attributes are
    read and deleted one by one: asking for `__dict__` would give every
    timeline a dictionary object of its own.)"""

    _remote: list[TimelineItem]
    _seq: dict[str, int]
    _first_seq: int
    # (packed items or None, what the cache read or None): one attribute,
    # as an instance's first 30 are kept without a dictionary of their own.
    _packing: tuple[PackedItems | None, PackedItems | None]

    def _track(self) -> None:
        """Called once by the timeline's constructor: it counts as used."""
        self._packing = _NOT_PACKED
        _used(self)

    def note_origin(self, items: Sequence[TimelineItem]) -> None:
        """These items (packed, as the cache read them) are what the
        timeline holds: packed unchanged, it shares them."""
        if isinstance(items, PackedItems):
            self._packing = (self._packing[0], items)

    @property
    def is_packed(self) -> bool:
        return self._packing[0] is not None

    @property
    def packed_items(self) -> PackedItems | None:
        """The packed items, while packed (read them without unpacking)."""
        return self._packing[0]

    def holds(self, name: str) -> bool:
        """Whether the attribute is set (without making again a container
        packing took away)."""
        try:
            _get(self, name)
        except AttributeError:
            return False
        return True

    def pack(self) -> bool:
        """Pack the remote items (True if packed, or packed already)."""
        packed, origin = self._packing
        if packed is not None:
            return True
        packed = PackedItems.of(self._remote)
        if packed is None:
            return False
        if origin is not None and origin == packed:
            packed = origin
        self._packing = (packed, origin)
        del self._remote, self._seq
        dropped = _DROPPED.setdefault(type(self), set())
        for name, make in _EMPTY_WHEN_PACKED.items():
            try:
                value = _get(self, name)
            except AttributeError:
                continue
            if type(value) is make and not value:
                delattr(self, name)
                dropped.add(name)
        _unpacked.pop(id(self), None)
        return True

    def _unpack(self, packed: PackedItems) -> None:
        self._packing = (None, self._packing[1]) if self._packing[1] else _NOT_PACKED
        remote = packed.unpack()
        first = self._first_seq
        self._seq = {item.key: first + n for n, item in enumerate(remote)}
        self._remote = remote
        _used(self)

    def __getattr__(self, name: str) -> Any:
        # Only for attributes not set: those packing took away.
        if name == "_remote" or name == "_seq":
            packed = self._packing[0]
            if packed is not None:
                self._unpack(packed)
                return _get(self, name)
        else:
            make = _EMPTY_WHEN_PACKED.get(name)
            if make is not None and name in _DROPPED.get(type(self), ()):
                value = make()
                setattr(self, name, value)
                return value
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


_get = object.__getattribute__
# By class: the containers packing took from its timelines (only those are
# made again when read: a class without one still has none).
_DROPPED: dict[type, set[str]] = {}
_NOT_PACKED: tuple[None, None] = (None, None)


# Unpacked timelines, least recently used first.
_unpacked: dict[int, weakref.ref[Packable]] = {}


def _used(timeline: Packable) -> None:
    key = id(timeline)
    _unpacked.pop(key, None)
    _unpacked[key] = weakref.ref(timeline, lambda _ref, key=key: _forget(key, _ref))


def _forget(key: int, ref: weakref.ref[Packable]) -> None:
    if _unpacked.get(key) is ref:
        del _unpacked[key]


def settle_packing(keep: Iterable[Packable | None] = (), limit: int | None = None) -> int:
    """Pack the timelines used least recently beyond `limit` (those in
    `keep` count among them, as used now, and are never packed). Call only
    between changes, never from inside a timeline's own method. Returns how
    many were packed."""
    kept = {id(timeline): timeline for timeline in keep if timeline is not None}
    for timeline in kept.values():
        if not timeline.is_packed:
            _used(timeline)
    excess = len(_unpacked) - (UNPACKED_LIMIT if limit is None else limit)
    packed = 0
    for key in list(_unpacked):
        if excess <= 0:
            break
        if key in kept:
            continue
        excess -= 1
        ref = _unpacked.pop(key)
        timeline = ref()
        if timeline is not None and timeline.pack():
            packed += 1
    return packed
