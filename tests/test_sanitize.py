"""Remote text never reaches the terminal as control sequences or markup."""

from __future__ import annotations

import pytest

from tuichat.model.sanitize import clean_line, clean_text

HOSTILE = [
    "\x1b[31mred\x1b[0m",
    "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
    "\x1b]52;c;ZXZpbA==\x07",
    "bell\x07",
    "c1 \x9b31m",
    "back\bspace\rreturn",
    "rtl \u202eevil\u202c \u2066iso\u2069",
    "lone \ud800 surrogate",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_no_control_characters_survive(text: str) -> None:
    for cleaned in (clean_text(text), clean_line(text)):
        assert not any(ord(c) < 0x20 and c != "\n" for c in cleaned), repr(cleaned)
        assert not any(0x7F <= ord(c) <= 0x9F for c in cleaned), repr(cleaned)
        assert not any(
            c in cleaned for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        )
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in cleaned)
        cleaned.encode("utf-8")  # terminal-safe


def test_escape_is_shown_visibly() -> None:
    assert clean_text("\x1b[31m") == "\u241b[31m"


def test_newlines_are_kept_in_bodies_but_not_in_names() -> None:
    assert clean_text("a\nb") == "a\nb"
    assert clean_line("a\nb") == "a b"


def test_markup_is_left_as_literal_text() -> None:
    assert clean_text("[@click=app.quit]x[/]") == "[@click=app.quit]x[/]"


def test_non_strings_become_empty() -> None:
    assert clean_text(None) == "" and clean_line(42) == ""
