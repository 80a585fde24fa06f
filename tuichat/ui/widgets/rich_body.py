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
from tuichat.model.sanitize import safe_line, safe_text

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
# Longer code is shown in its box without highlighting (Pygments costs
# about 0.15 ms per line, on the UI loop).
MAX_HIGHLIGHT = 4_000
# At most this many lines of a code block are drawn; a note says how many
# more there are (a pasted log of 64 KB would be thousands of lines).
MAX_CODE_LINES = 500


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
        text.append(safe_text(content), styles.for_marks(span.marks, span.colour))
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
        bullet = safe_line(block.bullet)
        if first and bullet:
            prefix.append(bullet.rjust(3) if bullet[0].isdigit() else " " + bullet)
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
    """The code in a rounded box, its language in the top border. The box
    is drawn here rather than by Rich's Panel, whose layers cost more than
    the highlighting; code beyond MAX_HIGHLIGHT is boxed unhighlighted, so
    a huge paste cannot hold up the UI."""
    from pygments.lexers.special import TextLexer
    from rich.syntax import Syntax

    code = safe_text(block.code).expandtabs(4).rstrip()
    raw_lines = code.split("\n")
    hidden = max(0, len(raw_lines) - MAX_CODE_LINES)
    if hidden:
        code = "\n".join(raw_lines[:MAX_CODE_LINES])
    language = safe_line(block.language)
    inner = max(4, width - 4)
    if len(code) <= MAX_HIGHLIGHT:
        lexer = choose_lexer(block.language, code)
        theme = "monokai" if styles.dark else "default"
        text = Syntax(code, lexer, theme=theme).highlight(code)
        # The theme's own background would be a block of another colour
        # (black in a light theme): the timeline's shows through instead.
        text.style = Style()
        if not language and not isinstance(lexer, TextLexer):
            language = safe_line(lexer.name.lower())
        text.rstrip()
        wrapped = list(text.wrap(console, inner, overflow="fold"))
    else:
        # Unhighlighted: only lines wider than the box need wrapping.
        wrapped = []
        for raw in raw_lines[:MAX_CODE_LINES]:
            line = Text(raw)
            wrapped += [line] if line.cell_len <= inner else list(line.wrap(console, inner))
    border = styles.muted
    title = f" {language[: inner - 2]} " if language else ""
    if title:
        top = Text("╭" + "─" * (inner + 1 - len(title)) + title + "─╮", border)
    else:
        top = Text("╭" + "─" * (inner + 2) + "╮", border)
    lines = [top]
    if hidden:
        wrapped.append(Text(f"… {hidden} more lines not shown", styles.muted))
    for line in wrapped:
        line.pad_right(inner - line.cell_len)
        lines.append(Text.assemble(("│ ", border), line, (" │", border)))
    lines.append(Text("╰" + "─" * (inner + 2) + "╯", border))
    return lines


def segments_text(segments: list[Segment]) -> Text:
    text = Text()
    for segment in segments:
        if not segment.control:
            text.append(segment.text, segment.style)
    return text
