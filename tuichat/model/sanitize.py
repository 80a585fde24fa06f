"""The one sanitiser every remote string passes through before display.

Remote text is hostile. Bodies, display names, room names and topics may carry
terminal control sequences (ESC, CSI, OSC 8 links, OSC 52 clipboard writes),
C1 controls, bell characters or Unicode bidi overrides that reorder what the
reader sees. Textual's `Content` only strips a handful of these, so tuichat
makes every such character *visible* (control pictures such as ``␛``) or
removes it (bidi controls), before the text reaches the model.

Markup is a separate concern: the UI never parses remote strings as Textual or
Rich markup; it places them as `rich.text.Text`/`Content` objects. This module
therefore leaves ``[`` and ``]`` alone.
"""

from __future__ import annotations

import re
from typing import LiteralString

# Bidi embeddings/overrides/isolates and marks: they reorder or disguise text.
_BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# C0 controls get their Unicode "control picture" (U+2400 + code), DEL gets ␡.
_C0_PICTURES = {code: chr(0x2400 + code) for code in range(0x20)}
_C0_PICTURES[0x7F] = "\u2421"

_MULTILINE_TABLE: dict[int, str | None] = {}
_MULTILINE_TABLE.update(_C0_PICTURES)
_MULTILINE_TABLE.update({ord(ch): None for ch in _BIDI_CONTROLS})
# C1 controls (0x80-0x9F) have no pictures; show their code point.
_MULTILINE_TABLE.update({code: f"\u27e8{code:02X}\u27e9" for code in range(0x80, 0xA0)})
# Line and paragraph separators act like newlines in some terminals.
_MULTILINE_TABLE[0x2028] = "\n"
_MULTILINE_TABLE[0x2029] = "\n"
_MULTILINE_TABLE[ord("\n")] = "\n"
_MULTILINE_TABLE[ord("\t")] = "    "
# A lone CR would move the cursor to the start of the line.
_MULTILINE_TABLE[ord("\r")] = None

_SINGLE_LINE_TABLE = dict(_MULTILINE_TABLE)
_SINGLE_LINE_TABLE[ord("\n")] = " "
_SINGLE_LINE_TABLE[0x2028] = " "
_SINGLE_LINE_TABLE[0x2029] = " "
_SINGLE_LINE_TABLE[ord("\t")] = " "

_SURROGATES = re.compile("[\ud800-\udfff]")

# Anything either table changes, or a surrogate: text without any (nearly
# every message) is returned as it is, without a per-character translation.
_OTHER_SPECIAL = "\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff" + _BIDI_CONTROLS
_NEEDS_LINE_CLEANING = re.compile(f"[\\x00-\\x1f{_OTHER_SPECIAL}]")
# Newlines are kept as they are in multi-line text.
_NEEDS_TEXT_CLEANING = re.compile(f"[\\x00-\\x09\\x0b-\\x1f{_OTHER_SPECIAL}]")


def _fix_surrogates(text: str) -> str:
    # Lone surrogates (e.g. from "\ud800" escapes in JSON) cannot be encoded
    # for the terminal; replace them with U+FFFD.
    return _SURROGATES.sub("\ufffd", text)


def clean_text(value: object, *, max_length: int = 65536) -> str:
    """Sanitise multi-line remote text such as a message body.

    Non-strings become ``""``. Newlines are kept; every other control
    character is made visible; bidi controls are removed.
    """
    if not isinstance(value, str):
        return ""
    if len(value) > max_length:
        value = value[:max_length] + "\u2026"
    if _NEEDS_TEXT_CLEANING.search(value) is None:
        return value
    return _fix_surrogates(value).translate(_MULTILINE_TABLE)


def clean_line(value: object, *, max_length: int = 512) -> str:
    """Sanitise single-line remote text: names, topics, aliases."""
    if not isinstance(value, str):
        return ""
    if len(value) > max_length:
        value = value[:max_length] + "\u2026"
    if _NEEDS_LINE_CLEANING.search(value) is None:
        return value.strip()
    return _fix_surrogates(value).translate(_SINGLE_LINE_TABLE).strip()


class SafeText(str):
    """Text fit to draw: what every widget and every line the CLI prints takes.

    Made only by `safe_line`, `safe_text` (the sanitiser) and `trusted`
    (tuichat's own literal strings); nothing else in tuichat calls
    ``SafeText(...)`` (tests/test_safe_drawing.py checks it). Operations on it
    (``+``, f-strings, ``%``) give a plain ``str`` again, which must go
    through `safe_line`/`safe_text` before it is drawn: a raw ``str`` from the
    network cannot reach the terminal by being mixed into one.
    """

    __slots__ = ()


def safe_line(value: object, *, max_length: int = 512) -> SafeText:
    """`clean_line` at the boundary that draws: one line, fit to draw."""
    return SafeText(clean_line(value, max_length=max_length))


def safe_text(value: object, *, max_length: int = 65536 + 1) -> SafeText:
    """`clean_text` at the boundary that draws: newlines kept, fit to draw.
    (One more than `clean_text`'s limit: a body it already cut, ``…``
    included, is not cut again.)"""
    return SafeText(clean_text(value, max_length=max_length))


def trusted(text: LiteralString) -> SafeText:
    """tuichat's own literal text, drawn as it is (never remote data: the
    drawing test allows only a string literal here)."""
    return SafeText(text)
