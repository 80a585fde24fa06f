"""A formatted message body as plain data: blocks of styled spans.

`formatted_body` HTML (remote, hostile) is parsed once, through the spec's
whitelist, by `tuichat.matrix.content.formatted_body`; the timeline renders these
blocks (`tuichat.ui.widgets.rich_body`). Every string here is sanitised
already, and nothing here is markup: spans carry their styles as flags.

The same concept as `tuichat/ui/widgets/rich_body.py`, seen from the other
side: this module holds the blocks, that one draws them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag, StrEnum


class Mark(IntFlag):
    NONE = 0
    BOLD = 1
    ITALIC = 2
    STRIKE = 4
    UNDERLINE = 8
    CODE = 16  # inline code
    SPOILER = 32
    LINK = 64  # the text of a link
    LINK_TARGET = 128  # a link's target, shown because its text differs
    MENTION = 256  # a user "pill"
    SUPERSCRIPT = 512
    SUBSCRIPT = 1024


class BlockKind(StrEnum):
    PARAGRAPH = "paragraph"
    HEADING = "heading"
    CODE = "code"  # a code block: `code` and `language`, no spans
    RULE = "rule"


@dataclass(frozen=True, slots=True)
class Span:
    text: str
    marks: Mark = Mark.NONE
    colour: str | None = None  # "#rrggbb" from data-mx-color, validated


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    spans: tuple[Span, ...] = ()
    quote: int = 0  # block quote depth
    indent: int = 0  # list nesting depth
    bullet: str = ""  # "• " or "3. " on the first block of a list item
    level: int = 0  # heading level 1-6
    language: str = ""  # code blocks: the language named by the sender
    code: str = ""

    @property
    def text(self) -> str:
        if self.kind is BlockKind.CODE:
            return self.code
        return "".join(span.text for span in self.spans)


RichBody = tuple[Block, ...]


def plain_text(body: RichBody) -> str:
    """The blocks' text, one block per line (for tests, quotes and search)."""
    return "\n".join(
        block.bullet + block.text for block in body if block.kind is not BlockKind.RULE
    )
