"""Thread relations of raw events: which thread an event replies in, and the
summary a server attaches to a thread root.

A thread reply carries ``m.relates_to: {rel_type: m.thread, event_id:
<root>}`` (in the clear on encrypted events). Its ``m.in_reply_to`` is only
a fallback for clients without threads when ``is_falling_back`` is true, so
the item then quotes nothing. A root's ``unsigned["m.relations"]["m.thread"]``
holds the server's summary: the count, the latest event and whether we took
part.
"""

from __future__ import annotations

from typing import Any

from tuichat.model.items import ThreadSummary
from tuichat.model.sanitize import clean_line, clean_text

THREAD_REL_TYPE = "m.thread"
PREVIEW_LENGTH = 80


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def thread_root_of(content: dict[str, Any]) -> str | None:
    """The root event id if `content` is a thread reply, else None."""
    relates = _dict(content.get("m.relates_to"))
    root = relates.get("event_id")
    if relates.get("rel_type") == THREAD_REL_TYPE and isinstance(root, str) and root:
        return root
    return None


def is_falling_back(content: dict[str, Any]) -> bool:
    """Whether a thread reply's ``m.in_reply_to`` is only a fallback."""
    return _dict(content.get("m.relates_to")).get("is_falling_back") is True


def preview_of(content: dict[str, Any]) -> str:
    """A one-line, shortened, sanitised preview of a message's body."""
    body = clean_text(content.get("body"))
    if body.startswith("> "):  # a reply fallback quote
        lines = body.split("\n")
        while lines and lines[0].startswith(">"):
            lines.pop(0)
        body = "\n".join(lines)
    return clean_line(" ".join(body.split()), max_length=PREVIEW_LENGTH)


def server_summary(event: dict[str, Any], own_user_id: str, names: Any) -> ThreadSummary | None:
    """The thread summary a server put in a root's unsigned data, if any.
    `names(user_id)` gives a member's display name. An encrypted latest
    event previews as such until the reply itself is decrypted here."""
    thread = _dict(_dict(_dict(event.get("unsigned")).get("m.relations")).get(THREAD_REL_TYPE))
    count = thread.get("count")
    if not thread or not isinstance(count, int) or isinstance(count, bool) or count < 0:
        return None
    latest = _dict(thread.get("latest_event"))
    sender = latest.get("sender")
    sender = sender if isinstance(sender, str) else ""
    ts = latest.get("origin_server_ts")
    event_id = latest.get("event_id")
    if latest.get("type") == "m.room.encrypted":
        preview = "🔒 encrypted message"
    else:
        preview = preview_of(_dict(latest.get("content")))
    participated = thread.get("current_user_participated") is True
    return ThreadSummary(
        count=count,
        latest_sender=clean_line(sender),
        latest_sender_name=clean_line(names(sender)) if sender else "",
        latest_preview=preview,
        latest_ts=ts if isinstance(ts, int) and not isinstance(ts, bool) else 0,
        latest_event_id=event_id if isinstance(event_id, str) else None,
        participated=participated or sender == own_user_id,
    )


def thread_fields(
    event: dict[str, Any], content: dict[str, Any], own_user_id: str, names: Any
) -> dict[str, Any]:
    """The thread fields of an item converted from `event` (whose relation
    is in `content`): its thread root, or its server thread summary."""
    fields: dict[str, Any] = {}
    root = thread_root_of(content)
    if root is not None:
        fields["thread_root"] = root
        if is_falling_back(content):
            fields["reply_to"] = None
    summary = server_summary(event, own_user_id, names)
    if summary is not None:
        fields["thread"] = summary
    return fields
