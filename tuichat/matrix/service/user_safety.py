"""Keeping people out of your way: ignoring a user (their messages and
invites are hidden: the server stops sending them once they are in your
`m.ignored_user_list`), and reporting an event to the server's admins."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.calls import RequestRefused, json_request
from tuichat.model.events import Notice

IGNORED = "m.ignored_user_list"


class UserSafety:
    def __init__(self, context: AccountContext) -> None:
        self._context = context
        self.emit = context.emit

    def _account_data_path(self) -> str:
        user = quote(self._context.user_id, safe="")
        return f"/_matrix/client/v3/user/{user}/account_data/{IGNORED}"

    async def ignored(self) -> dict[str, Any]:
        """The ignored users as the server has them now ({} when none)."""
        try:
            content = await json_request(self._context.client, "GET", self._account_data_path())
        except RequestRefused:
            return {}  # none yet (the server says "not found")
        users = content.get("ignored_users") if isinstance(content, dict) else None
        return dict(users) if isinstance(users, dict) else {}

    async def set_ignored(self, user_id: str, ignore: bool) -> bool:
        if user_id == self._context.user_id:
            self.emit(Notice("You cannot ignore yourself.", error=True))
            return False
        users = await self.ignored()
        if ignore:
            users[user_id] = {}
        elif users.pop(user_id, None) is None:
            self.emit(Notice(f"{user_id} was not ignored."))
            return True
        try:
            await json_request(
                self._context.client, "PUT", self._account_data_path(), {"ignored_users": users}
            )
        except RequestRefused as error:
            self.emit(Notice(f"Not changed: {error}.", error=True))
            return False
        if ignore:
            self.emit(Notice(f"Ignoring {user_id}: their messages and invites are hidden."))
        else:
            self.emit(Notice(f"No longer ignoring {user_id}."))
        return True

    async def report(self, room_id: str, event_id: str, reason: str) -> bool:
        path = (
            f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/report/{quote(event_id, safe='')}"
        )
        try:
            await json_request(self._context.client, "POST", path, {"reason": reason})
        except RequestRefused as error:
            self.emit(Notice(f"Not reported: {error}.", error=True))
            return False
        self.emit(Notice("Reported to your server's administrators."))
        return True
