"""`formatted_body` HTML to `RichBody` blocks, through the spec's whitelist.

The HTML is remote and hostile. It is parsed with the standard library's
tolerant `html.parser` (no library renders HTML for a terminal; `nh3` and
the like sanitise HTML *to HTML*, which would still need this walk), and
only what the spec allows (client-server API, "m.room.message msgtypes",
HTML whitelist) has any effect:

- tags outside the whitelist are dropped and their text kept, except
  `mx-reply` (a reply fallback), `script`, `style` and the like, whose
  content is dropped too;
- links keep a target only with the schemes `https`, `http`, `ftp`,
  `mailto`, `magnet`; a link whose text differs from its target shows the
  target beside it, so a link cannot pretend to go somewhere else;
- `https://matrix.to/#/@user:server` links become mentions showing the
  user's current name in the room (not the link text);
- colours only as `#rrggbb`; images only as a text label (never fetched
  here: `mxc://` URIs are validated by the attachment code);
- at most 100 levels of nesting count; deeper tags are ignored;
- every text passes the sanitiser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import unquote

from tuichat.model.rich_body import Block, BlockKind, Mark, RichBody, Span
from tuichat.model.sanitize import clean_line, clean_text

MAX_DEPTH = 100
MAX_BLOCKS = 2000
# More tags than this and the message is shown as its plain `body`: parsing
# is linear, but a 64 KB body of tiny tags would still hold up the UI loop
# for tens of milliseconds, and nobody writes such a message by hand.
MAX_TAGS = 1500

LINK_SCHEMES = ("https:", "http:", "ftp:", "mailto:", "magnet:")

_INLINE_MARKS: dict[str, int] = {
    "b": Mark.BOLD.value,
    "strong": Mark.BOLD.value,
    "i": Mark.ITALIC.value,
    "em": Mark.ITALIC.value,
    "u": Mark.UNDERLINE.value,
    "del": Mark.STRIKE.value,
    "s": Mark.STRIKE.value,
    "strike": Mark.STRIKE.value,
    "code": Mark.CODE.value,
    "sup": Mark.SUPERSCRIPT.value,
    "sub": Mark.SUBSCRIPT.value,
}
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "blockquote",
        "ul",
        "ol",
        "li",
        "pre",
        "table",
        "thead",
        "tbody",
        "tr",
        "caption",
        "details",
        "summary",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
)
_ALLOWED = (
    frozenset(_INLINE_MARKS) | _BLOCK_TAGS | {"font", "span", "a", "br", "hr", "img", "th", "td"}
)
# Content dropped along with the tag.
_DROP_CONTENT = frozenset({"mx-reply", "script", "style", "head", "title", "template", "iframe"})
_VOID = frozenset({"br", "hr", "img", "area", "base", "col", "embed", "input", "link", "meta"})
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SPACES = re.compile(r"[ \t\r\n\f]+")
_MATRIX_TO_USER = re.compile(r"^https://matrix\.to/#/(@[^/?#]+)")
_LANGUAGE = re.compile(r"^language-([A-Za-z0-9_+#.\-]{1,40})$")


def safe_link(href: object) -> str | None:
    """The link target if its scheme is allowed, sanitised; else None."""
    if not isinstance(href, str):
        return None
    target = clean_line(href, max_length=2048)
    if target.lower().startswith(LINK_SCHEMES) and " " not in target:
        return target
    return None


def mentioned_user(href: str) -> str | None:
    """The user id of a `https://matrix.to/#/@user:server` link."""
    match = _MATRIX_TO_USER.match(unquote(href))
    if match is None:
        return None
    user_id = match.group(1)
    return user_id if ":" in user_id else None


class _Open:
    """A tag on the stack and what it changed."""

    __slots__ = ("block", "colour", "href", "link_start", "marks", "mention", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.marks = 0  # Mark bits as a plain int: IntFlag arithmetic is slow
        self.colour: str | None = None
        self.href: str | None = None
        self.mention: str | None = None
        self.link_start = 0
        self.block = tag in _BLOCK_TAGS


class _Run:
    __slots__ = ("colour", "marks", "pieces")

    def __init__(self, pieces: list[str], marks: int, colour: str | None) -> None:
        self.pieces = pieces
        self.marks = marks
        self.colour = colour


class _Builder(HTMLParser):
    def __init__(self, member_name: Callable[[str], str]) -> None:
        super().__init__(convert_charrefs=True)
        self.member_name = member_name
        self.blocks: list[Block] = []
        # The paragraph being built: runs of [pieces, marks, colour], joined
        # into spans when it ends (appending to one string would be
        # quadratic), and its length so far.
        self.runs: list[_Run] = []
        self.length = 0
        self.stack: list[_Open] = []
        self.ignored = 0  # tags beyond MAX_DEPTH, still open
        self.dropping = 0  # inside mx-reply, script, …
        self.lists: list[list[int]] = []  # [ordered?, next number]
        self.bullet = ""
        self.code: list[str] | None = None  # inside <pre>
        self.language = ""
        self.cell = 0

    # -- context -----------------------------------------------------------------

    def _marks(self) -> tuple[int, str | None]:
        marks = 0
        colour = None
        for entry in self.stack:
            marks |= entry.marks
            if entry.colour:
                colour = entry.colour
        return marks, colour

    def _count(self, *tags: str) -> int:
        return sum(1 for entry in self.stack if entry.tag in tags)

    def _heading(self) -> int:
        for entry in reversed(self.stack):
            if len(entry.tag) == 2 and entry.tag[0] == "h" and entry.tag[1] in "123456":
                return int(entry.tag[1])
        return 0

    def _flush(self) -> None:
        """End the paragraph being built, if it has any text."""
        spans = _trim([Span("".join(run.pieces), Mark(run.marks), run.colour) for run in self.runs])
        self.runs = []
        self.length = 0
        if not spans or len(self.blocks) >= MAX_BLOCKS:
            return
        level = self._heading()
        self.blocks.append(
            Block(
                BlockKind.HEADING if level else BlockKind.PARAGRAPH,
                spans=tuple(spans),
                quote=self._count("blockquote"),
                indent=len(self.lists),
                bullet=self.bullet,
                level=level,
            )
        )
        self.bullet = ""

    def _add_text(self, text: str, extra: int = 0) -> None:
        if not text:
            return
        marks, colour = self._marks()
        self._append(text, marks | extra, colour)

    def _append(self, text: str, marks: int, colour: str | None) -> None:
        runs = self.runs
        if runs and runs[-1].marks == marks and runs[-1].colour == colour:
            runs[-1].pieces.append(text)
        else:
            runs.append(_Run([text], marks, colour))
        self.length += len(text)

    # -- parser callbacks ------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP_CONTENT:
            if tag not in _VOID:
                self.dropping += 1
            return
        if self.dropping or tag not in _ALLOWED:
            return
        if tag in _VOID:
            self._void(tag, dict(attrs))
            return
        if self.code is not None:
            if tag == "code":
                self._code_language(dict(attrs))
            return
        if len(self.stack) >= MAX_DEPTH:
            self.ignored += 1
            return
        entry = _Open(tag)
        attributes = dict(attrs)
        entry.marks = _INLINE_MARKS.get(tag, 0)
        if tag in ("font", "span"):
            colour = attributes.get("data-mx-color") or attributes.get("color")
            if isinstance(colour, str) and _COLOUR.match(colour):
                entry.colour = colour.lower()
            if tag == "span" and "data-mx-spoiler" in attributes:
                entry.marks |= Mark.SPOILER.value
        if entry.block:
            self._flush()
        if tag in ("ul", "ol"):
            start = attributes.get("start")
            number = int(start) if isinstance(start, str) and start.isdigit() else 1
            self.lists.append([tag == "ol", min(number, 10**9)])
        elif tag == "li":
            if self.lists:
                ordered, number = self.lists[-1]
                self.bullet = f"{number}. " if ordered else "• "
                self.lists[-1][1] = number + 1
            else:
                self.bullet = "• "
        elif tag == "pre":
            self.code = []
            self.language = ""
        elif tag == "a":
            href = safe_link(attributes.get("href"))
            if href is not None:
                entry.mention = mentioned_user(href)
                entry.href = href
                entry.marks |= (Mark.MENTION if entry.mention else Mark.LINK).value
            entry.link_start = self.length
        elif tag in ("td", "th"):
            if self.cell:
                self._add_text(" │ ")
            self.cell += 1
            if tag == "th":
                entry.marks |= Mark.BOLD.value
        elif tag == "tr":
            self.cell = 0
        self.stack.append(entry)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID or tag not in _ALLOWED:
            self.handle_starttag(tag, attrs)
        else:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    def _void(self, tag: str, attributes: dict[str, str | None]) -> None:
        if tag == "br":
            if self.code is not None:
                self.code.append("\n")
            else:
                self._add_text("\n")
        elif tag == "hr" and self.code is None:
            self._flush()
            if len(self.blocks) < MAX_BLOCKS:
                self.blocks.append(Block(BlockKind.RULE, quote=self._count("blockquote")))
        elif tag == "img":
            label = clean_line(attributes.get("alt") or attributes.get("title"), max_length=200)
            self._add_text(f"[image: {label}]" if label else "[image]", Mark.ITALIC.value)

    def _code_language(self, attributes: dict[str, str | None]) -> None:
        classes = attributes.get("class") or ""
        for name in classes.split():
            match = _LANGUAGE.match(name)
            if match:
                self.language = match.group(1).lower()
                return

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP_CONTENT:
            if self.dropping:
                self.dropping -= 1
            return
        if self.dropping or tag not in _ALLOWED or tag in _VOID:
            return
        if self.code is not None and tag != "pre":
            return
        position = next(
            (i for i in range(len(self.stack) - 1, -1, -1) if self.stack[i].tag == tag), None
        )
        if position is None:
            if self.ignored:
                self.ignored -= 1
            return
        # Close what was left open inside (tolerant, like browsers).
        while len(self.stack) > position:
            self._close(self.stack[-1])
            self.stack.pop()

    def _close(self, entry: _Open) -> None:
        tag = entry.tag
        if tag == "pre" and self.code is not None:
            code = clean_text("".join(self.code)).rstrip("\n")
            self.code = None
            self._flush()
            if len(self.blocks) < MAX_BLOCKS:
                self.blocks.append(
                    Block(
                        BlockKind.CODE,
                        quote=self._count("blockquote"),
                        indent=len(self.lists),
                        bullet=self.bullet,
                        language=self.language,
                        code=code,
                    )
                )
                self.bullet = ""
            return
        if tag == "a" and entry.href:
            self._finish_link(entry)
        if tag in ("ul", "ol") and self.lists:
            self._flush()
            self.lists.pop()
        elif entry.block:
            self._flush()

    def _finish_link(self, entry: _Open) -> None:
        assert entry.href is not None
        text = self._text_since(entry.link_start)
        if entry.mention:
            # The pill shows who is mentioned, whatever the link text says.
            name = self.member_name(entry.mention)
            self._drop_text_since(entry.link_start)
            marks, colour = self._marks()
            self._append(name, marks | Mark.MENTION.value, colour)
            return
        if _same_target(text, entry.href):
            return
        self._append(f" <{entry.href}>", Mark.LINK_TARGET.value, None)

    def _text_since(self, start: int) -> str:
        """The paragraph's text from `start` on (a link's text): read from
        the end, so the cost follows the link, not the paragraph."""
        need = self.length - start
        if need <= 0:
            return ""
        pieces: list[str] = []
        got = 0
        for run in reversed(self.runs):
            for piece in reversed(run.pieces):
                pieces.append(piece)
                got += len(piece)
                if got >= need:
                    break
            if got >= need:
                break
        text = "".join(reversed(pieces))
        return text[len(text) - need :]

    def _drop_text_since(self, start: int) -> None:
        excess = self.length - max(0, start)
        while excess > 0 and self.runs:
            run = self.runs[-1]
            text = "".join(run.pieces)
            if len(text) <= excess:
                self.runs.pop()
                excess -= len(text)
                self.length -= len(text)
            else:
                run.pieces = [text[: len(text) - excess]]
                self.length -= excess
                excess = 0

    def handle_data(self, data: str) -> None:
        if self.dropping:
            return
        if self.code is not None:
            self.code.append(data)
            return
        text = _SPACES.sub(" ", data)
        if not self.runs or self.runs[-1].pieces[-1].endswith(("\n", " ")):
            text = text.lstrip(" ")
        # Character references arrive decoded here: cleaned again.
        self._add_text(clean_text(text))

    def close(self) -> None:
        super().close()
        if self.code is not None:
            self._close(_Open("pre"))
        self._flush()


def _same_target(text: str, href: str) -> bool:
    text = text.strip()
    if text == href:
        return True
    bare = href.split(":", 1)[1].removeprefix("//") if ":" in href else href
    return text in (bare, bare.rstrip("/"), href.rstrip("/"))


def _trim(spans: list[Span]) -> list[Span]:
    """Drop whitespace at the ends of a paragraph."""
    while spans and not spans[0].text.strip(" \n"):
        spans = spans[1:]
    while spans and not spans[-1].text.strip(" \n"):
        spans = spans[:-1]
    if not spans:
        return []
    first, last = spans[0], spans[-1]
    spans = list(spans)
    spans[0] = Span(first.text.lstrip(" \n"), first.marks, first.colour)
    last = spans[-1]
    spans[-1] = Span(last.text.rstrip(" \n"), last.marks, last.colour)
    return spans


def parse_formatted_body(
    html: object, member_name: Callable[[str], str] | None = None
) -> RichBody | None:
    """The blocks of a `formatted_body`, or None when there is nothing to
    show (not a string, or no text left after the whitelist)."""
    if not isinstance(html, str) or not html.strip() or html.count("<") > MAX_TAGS:
        return None
    builder = _Builder(member_name or (lambda user_id: user_id))
    # Control characters are made visible before parsing, so a character
    # reference (`&#27;`) cannot bring one back: those are cleaned per text.
    builder.feed(clean_text(html))
    builder.close()
    return tuple(builder.blocks) or None
