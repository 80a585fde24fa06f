"""Search queries parsed without a terminal or a database (issue 24)."""

from __future__ import annotations

from datetime import datetime

import pytest

from tuichat.model.search_query import (
    QueryError,
    fold,
    match_expression,
    matched_spans,
    parse_query,
)


def test_words_filters_and_phrases() -> None:
    query = parse_query(
        'Crème "the Big Plan" from:@bob:example.org in:#ops:example.org has:image '
        "after:2024-01-02 before:2024-02-01 --all"
    )
    assert query.words == ("creme",)
    assert query.phrases == (("the", "big", "plan"),)
    assert query.senders == ("@bob:example.org",)
    assert query.rooms == ("#ops:example.org",)
    assert query.has == frozenset({"image"})
    assert query.after_ms == int(datetime(2024, 1, 2).timestamp() * 1000)
    assert query.before_ms == int(datetime(2024, 2, 1).timestamp() * 1000)
    assert query.all_rooms
    assert match_expression(query) == '"creme"* AND "the big plan"'


def test_filters_alone_are_a_query_but_nothing_is_not() -> None:
    assert parse_query("has:file").has == frozenset({"file"})
    assert not parse_query("has:file").has_text
    with pytest.raises(QueryError):
        parse_query("   ")
    with pytest.raises(QueryError):
        parse_query("--all")


@pytest.mark.parametrize(
    "text",
    ["has:video", "from:bob", "before:yesterday", "after:2024-13-01"],
)
def test_unreadable_filters_are_told(text: str) -> None:
    with pytest.raises(QueryError):
        parse_query(text)


def test_quotes_in_words_cannot_break_the_fts_expression() -> None:
    query = parse_query('say"hi OR x')
    expression = match_expression(query)
    # Each word is one quoted token: FTS5 operators typed stay words.
    assert expression == '"say"* AND "hi"* AND "or"* AND "x"*'


def test_folding_is_unicode_not_only_ascii() -> None:
    assert fold("ÉCOLE Ærø Straße Ελληνικά") == "ecole ærø straße ελληνικα"


def test_spans_cover_prefix_matches_and_phrases_in_the_original_text() -> None:
    text = "Crème brûlée at the Café, then the big plan."
    query = parse_query('cre caf "big plan"')
    spans = [text[s:e] for s, e in matched_spans(text, query)]
    assert spans == ["Crème", "Café", "big plan"]


def test_spans_of_a_word_that_is_not_there_are_empty() -> None:
    assert matched_spans("nothing here", parse_query("absent")) == []
