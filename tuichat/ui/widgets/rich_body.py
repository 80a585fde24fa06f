"""Formatted message bodies (`RichBody` blocks) as terminal lines.

Paragraphs become Rich `Text` built span by span (never parsed as markup);
code blocks are drawn in a box that keeps their indentation, highlighted
once `tuichat.ui.widgets.highlight` has done so in the background (plain
until then). Every line returned fits `width` cells.

The same concept as `tuichat/model/rich_body.py`, seen from the other
side: that module holds the blocks, this one draws them.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from tuichat.model.rich_body import Block, BlockKind, Mark, RichBody
from tuichat.model.sanitize import SafeText, safe_line, safe_text, trusted
from tuichat.ui.widgets import highlight
from tuichat.ui.widgets.highlight import wrapped_lines

QUOTE_BAR = "▌ "
# Deeper quotes and lists are drawn at this depth, so text keeps its room.
MAX_DRAWN_DEPTH = 6
# At most this many lines of a code block are drawn; a note says how many
# more there are (a pasted log of 64 KB would be thousands of lines). An
# item is wrapped and drawn in one go, about 70 µs a line: 200 lines keep
# it near 15 ms (tests/test_hostile_stream.py holds a frame under 100 ms).
MAX_CODE_LINES = 200
# A plain body is drawn up to this many lines and characters, with a note
# for the rest (65,536 one-character lines cost 1.6 s on every redraw).
MAX_BODY_LINES = 200
MAX_BODY_CHARS = 10_000


def cap_plain(body: str) -> tuple[SafeText, SafeText]:
    """What is drawn of a plain body, and a note for what is not ("")."""
    shown = body[:MAX_BODY_CHARS]
    cut = -1
    for _ in range(MAX_BODY_LINES):
        cut = shown.find("\n", cut + 1)
        if cut < 0:
            break
    if cut >= 0:
        shown = shown[:cut]
    if len(shown) == len(body):
        return safe_text(body), trusted("")
    rest = body[len(shown) :]
    hidden_lines = rest.count("\n")
    if hidden_lines:
        return safe_text(shown), safe_line(f"… {hidden_lines} more lines not shown")
    return safe_text(shown), safe_line(f"… {len(rest)} more characters not shown")


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


def render_body(
    body: RichBody,
    width: int,
    console: Console,
    styles: BodyStyles,
    when_highlighted: Callable[[], None] | None = None,
) -> list[Text]:
    """The blocks as lines of at most `width` cells. Code blocks not
    highlighted yet are drawn plain; with `when_highlighted`, they are
    highlighted in the background, which calls it (in its own thread)
    when one is ready to be drawn again."""
    lines: list[Text] = []
    for block in body:
        first_prefix = _prefix(block, True, styles)
        other_prefix = _prefix(block, False, styles)
        room = max(4, width - first_prefix.cell_len)
        if block.kind is BlockKind.RULE:
            lines.append(Text.assemble(first_prefix, ("─" * room, styles.muted)))
            continue
        if block.kind is BlockKind.CODE:
            code_lines = _code_lines(block, room, console, styles, when_highlighted)
            for number, line in enumerate(code_lines):
                lines.append(Text.assemble(first_prefix if number == 0 else other_prefix, line))
            continue
        wrapped = _spans_text(block, styles).wrap(console, room)
        for number, line in enumerate(wrapped):
            lines.append(Text.assemble(first_prefix if number == 0 else other_prefix, line))
    return lines


def _code_lines(
    block: Block,
    width: int,
    console: Console,
    styles: BodyStyles,
    when_highlighted: Callable[[], None] | None,
) -> list[Text]:
    """The code in a rounded box, its language in the top border. The box
    is drawn here rather than by Rich's Panel, whose layers cost more than
    the highlighting."""
    code = safe_text(block.code).expandtabs(4).rstrip()
    raw_lines = code.split("\n")
    hidden = max(0, len(raw_lines) - MAX_CODE_LINES)
    if hidden:
        code = "\n".join(raw_lines[:MAX_CODE_LINES])
    language = safe_line(block.language)
    inner = max(4, width - 4)
    done = highlight.cached(block.language, code, styles.dark)
    if done is None and when_highlighted is not None:
        highlight.request(block.language, code, styles.dark, when_highlighted)
    if done is not None and done.text is not None:
        language = safe_line(done.language)
        wrapped = wrapped_lines(done, console, inner)
    else:
        # Plain: only lines wider than the box need wrapping.
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
