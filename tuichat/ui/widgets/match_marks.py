"""Search matches marked in drawn lines (issue 24): the words a search
result matched stay marked in its message once the timeline jumped there.

Works on the strips the renderer built (their text already cleaned), one
segment at a time: a word split across two lines by wrapping is marked in
each part that still matches."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from tuichat.model.search_query import SearchQuery, matched_spans

MARK = Style(reverse=True, bold=True)


def mark_strips(strips: list[Strip], query: SearchQuery) -> list[Strip]:
    marked: list[Strip] = []
    for strip in strips:
        segments: list[Segment] = []
        for segment in strip:
            text, style, control = segment
            spans = matched_spans(text, query) if text and not control else []
            if not spans:
                segments.append(segment)
                continue
            position = 0
            for start, end in spans:
                if start > position:
                    segments.append(Segment(text[position:start], style))
                segments.append(Segment(text[start:end], (style or Style()) + MARK))
                position = end
            if position < len(text):
                segments.append(Segment(text[position:], style))
        marked.append(Strip(segments, strip.cell_length))
    return marked
