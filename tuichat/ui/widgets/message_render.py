"""One timeline item as terminal lines (Rich `Strip`s).

A message line is its time, a lock marker (🔒, or ⚠ from a device not
verified), the sender in their colour, and the body wrapped beside that
gutter: the quote of a replied-to message, the text or formatted blocks,
an image preview, reactions and read receipts. Around it go the lines its
neighbours call for (`tuichat.model.layout`): a day line above, the "new
messages" line below, or a membership run's summary in its place.

Every remote string is placed through the sanitiser as plain `Text`, never
as markup. The renderer keeps no cache: the timeline view caches what it
returns.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from tuichat.model.devices import MessageTrust
from tuichat.model.items import (
    KEY_SOURCE_LABELS,
    ItemKind,
    SendState,
    ThreadSummary,
    TimelineItem,
)
from tuichat.model.layout import (
    DAY_BREAK,
    HIDDEN,
    NEW_BELOW,
    ItemList,
    ItemSource,
    date_line,
)
from tuichat.model.rich_body import plain_text
from tuichat.model.sanitize import safe_line, safe_text
from tuichat.ui.widgets.rich_body import BodyStyles, cap_plain, render_body, segments_text

if TYPE_CHECKING:
    from tuichat.ui.widgets.style_memo import StyleMemo

TIME_WIDTH = 5  # "%H:%M", the default time format
LOCK_WIDTH = 2
SENDER_WIDTH = 14
GUTTER = TIME_WIDTH + 1 + LOCK_WIDTH + SENDER_WIDTH + 1
MIN_BODY_WIDTH = 12

SENDER_COLOURS = (
    "#e06c75",
    "#98c379",
    "#e5c07b",
    "#61afef",
    "#c678dd",
    "#56b6c2",
    "#d19a66",
    "#be5046",
    "#7ec699",
    "#f08d49",
    "#cc99cd",
    "#6796e6",
)

# Messages marked with a warning: decrypted, but not bound to a device its
# owner verified.
WEAKLY_BOUND = frozenset(
    {MessageTrust.UNVERIFIED, MessageTrust.UNKNOWN_DEVICE, MessageTrust.UNSIGNED}
)


def sender_colour(user_id: str) -> str:
    """A stable colour per user id (the same in every run). A checksum is
    enough to spread ids over a palette; a cryptographic hash brought
    OpenSSL into every start for it."""
    return SENDER_COLOURS[zlib.crc32(user_id.encode("utf-8", "replace")) % len(SENDER_COLOURS)]


def _clock(timestamp_ms: int, time_format: str = "%H:%M") -> str:
    if timestamp_ms <= 0:
        return "--:--"
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000).strftime(time_format)
    except (ValueError, OverflowError, OSError):
        return "--:--"  # a server may send any number (year 10000, 2**70, …)


def time_width(time_format: str) -> int:
    """Cells the time column needs for `time_format` (its longest forms)."""
    samples = (datetime(2026, 12, 30, 23, 59), datetime(2026, 9, 3, 9, 5))
    return max(5, *(len(moment.strftime(time_format)) for moment in samples))


def _fit(text: str, width: int) -> Text:
    """`text` right-aligned in `width` cells, cut with an ellipsis if longer."""
    line = Text(safe_line(text), no_wrap=True, overflow="ellipsis")
    line.truncate(width, overflow="ellipsis")
    line.align("right", width)
    return line


def trust_note(item: TimelineItem) -> str:
    """Why this message is less strongly bound to its sender, if it is."""
    if item.key_source:
        return KEY_SOURCE_LABELS.get(item.key_source, item.key_source)
    if item.trust == MessageTrust.UNKNOWN_DEVICE:
        return "sent from a device not known yet"
    if item.trust == MessageTrust.UNSIGNED:
        return "sent from a device its owner has not verified"
    return ""


class MessageRenderer:
    """Builds an item's strips with the styles of `host` (the widget that
    draws them: its component classes `timeline--…`). `source` is where
    replies find their parents; `previews` holds image previews by item key.
    A code block highlighted later calls `when_highlighted(item key)`."""

    def __init__(self, host: StyleMemo, when_highlighted: Callable[[str], Callable[[], None]]):
        self._host = host
        self._when_highlighted = when_highlighted
        self.source: ItemSource = ItemList(())
        self.time_format = "%H:%M"
        self.time_width = TIME_WIDTH
        self.gutter = GUTTER
        self.previews_enabled = True
        self.previews: dict[str, list[list[Segment]]] = {}

    def set_time_format(self, value: str) -> None:
        self.time_format = value
        self.time_width = time_width(value)
        self.gutter = GUTTER - TIME_WIDTH + self.time_width

    def body_width(self, width: int) -> int:
        return max(MIN_BODY_WIDTH, width - self.gutter)

    def build(self, item: TimelineItem, flags: int, summary: str | None, width: int) -> list[Strip]:
        """The item's lines with what its neighbour `flags` add; `summary`
        replaces the body of a membership run's first item."""
        if flags & HIDDEN:
            return []
        strips: list[Strip] = []
        if flags & DAY_BREAK:
            strips.append(self.rule_strip(date_line(item.timestamp), "timeline--day", width))
        if summary is not None:
            strips += self.message_strips(item.evolve(body=summary), width)
        else:
            strips += self.message_strips(item, width)
        if flags & NEW_BELOW:
            strips.append(self.rule_strip("new messages", "timeline--new", width))
        return strips

    def rule_strip(self, label: str, style_name: str, width: int) -> Strip:
        host = self._host
        width = max(len(label) + 4, width or 40)
        text = Text(f" {safe_line(label)} ".center(width, "─"), style=host._style(style_name))
        text.truncate(width)
        segments = list(text.render(host.app.console))
        return Strip(Segment.apply_style(segments, host._base_style))

    def lock(self, item: TimelineItem) -> Text:
        """The 2-cell marker: 🔒 encrypted; ⚠ encrypted, but from a device
        that is not verified (or not known yet); blank when not encrypted."""
        if not item.encrypted:
            return Text("  ")
        if item.trust in WEAKLY_BOUND:
            return Text.styled("⚠ ", self._host._style("timeline--unverified"))
        return Text.styled("🔒", self._host._style("timeline--lock"))

    def message_strips(self, item: TimelineItem, width: int) -> list[Strip]:
        """The item's own lines: the gutter on the first, the body beside."""
        host = self._host
        style = host._style
        console = host.app.console
        base = host._base_style
        clock = safe_line(_clock(item.timestamp, self.time_format)).ljust(self.time_width)
        time_text = Text.styled(clock, style("timeline--time"))
        lock = self.lock(item)
        body = self.body(item)
        if item.kind in (ItemKind.STATE, ItemKind.EMOTE):
            sender = _fit("*" if item.kind is ItemKind.EMOTE else "--", SENDER_WIDTH)
            sender.stylize(style("timeline--state"))
        else:
            sender = _fit(item.sender_name, SENDER_WIDTH)
            sender.stylize(Style(color=sender_colour(item.sender), bold=True))
        lines = self.body_lines(item, body, width)
        first_prefix = Text.assemble(time_text, " ", lock, sender, " ")
        blank_prefix = Text(" " * self.gutter)
        strips = []
        for number, line in enumerate(lines):
            prefix = first_prefix if number == 0 else blank_prefix
            segments = list(prefix.render(console)) + list(line.render(console))
            strips.append(Strip(Segment.apply_style(segments, base)))
        return strips

    def body_lines(self, item: TimelineItem, body: Text, width: int) -> list[Text]:
        """The body's lines: a quote of the parent of a reply, the text (or
        formatted blocks), reactions and read receipts."""
        console = self._host.app.console
        width = self.body_width(width)
        lines: list[Text] = []
        if item.reply_to is not None:
            lines.append(self.quote_line(item.reply_to, width))
        if item.formatted is not None and item.kind in (ItemKind.TEXT, ItemKind.NOTICE):
            lines += render_body(
                item.formatted,
                width,
                console,
                self.body_styles(),
                self._when_highlighted(item.key),
            )
            if lines and body.plain:
                # The markers ("(edited)", "sending…") follow the last line.
                lines[-1:] = list(Text.assemble(lines[-1], body).wrap(console, width))
        elif item.formatted is not None and item.kind is ItemKind.EMOTE:
            rendered = render_body(
                item.formatted,
                width - len(item.sender_name) - 1,
                console,
                self.body_styles(),
                self._when_highlighted(item.key),
            )
            name = Text(
                safe_line(item.sender_name) + " ",
                Style(color=sender_colour(item.sender), bold=True),
            )
            for number, line in enumerate(rendered):
                prefix = name if number == 0 else Text(" " * name.cell_len)
                lines.append(Text.assemble(prefix, line))
            if body.plain:
                lines.append(body)
        else:
            lines += body.wrap(console, width)
        if item.attachment is not None and item.attachment.is_image and self.previews_enabled:
            preview = self.previews.get(item.key)
            if preview is not None:
                lines += [segments_text(line) for line in preview]
        if item.reactions:
            lines += self.reactions_text(item).wrap(console, width)
        if item.thread is not None:  # threads (issue 21)
            lines.append(self.thread_line(item.thread, width))
        if item.read_by:
            seen = _fit("✓ " + ", ".join(item.read_by), width)
            seen.stylize(self._host._style("timeline--reaction"))
            lines.append(seen)
        if not lines:
            lines.append(Text(""))
        return lines

    def body_styles(self) -> BodyStyles:
        style = self._host._style
        return BodyStyles(
            code=style("timeline--code"),
            link=style("timeline--link"),
            link_target=style("timeline--state"),
            mention=style("timeline--mention"),
            quote=style("timeline--quote"),
            muted=style("timeline--time"),
            dark=self._host.app.current_theme.dark,
        )

    def quote_line(self, event_id: str, width: int) -> Text:
        """ "↳ sender: text" of the message a reply answers (fetching it, if
        not loaded, is the view's `FetchPlan`'s job)."""
        parent = self.source.lookup(event_id)
        style = self._host._style("timeline--quote")
        if parent is None:
            text = Text("↳ in reply to a message not loaded", style)
        else:
            if parent.kind is ItemKind.UNDECRYPTABLE:
                what = "🔒 unable to decrypt"
            elif parent.formatted is not None:
                what = plain_text(parent.formatted)
            else:
                what = parent.body
            shown = safe_line(" ".join(what.split()))
            text = Text.assemble(
                ("↳ ", style),
                (
                    safe_line(parent.sender_name),
                    Style(color=sender_colour(parent.sender), bold=True),
                ),
                (": " + shown, style),
            )
        text.truncate(width, overflow="ellipsis")
        return text

    def thread_line(self, thread: ThreadSummary, width: int) -> Text:
        """ "🧵 3 replies · Ada: latest words ●" under a thread root (● when
        it has unread replies)."""
        style = self._host._style
        count = thread.count
        text = Text.assemble(
            (safe_line(f"🧵 {count} repl{'y' if count == 1 else 'ies'}"), style("timeline--link")),
        )
        if thread.latest_sender_name:
            text.append(" · ", style("timeline--quote"))
            text.append(
                safe_line(thread.latest_sender_name),
                Style(color=sender_colour(thread.latest_sender), bold=True),
            )
            text.append(safe_line(": " + thread.latest_preview), style("timeline--quote"))
        text.truncate(max(1, width - 2), overflow="ellipsis")
        if thread.unread:
            text.append(" ●", style("timeline--new"))
        return text

    def reactions_text(self, item: TimelineItem) -> Text:
        style = self._host._style
        text = Text()
        for reaction in item.reactions:
            name = "timeline--own-reaction" if reaction.mine else "timeline--reaction"
            if text:
                text.append("  ")
            text.append(safe_line(f"{reaction.key} {reaction.count}"), style(name))
        return text

    def body(self, item: TimelineItem) -> Text:
        """The item's body as Text. Remote strings are placed as plain Text,
        never parsed as markup. Styles go on as spans (`Text.styled`):
        `Text.render`, which builds the strips, ignores a Text's base style."""
        style = self._host._style
        if item.kind is ItemKind.UNDECRYPTABLE:
            return Text.styled(
                safe_line(f"Unable to decrypt: {item.utd_text}"),
                style("timeline--undecryptable"),
            )
        body = safe_text(item.body)
        if item.kind is ItemKind.STATE:
            return Text.styled(body, style("timeline--state"))
        if item.kind is ItemKind.REDACTED:
            return Text.styled(body, style("timeline--state"))
        # A huge body is drawn in part, with a note (it is wrapped on every
        # redraw); the markers below still show.
        shown, cut_note = cap_plain(body)
        if item.kind is ItemKind.EMOTE:
            text = Text.assemble(
                (safe_line(item.sender_name), Style(color=sender_colour(item.sender), bold=True)),
                " ",
                shown,
            )
        elif item.kind is ItemKind.NOTICE:
            text = Text.styled(shown, style("timeline--notice"))
        else:
            text = Text(shown)
        if cut_note:
            text.append(f"\n{cut_note}", style=style("timeline--time"))
        if item.formatted is not None:
            text = Text()  # the blocks are the body; only the markers follow
        if item.highlight:
            text.stylize(Style(bold=True))
        if item.edited:
            text.append("  (edited)", style=style("timeline--time"))
        note = trust_note(item)
        if note:
            text.append(f"  · {safe_line(note)}", style=style("timeline--note"))
        if item.send_state is SendState.PENDING:
            text.stylize(style("timeline--pending"))
            text.append("  (sending…)", style=style("timeline--pending"))
        elif item.send_state is SendState.FAILED:
            failed = style("timeline--failed")
            text.append("  ✗ not sent — Ctrl+R to retry", style=failed)
        return text
