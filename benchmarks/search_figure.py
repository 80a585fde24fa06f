"""The `search` figure (issue 24): query latency of the encrypted search
index (SQLCipher + FTS5) at 100,000 messages, against the same queries on a
plain (unencrypted) SQLite FTS5 file holding the same rows with the same
schema and settings, opened with the same SQLite library (sqlcipher3, no
key): the ratio is what encryption at rest costs. Target: at most 1.5, and
every query under 100 ms. Python's own sqlite3 (another SQLite version and
build) runs the same queries too, reported beside it (`ratio_to_stdlib`)."""

from __future__ import annotations

import base64
import random
import re
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import sqlcipher3

from tuichat.matrix.storage.search_index import (
    SCHEMA,
    IndexedMessage,
    IndexFilter,
    SearchIndex,
    page_text,
    row_base,
    search_sql,
)
from tuichat.model.search_query import match_expression, parse_query

MESSAGES = 100_000
ROOMS = 20
VOCABULARY = 20_000
ROUNDS = 15  # each query, alternately on both files; the median counts

SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "ta",
    "ne",
    "su",
    "lo",
    "vi",
    "da",
    "pe",
    "ri",
    "go",
    "ba",
    "tu",
    "fe",
    "sa",
    "no",
    "li",
    "ma",
    "de",
    "ki",
    "po",
    "ru",
    "ze",
    "ha",
    "jo",
    "wa",
    "te",
    "bi",
    "cu",
    "ge",
    "la",
    "mo",
    "ni",
    "ve",
    "ya",
    "zu",
]
# Typed as people type, by the rank of the word in the vocabulary (0: the
# commonest): whole words, prefixes of 2 to 4 letters, two words, a
# phrase, filters. "{n}" is word n, "{n:3}" its first 3 letters.
QUERIES = (
    "{5}",
    "{40:3}",
    "{200:2}",
    "{1000:4}",
    "{10} {30}",
    '"{0} {1}"',
    "{50} in:room",
    "{20} from:@user3:example.org",
    "{100} after:2023-11-20",
    "{5000}",
)


def _vocabulary(rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4)))] = None
    return list(words)


def _query_text(template: str, words: list[str]) -> str:
    def word(match: re.Match[str]) -> str:
        text = words[int(match.group(1))]
        return text[: int(match.group(2))] if match.group(2) else text

    return re.sub(r"\{(\d+)(?::(\d+))?\}", word, template)


def _messages() -> list[IndexedMessage]:
    """Words drawn Zipf-like (a few common, most rare), 4 to 20 per message."""
    rng = random.Random(24)
    weights = [1 / (rank + 1) for rank in range(VOCABULARY)]
    words = _vocabulary(random.Random(24))
    start = 1_700_000_000_000
    messages = []
    for number in range(MESSAGES):
        text = " ".join(rng.choices(words, weights, k=rng.randint(4, 20)))
        sender = f"@user{number % 50}:example.org"
        messages.append(
            IndexedMessage(
                f"!room{number % ROOMS}:example.org",
                f"$event{number}",
                sender,
                f"User {number % 50}",
                start + number * 60_000,
                text,
            )
        )
    return messages


def _plain(path: Path, messages: list[IndexedMessage], library: Any) -> Any:
    """The same rows, schema and settings in an unencrypted file, opened
    with `library` (Python's sqlite3, or sqlcipher3 without a key)."""
    db = library.connect(str(path), isolation_level=None)
    for pragma in (
        "PRAGMA temp_store = MEMORY",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA cache_size = -32000",
    ):
        db.execute(pragma)
    db.executescript(SCHEMA)
    db.execute("BEGIN")
    for m in messages:
        rowid = row_base(m.timestamp)  # as the index numbers them (distinct stamps here)
        db.execute(
            "INSERT INTO messages (id, room_id, event_id, sender, sender_name, ts, kinds, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (rowid, m.room_id, m.event_id, m.sender, m.sender_name, m.timestamp, m.kinds, m.text),
        )
        db.execute("INSERT INTO text (rowid, body) VALUES (?, ?)", (rowid, m.text))
    db.execute("COMMIT")
    db.execute("INSERT INTO text (text) VALUES ('optimize')")
    return db


def _statements() -> list[tuple[str, list[Any]]]:
    words = _vocabulary(random.Random(24))
    statements = []
    for template in QUERIES:
        query = parse_query(_query_text(template, words))
        where = IndexFilter(
            # in:room stands for one of the rooms, as the service resolves it
            rooms=frozenset({"!room4:example.org"}) if query.rooms else None,
            senders=frozenset(query.senders),
            after_ms=query.after_ms,
        )
        statements.append(search_sql(match_expression(query), where, limit=30))
    return statements


def search_latency(tmp: Path) -> dict[str, Any]:
    from benchmarks.run import figure

    messages = _messages()
    key = base64.b64encode(bytes(range(32))).decode()
    index = SearchIndex(tmp / "search.sqlite3", key)
    for start in range(0, len(messages), 5000):
        index.write(messages[start : start + 5000])
    index.optimize()
    encrypted = index._db
    files = {
        "encrypted": encrypted,
        "plain": _plain(tmp / "plain.sqlite3", messages, sqlcipher3),
        "stdlib": _plain(tmp / "stdlib.sqlite3", messages, sqlite3),
    }
    statements = _statements()
    for db in files.values():  # warm the page caches once
        for sql, params in statements:
            db.execute(sql, params).fetchall()
    times: dict[str, list[list[float]]] = {name: [[] for _ in statements] for name in files}
    hits = 0
    for _round in range(ROUNDS):
        for number, (sql, params) in enumerate(statements):
            for name, db in files.items():
                started = time.perf_counter()
                rows = db.execute(sql, params).fetchall()
                page_text(db, [row[0] for row in rows])
                times[name][number].append(time.perf_counter() - started)
                hits += len(rows) if name == "plain" else 0
    # Each query's median over the rounds (the machine is shared: a slow
    # moment falls on one round, not on the figure).
    median = {name: [statistics.median(t) for t in each] for name, each in times.items()}
    worst = {name: max(max(t) for t in each) for name, each in times.items()}
    ratio = sum(median["encrypted"]) / sum(median["plain"])
    index.close()
    files["plain"].close()
    files["stdlib"].close()
    result = figure(
        ratio,
        1.5,
        True,
        messages=MESSAGES,
        queries=len(QUERIES),
        encrypted_total_ms=round(sum(median["encrypted"]) * 1000, 2),
        plain_total_ms=round(sum(median["plain"]) * 1000, 2),
        encrypted_worst_ms=round(worst["encrypted"] * 1000, 2),
        plain_worst_ms=round(worst["plain"] * 1000, 2),
        hits_per_round=hits // ROUNDS,
        encrypted_ms_by_query=[round(t * 1000, 2) for t in median["encrypted"]],
        plain_ms_by_query=[round(t * 1000, 2) for t in median["plain"]],
        # Python's own sqlite3 (an older SQLite, another build): the same
        # queries on the same rows; most of the difference is the library.
        stdlib_total_ms=round(sum(median["stdlib"]) * 1000, 2),
        ratio_to_stdlib=round(sum(median["encrypted"]) / sum(median["stdlib"]), 3),
    )
    result["ok"] = result["ok"] and worst["encrypted"] < 0.1
    return result
