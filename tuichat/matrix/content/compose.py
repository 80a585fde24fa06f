"""What the composer's text becomes on the wire: message, reply, edit and
reaction contents.

The text is CommonMark (markdown-it-py, with strikethrough and tables, raw
HTML off so nothing typed becomes markup by accident). When it has any
formatting, or mentions someone, the content carries
`format: org.matrix.custom.html` and the rendered `formatted_body` beside
the plain `body`; otherwise only `body`. Every content says whom it
mentions (`m.mentions`, empty when nobody; `room` when "@room" is typed),
so clients do not guess from the text.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from markdown_it import MarkdownIt

HTML_FORMAT = "org.matrix.custom.html"
# Stand-ins for mentions while the Markdown is rendered (private-use
# characters, which the renderer leaves alone).
_OPEN, _CLOSE = "\ue000", "\ue001"


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return (
        MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
        .enable("strikethrough")
        .enable("table")
    )


def matrix_to(user_id: str) -> str:
    return f"https://matrix.to/#/{quote(user_id, safe='@:')}"


def render_markdown(text: str, mentions: dict[str, str] | None = None) -> str | None:
    """The HTML for `text`, or None when it is plain (no formatting and no
    mentions). `mentions` maps a name as typed in the text to a user id."""
    mentions = {name: user for name, user in (mentions or {}).items() if name and name in text}
    marked = text
    pills: list[tuple[str, str]] = []
    for name in sorted(mentions, key=len, reverse=True):
        token = f"{_OPEN}{len(pills)}{_CLOSE}"
        if name in marked:
            marked = marked.replace(name, token)
            pills.append((name, mentions[name]))
    rendered = _markdown().render(marked).rstrip("\n")
    escaped = (
        marked.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )
    plain = "<p>" + escaped.replace("\n", "<br />\n") + "</p>"
    if rendered == plain and not pills:
        return None
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        rendered = rendered[3:-4]  # one paragraph: no wrapper (as Element sends it)
    for number, (name, user_id) in enumerate(pills):
        link = f'<a href="{html.escape(matrix_to(user_id))}">{html.escape(name)}</a>'
        rendered = rendered.replace(f"{_OPEN}{number}{_CLOSE}", link)
    return rendered


# "@room" as a word of its own (not "@roomba", "x@room" or "@room:server").
ROOM_MENTION = re.compile(r"(?<![\w@])@room(?![\w:@-])")


def message_content(
    text: str,
    *,
    emote: bool = False,
    markdown: bool = True,
    mentions: dict[str, str] | None = None,
    reply_to: str | None = None,
    reply_sender: str | None = None,
    own_user_id: str = "",
) -> dict[str, Any]:
    """An `m.room.message` content for what the user typed."""
    content: dict[str, Any] = {"msgtype": "m.emote" if emote else "m.text", "body": text}
    mentioned = {user for name, user in (mentions or {}).items() if name and name in text}
    if markdown:
        formatted = render_markdown(text, mentions)
        if formatted is not None:
            content["format"] = HTML_FORMAT
            content["formatted_body"] = formatted
    if reply_to is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        if reply_sender and reply_sender != own_user_id:
            mentioned.add(reply_sender)
    intentional: dict[str, Any] = {"user_ids": sorted(mentioned)} if mentioned else {}
    if ROOM_MENTION.search(text):
        # "@room" typed as a word: the whole room is mentioned (MSC3952);
        # whether it notifies is the room's power levels' business.
        intentional["room"] = True
    content["m.mentions"] = intentional
    return content


def edit_content(
    original_event_id: str,
    text: str,
    *,
    emote: bool = False,
    markdown: bool = True,
    mentions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An edit (`m.replace`) of our message: the new content, and a "* "
    fallback for clients that do not know edits."""
    new_content = message_content(text, emote=emote, markdown=markdown, mentions=mentions)
    content: dict[str, Any] = {"msgtype": new_content["msgtype"], "body": f"* {text}"}
    if "formatted_body" in new_content:
        content["format"] = HTML_FORMAT
        content["formatted_body"] = f"* {new_content['formatted_body']}"
    content["m.new_content"] = new_content
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": original_event_id}
    # Only people newly mentioned by the edit would be notified (spec); the
    # edit itself notifies nobody again.
    content["m.mentions"] = {}
    return content


def reaction_content(event_id: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
