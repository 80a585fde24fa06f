"""Formatted message bodies (`RichBody` blocks) as terminal lines.

Paragraphs become Rich `Text` built span by span (never parsed as markup);
code blocks are highlighted by Pygments (through Rich's `Syntax`) in a box
that keeps their indentation. Every line returned fits `width` cells.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from tuichat.model.rich_body import Block, BlockKind, Mark, RichBody

if TYPE_CHECKING:
    from pygments.lexer import Lexer

# Pygments and Rich's Syntax are imported on the first code block, not at
# start-up (they cost ~10 ms of the first frame otherwise).

QUOTE_BAR = "▌ "
# Deeper quotes and lists are drawn at this depth, so text keeps its room.
MAX_DRAWN_DEPTH = 6
# Languages tried when a code block names none. Pygments' own
# `guess_lexer` tries every lexer it has (a quarter of a second on first
# use) and often picks an exotic one; this short list covers what people
# paste in chats.
GUESSABLE = (
    "python",
    "bash",
    "diff",
    "c",
    "cpp",
    "rust",
    "go",
    "javascript",
    "typescript",
    "java",
    "sql",
    "html",
    "yaml",
    "toml",
)
# Signatures for languages whose Pygments lexer cannot recognise them (its
# `analyse_text` says 0.0 for most): checked in order.
_SIGNATURES = (
    ("python", re.compile(r"^\s*(def \w+\(|class \w+[(:]|from \w+ import |import \w+$)", re.M)),
    ("rust", re.compile(r"\b(fn \w+\(|let mut |impl\b|println!\()")),
    ("go", re.compile(r"^package \w+|\bfunc (\(\w+ \*?\w+\) )?\w+\(", re.M)),
    ("c", re.compile(r"^#include\s*[<\"]", re.M)),
    ("sql", re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE TABLE)\b", re.M | re.I)),
    ("javascript", re.compile(r"\b(const|let|var) \w+ = |=> \{|\bconsole\.log\(|\bfunction \w*\(")),
    ("bash", re.compile(r"^\s*(\$ |sudo |apt |pip |npm |cd |export \w+=)", re.M)),
)
MAX_GUESS = 4000  # characters looked at when guessing


@lru_cache(maxsize=64)
def _lexer_by_name(name: str) -> Lexer | None:
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(name)
    except ClassNotFound:
        return None


def choose_lexer(language: str, code: str) -> Lexer:
    """The lexer for a code block: the named language, or a guess."""
    from pygments.lexers.special import TextLexer

    if language:
        named = _lexer_by_name(language)
        if named is not None:
            return named
    sample = code[:MAX_GUESS]
    best, best_score = None, 0.0
    for name in GUESSABLE:
        lexer = _lexer_by_name(name)
        if lexer is None:
            continue
        score = lexer.analyse_text(sample)
        if score > best_score:
            best, best_score = lexer, score
    if best is not None and best_score >= 0.3:
        return best
    stripped = sample.strip()
    if stripped[:1] in "{[":
        try:
            json.loads(code)
        except ValueError:
            pass
        else:
            return _lexer_by_name("json") or TextLexer()
    for name, pattern in _SIGNATURES:
        if pattern.search(sample):
            return _lexer_by_name(name) or TextLexer()
    return best if best is not None and best_score > 0 else TextLexer()


class BodyStyles:
    """The styles of formatted text, taken from the widget's theme."""

    def __init__(
        self,
        *,
        code: Style,
        link: Style,
        link_target: Style,
        mention: Style,
        quote: Style,
        muted: Style,
        dark: bool = True,
    ) -> None:
        self.code = code
        self.link = link
        self.link_target = link_target
        self.mention = mention
        self.quote = quote
        self.muted = muted
        self.dark = dark

    def for_marks(self, marks: Mark, colour: str | None) -> Style:
        style = Style(
            bold=bool(marks & Mark.BOLD) or None,
            italic=bool(marks & Mark.ITALIC) or None,
            strike=bool(marks & Mark.STRIKE) or None,
            underline=bool(marks & Mark.UNDERLINE) or None,
            color=colour,
        )
        if marks & Mark.CODE:
            style += self.code
        if marks & Mark.LINK:
            style += self.link
        if marks & Mark.LINK_TARGET:
            style = self.link_target
        if marks & Mark.MENTION:
            style += self.mention
        return style


def _spans_text(block: Block, styles: BodyStyles) -> Text:
    text = Text()
    for span in block.spans:
        content = span.text
        if span.marks & Mark.SPOILER:
            # Hidden: the characters are not sent to the terminal at all.
            content = "".join(c if c in " \n" else "░" for c in content)
        if span.marks & Mark.MENTION:
            content = f"@{content}"
        text.append(content, styles.for_marks(span.marks, span.colour))
    if block.kind is BlockKind.HEADING:
        heading = Style(bold=True, underline=block.level == 1)
        text.stylize(heading)
    return text


def _prefix(block: Block, first: bool, styles: BodyStyles) -> Text:
    prefix = Text()
    if block.quote:
        prefix.append(QUOTE_BAR * min(block.quote, MAX_DRAWN_DEPTH), styles.quote)
    if block.indent:
        prefix.append("  " * (min(block.indent, MAX_DRAWN_DEPTH) - 1))
        if first and block.bullet:
            prefix.append(
                block.bullet.rjust(3) if block.bullet[0].isdigit() else " " + block.bullet
            )
        else:
            prefix.append(" " * max(3, len(block.bullet) + 1))
    return prefix


def render_body(body: RichBody, width: int, console: Console, styles: BodyStyles) -> list[Text]:
    """The blocks as lines of at most `width` cells."""
    lines: list[Text] = []
    for block in body:
        first_prefix = _prefix(block, True, styles)
        other_prefix = _prefix(block, False, styles)
        room = max(4, width - first_prefix.cell_len)
        if block.kind is BlockKind.RULE:
            lines.append(Text.assemble(first_prefix, ("─" * room, styles.muted)))
            continue
        if block.kind is BlockKind.CODE:
            code_lines = _code_lines(block, room, console, styles)
            for number, line in enumerate(code_lines):
                lines.append(Text.assemble(first_prefix if number == 0 else other_prefix, line))
            continue
        wrapped = _spans_text(block, styles).wrap(console, room)
        for number, line in enumerate(wrapped):
            lines.append(Text.assemble(first_prefix if number == 0 else other_prefix, line))
    return lines


def _code_lines(block: Block, width: int, console: Console, styles: BodyStyles) -> list[Text]:
    from pygments.lexers.special import TextLexer
    from rich import box
    from rich.panel import Panel
    from rich.syntax import Syntax

    lexer = choose_lexer(block.language, block.code)
    syntax = Syntax(
        block.code,
        lexer,
        theme="monokai" if styles.dark else "default",
        word_wrap=True,
        background_color="default",
        tab_size=4,
    )
    language = block.language or ("" if isinstance(lexer, TextLexer) else lexer.name.lower())
    panel = Panel(
        syntax,
        box=box.ROUNDED,
        title=Text(language, styles.muted) if language else None,
        title_align="right",
        border_style=styles.muted,
        padding=(0, 1),
    )
    options = console.options.update(width=width, height=None)
    rendered = console.render_lines(panel, options, pad=False)
    return [segments_text(line) for line in rendered]


def segments_text(segments: list[Segment]) -> Text:
    text = Text()
    for segment in segments:
        if not segment.control:
            text.append(segment.text, segment.style)
    return text
