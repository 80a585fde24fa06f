"""Message search queries: what `/search` (and Ctrl+F) was typed as, parsed.

`parse_query` turns the typed text into a `SearchQuery`: words (each a
prefix), "quoted phrases", and filters: `from:@user`, `in:#room` (or a
room id or a word of the room's name), `has:file|image|link`,
`before:DATE` and `after:DATE` (YYYY-MM-DD, local time; `after` includes
the day, `before` does not), and `--all` for every room. `match_expression`
writes the words and phrases as an SQLite FTS5 query; `fold` and
`matched_spans` give the same case- and accent-blind matching for
highlighting a result as the index uses for finding it.

Plain Python: no SQLite, no Textual.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

HAS_CHOICES = ("file", "image", "link")

# Words as the index's tokenizer (unicode61) sees them: letters and digits;
# everything else separates.
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_DATE = "YYYY-MM-DD"


class QueryError(ValueError):
    """The text is not a query: the message says what is wrong."""


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...] = ()  # each matches words starting with it
    phrases: tuple[tuple[str, ...], ...] = ()  # words in this order, together
    senders: tuple[str, ...] = ()  # from:@user (any of them)
    rooms: tuple[str, ...] = ()  # in:#alias, in:!id or in:word (any of them)
    has: frozenset[str] = frozenset()  # "file", "image", "link" (all of them)
    before_ms: int | None = None  # sent before this moment
    after_ms: int | None = None  # sent at or after this moment
    all_rooms: bool = False  # --all: every room, not only the current one

    @property
    def has_text(self) -> bool:
        """Whether there is something to match in the text (else filters only)."""
        return bool(self.words or self.phrases)

    @property
    def is_empty(self) -> bool:
        return not (
            self.has_text
            or self.senders
            or self.rooms
            or self.has
            or self.before_ms is not None
            or self.after_ms is not None
        )

    def server_terms(self) -> str:
        """The words and phrases as one search term for the server's /search."""
        return " ".join([*self.words, *(" ".join(p) for p in self.phrases)])


def fold(text: str) -> str:
    """Case and accents gone, as the index's tokenizer folds them
    ("Crème" -> "creme")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _words(text: str) -> list[str]:
    return [fold(word) for word in _WORD.findall(text)]


def _date(value: str, name: str) -> int:
    try:
        moment = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise QueryError(f"{name}: takes a date, {_DATE} (got {value!r})") from None
    return int(moment.timestamp() * 1000)


def parse_query(text: str) -> SearchQuery:
    """The query typed; raises QueryError for a filter it cannot read or a
    query with nothing to look for."""
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    senders: list[str] = []
    rooms: list[str] = []
    has: set[str] = set()
    before: int | None = None
    after: int | None = None
    all_rooms = False
    for match in _TOKEN.finditer(text):
        quoted, token = match.group(1), match.group(2)
        if quoted is not None:
            phrase = tuple(_words(quoted))
            if len(phrase) == 1:
                words.append(phrase[0])
            elif phrase:
                phrases.append(phrase)
            continue
        name, colon, value = token.partition(":")
        key = name.lower()
        if token in ("--all", "-a"):
            all_rooms = True
        elif colon and key == "from" and value:
            if not value.startswith("@") or ":" not in value:
                raise QueryError(f"from: takes a user id, @name:server (got {value!r})")
            senders.append(value)
        elif colon and key == "in" and value:
            rooms.append(value)
        elif colon and key == "has" and value:
            if value.lower() not in HAS_CHOICES:
                raise QueryError(f"has: takes {'|'.join(HAS_CHOICES)} (got {value!r})")
            has.add(value.lower())
        elif colon and key == "before" and value:
            before = _date(value, "before")
        elif colon and key == "after" and value:
            after = _date(value, "after")
        else:
            words.extend(_words(token))
    query = SearchQuery(
        words=tuple(dict.fromkeys(words)),
        phrases=tuple(dict.fromkeys(phrases)),
        senders=tuple(dict.fromkeys(senders)),
        rooms=tuple(dict.fromkeys(rooms)),
        has=frozenset(has),
        before_ms=before,
        after_ms=after,
        all_rooms=all_rooms,
    )
    if query.is_empty:
        raise QueryError("nothing to look for: type words, a quoted phrase or a filter")
    return query


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def match_expression(query: SearchQuery) -> str:
    """The words (each as a prefix) and phrases, all required, as an FTS5
    query; "" when the query has no text."""
    parts = [f"{_quoted(word)}*" for word in query.words]
    parts += [_quoted(" ".join(phrase)) for phrase in query.phrases]
    return " AND ".join(parts)


def _folded_with_positions(text: str) -> tuple[str, list[int]]:
    """`text` folded, and for each folded character the index of the
    character of `text` it came from."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = fold(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), origin


def matched_spans(text: str, query: SearchQuery) -> list[tuple[int, int]]:
    """Where in `text` the query's words match ((start, end), in order, not
    overlapping): each word from a word's start to that word's end, each
    phrase from its first word to its last."""
    folded, origin = _folded_with_positions(text)
    found = [(m.start(), m.end()) for m in _WORD.finditer(folded)]
    spans: list[tuple[int, int]] = []
    for start, end in found:
        if any(folded.startswith(word, start) for word in query.words):
            spans.append((start, end))
    for phrase in query.phrases:
        for index in range(len(found) - len(phrase) + 1):
            window = found[index : index + len(phrase)]
            if all(folded[s:e] == w for (s, e), w in zip(window, phrase, strict=True)):
                spans.append((window[0][0], window[-1][1]))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    # Back to positions in the text as given.
    return [(origin[s], origin[e - 1] + 1) for s, e in merged]


def has_link(text: str) -> bool:
    return bool(re.search(r"https?://\S", text))


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One message found: where, who, when, and its text (remote text:
    cleaned through `sanitize` before it is drawn)."""

    room_id: str
    event_id: str
    sender: str
    sender_name: str
    timestamp: int  # milliseconds since the epoch
    text: str
    encrypted: bool  # found in the local index (else by the server)


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """Where the next page of a search starts, in each source."""

    local_offset: int = 0
    local_done: bool = False
    server_batch: str | None = None
    server_done: bool = False

    @property
    def done(self) -> bool:
        return self.local_done and self.server_done


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results, newest first, and where the next one starts
    (None: there is no more)."""

    hits: tuple[SearchHit, ...]
    next: SearchCursor | None = None
    note: str = ""  # what could not be searched, told beside the results


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """How far the index of existing history has come."""

    rooms_done: int = 0
    rooms_total: int = 0
    messages: int = 0  # indexed so far by this build
    running: bool = False

    def text(self) -> str:
        if not self.running:
            return ""
        return (
            f"indexing history: room {self.rooms_done}/{self.rooms_total}, {self.messages} messages"
        )
