"""The account's notification settings, both ways.

In: the `m.push_rules` account data of each sync becomes the rules the
viewer evaluates every event with (`tuichat.model.push_rules`), is kept in
the cache for the next start, and is told to the UI as each room's setting
and the keywords (`PushSettingsChanged`). The `m.marked_unread` room
account data (and MSC2867's unstable `com.famedly.marked_unread`) becomes
`MarkedUnread`; a clear-text room's `unread_notifications` becomes
`ServerCounts`.

Out: `/notify`, `/keyword` and marking a room unread write push rules and
account data through the client-server API, the way Element writes them, so
Element shows the same setting; the next sync brings the result back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any
from urllib.parse import quote

from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.events import MarkedUnread, Notice, PushSettingsChanged, ServerCounts
from tuichat.model.push_rules import (
    GROUP_RULES,
    PushRules,
    RoomMode,
    keyword_rule,
    mute_rule,
    room_rule,
)

log = logging.getLogger(__name__)

MARKED_UNREAD = "m.marked_unread"
MARKED_UNREAD_UNSTABLE = "com.famedly.marked_unread"


def _rule_path(kind: str, rule_id: str) -> str:
    return f"/_matrix/client/v3/pushrules/global/{kind}/{quote(rule_id, safe='')}"


class PushSettings:
    """Push rules and marked-unread flags: read from sync, written on request."""

    def __init__(self, context: AccountContext) -> None:
        self._context = context

    @property
    def rules(self) -> PushRules:
        rules = self._context.viewer.push_rules
        return rules if rules is not None else PushRules(self._context.user_id)

    # -- in ---------------------------------------------------------------------------

    def handle_push_rules(self, event: dict[str, Any], account_data: dict[str, Any]) -> None:
        """A synced `m.push_rules` event: the rules every event is evaluated
        with from now on (`account_data`: what the cache writes)."""
        content = event.get("content")
        if not isinstance(content, dict):
            return
        context = self._context
        rules = PushRules.from_account_data(context.user_id, content)
        context.viewer = dataclasses.replace(context.viewer, push_rules=rules)
        context.snapshot.push_rules = content
        account_data["m.push_rules"] = content
        context.emit(self.settings(rules))

    def settings(self, rules: PushRules | None = None) -> PushSettingsChanged:
        rules = rules or self.rules
        return PushSettingsChanged(
            rules.room_settings(), tuple(rules.keywords()), rules.group_default()
        )

    def handle_room_account_data(self, room_id: str, info: dict[str, Any]) -> None:
        """`m.marked_unread` (or its unstable name) in a joined room's
        account data."""
        block = info.get("account_data")
        events = block.get("events") if isinstance(block, dict) else None
        marked: bool | None = None
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, dict):
                continue
            content = event.get("content")
            event_type = event.get("type")
            if event_type not in (MARKED_UNREAD, MARKED_UNREAD_UNSTABLE):
                continue
            # The stable name wins when both come.
            if isinstance(content, dict) and (marked is None or event_type == MARKED_UNREAD):
                marked = content.get("unread") is True
        if marked is not None:
            self._context.emit(MarkedUnread(room_id, marked))

    def handle_server_counts(self, room_id: str, info: dict[str, Any], encrypted: bool) -> None:
        """A clear-text room's `unread_notifications` (encrypted rooms are
        counted here, by evaluating the rules on what decrypts)."""
        counts = info.get("unread_notifications")
        if encrypted or not isinstance(counts, dict):
            return
        notifications, highlights = counts.get("notification_count"), counts.get("highlight_count")
        if isinstance(notifications, int) and isinstance(highlights, int):
            self._context.emit(ServerCounts(room_id, max(notifications, 0), max(highlights, 0)))

    # -- out --------------------------------------------------------------------------

    async def _request(self, method: str, path: str, body: dict[str, Any] | None) -> str | None:
        """One request; None if it succeeded, else what went wrong."""
        client = self._context.client
        if client is None:
            return "not connected"
        headers = {"Authorization": f"Bearer {client.access_token}"}
        data = json.dumps(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await client.send(method, path, data, headers)
        except NETWORK_ERRORS as error:
            return str(error) or type(error).__name__
        try:
            if response.status == 200:
                return None
            if method == "DELETE" and response.status == 404:
                return None  # nothing to delete: the wanted state already
            try:
                reply = await response.json()
            except ValueError:
                reply = {}
            error = reply.get("error") if isinstance(reply, dict) else None
            return f"HTTP {response.status}" + (f": {error}" if isinstance(error, str) else "")
        finally:
            response.release()

    async def set_room_mode(self, room_id: str, mode: RoomMode) -> bool:
        """Write a room's setting as Element does: MUTE an override rule
        matching the room, MENTIONS a room rule without actions, ALL a room
        rule that notifies with sound, DEFAULT neither."""
        steps: list[tuple[str, str, dict[str, Any] | None]] = []
        if mode is RoomMode.MUTE:
            steps.append(("PUT", _rule_path("override", room_id), mute_rule(room_id)))
        else:
            steps.append(("DELETE", _rule_path("override", room_id), None))
        if mode in (RoomMode.ALL, RoomMode.MENTIONS):
            steps.append(("PUT", _rule_path("room", room_id), room_rule(mode)))
        elif mode is RoomMode.DEFAULT:
            steps.append(("DELETE", _rule_path("room", room_id), None))
        for method, path, body in steps:
            error = await self._request(method, path, body)
            if error is not None:
                log.warning("push rule %s %s failed: %s", method, mode, error)
                self._context.emit(
                    Notice(f"Could not change notifications: {error}", error=True, room_id=room_id)
                )
                return False
        return True

    async def set_group_default(self, mode: str) -> bool:
        """Every message in group rooms notifies ("all") or only mentions
        and keywords do ("mentions"): the actions of `.m.rule.message` and
        `.m.rule.encrypted`, as Element's "Messages in group chats" sets them."""
        actions: list[Any] = ["notify"] if mode == "all" else []
        for rule_id in GROUP_RULES:
            path = _rule_path("underride", rule_id) + "/actions"
            error = await self._request("PUT", path, {"actions": actions})
            if error is not None:
                self._context.emit(Notice(f"Could not change the default: {error}", error=True))
                return False
        return True

    async def set_keyword(self, word: str, present: bool) -> bool:
        path = _rule_path("content", word)
        error = await self._request(
            "PUT" if present else "DELETE", path, keyword_rule(word) if present else None
        )
        if error is not None:
            self._context.emit(Notice(f"Could not change keyword: {error}", error=True))
            return False
        return True

    async def set_marked_unread(self, room_id: str, unread: bool) -> bool:
        """Mark a room unread (or read again) in its account data, under the
        stable name and MSC2867's unstable one (older clients read that)."""
        user = quote(self._context.user_id, safe="")
        room = quote(room_id, safe="")
        for event_type in (MARKED_UNREAD, MARKED_UNREAD_UNSTABLE):
            path = f"/_matrix/client/v3/user/{user}/rooms/{room}/account_data/{event_type}"
            error = await self._request("PUT", path, {"unread": unread})
            if error is not None:
                self._context.emit(
                    Notice(f"Could not mark the room: {error}", error=True, room_id=room_id)
                )
                return False
        self._context.emit(MarkedUnread(room_id, unread))
        return True
