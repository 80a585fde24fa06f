"""The encrypted search index on its own (issue 24): what it finds, how
edits and redactions change that, and that its files hold no text."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from tuichat.matrix.storage.search_index import (
    HAS_IMAGE,
    SUFFIXES,
    IndexedEdit,
    IndexedMessage,
    IndexFilter,
    SearchIndex,
)
from tuichat.model.search_query import match_expression, parse_query

ROOM = "!room:example.org"


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _message(
    event_id: str, text: str, ts: int, sender: str = "@bob:x", kinds: int = 0
) -> IndexedMessage:
    return IndexedMessage(ROOM, event_id, sender, "Bob", ts, text, kinds)


def _found(index: SearchIndex, text: str, where: IndexFilter | None = None) -> list[str]:
    query = parse_query(text)
    return [hit.event_id for hit in index.search(match_expression(query), where or IndexFilter())]


def test_prefix_case_and_accents_newest_first(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "search.db", _key())
    index.write(
        [
            _message("$1", "Crème brûlée tonight", 1),
            _message("$2", "the CREMATORIUM", 2),
            _message("$3", "Ελληνικά γράμματα", 3),
        ]
    )
    assert _found(index, "creme") == ["$1"]
    assert _found(index, "crem") == ["$2", "$1"]
    assert _found(index, "ελλην") == ["$3"]
    assert _found(index, '"brulee tonight"') == ["$1"]
    assert _found(index, '"tonight brulee"') == []


def test_filters(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "search.db", _key())
    index.write(
        [
            _message("$1", "cat picture", 1000, kinds=HAS_IMAGE),
            _message("$2", "cat text", 2000, sender="@carol:x"),
        ]
    )
    assert _found(index, "cat", IndexFilter(senders=frozenset({"@carol:x"}))) == ["$2"]
    assert _found(index, "cat", IndexFilter(kinds=HAS_IMAGE)) == ["$1"]
    assert _found(index, "cat", IndexFilter(before_ms=2000)) == ["$1"]
    assert _found(index, "cat", IndexFilter(after_ms=2000)) == ["$2"]
    assert _found(index, "cat", IndexFilter(rooms=frozenset({"!other:x"}))) == []


def test_edits_replace_and_redactions_remove_in_any_order(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path / "search.db", _key())
    # The edit first (a history page arrives newest first), then its original.
    index.write(edits=[IndexedEdit(ROOM, "$e1", "$1", "@bob:x", 5, "newer words", 0)])
    index.write([_message("$1", "older words", 1)])
    assert _found(index, "newer") == ["$1"]
    assert _found(index, "older") == []
    # An edit by someone else does not count.
    index.write(edits=[IndexedEdit(ROOM, "$e2", "$1", "@mallory:x", 9, "forged", 0)])
    assert _found(index, "forged") == []
    # The edit taken back: the original's words again.
    index.write(redactions=[(ROOM, "$e1")])
    assert _found(index, "older") == ["$1"]
    index.write(redactions=[(ROOM, "$1")])
    assert _found(index, "older") == []
    # A copy read again later (an older page) is not indexed again.
    index.write([_message("$1", "older words", 1)])
    assert _found(index, "older") == []


def test_no_word_on_disk_and_another_key_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    key = _key()
    index = SearchIndex(path, key)
    index.write([_message(f"${n}", f"zebra{n} quokka marmot", n) for n in range(200)])
    index.set_meta("history_done", ROOM)
    for suffix in SUFFIXES:
        part = path.with_name(path.name + suffix)
        if part.exists():
            data = part.read_bytes()
            assert b"quokka" not in data and b"zebra" not in data, part
            assert b"SQLite format" not in data
    index.close()

    again = SearchIndex(path, key)
    assert not again.rebuilt and _found(again, "quokka")
    again.close()

    other = SearchIndex(path, _key())
    assert other.rebuilt
    assert other.count() == 0 and other.meta("history_done") is None
    other.write([_message("$new", "fresh start", 1)])
    assert _found(other, "fresh") == ["$new"]


def test_logout_removes_the_index_and_its_log(tmp_path: Path) -> None:
    from tuichat.matrix.account.session import Profile

    profile = Profile(tmp_path / "profile")
    profile.ensure()
    index = SearchIndex(profile.search_file, _key())
    index.write([_message("$1", "gone after logout", 1)])
    assert profile.search_file.exists()
    assert profile.search_file.with_name(profile.search_file.name + "-wal").exists()
    index.close()
    profile.remove_session()
    assert not [p for p in profile.root.iterdir() if p.name.startswith("search")]
