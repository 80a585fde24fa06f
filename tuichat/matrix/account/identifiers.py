"""Matrix user ids and server names: parsing with clear errors."""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVER_NAME = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
LOCALPART = re.compile(r"^[a-z0-9._=/+-]+$", re.IGNORECASE)


class InvalidIdentifier(ValueError):
    """Not a valid user id or name; the message says why."""


@dataclass(frozen=True)
class UserName:
    localpart: str
    server_name: str | None  # None when only a localpart was given

    @property
    def user_id(self) -> str | None:
        return f"@{self.localpart}:{self.server_name}" if self.server_name else None


def parse_user(user: str, *, require_server: bool = False) -> UserName:
    """Accept `@alice:example.org`, or `alice` unless `require_server`."""
    user = user.strip()
    if user.startswith("@"):
        localpart, sep, server = user[1:].partition(":")
        if not sep or not localpart or not SERVER_NAME.match(server):
            raise InvalidIdentifier(f"{user!r} is not a valid Matrix user id (@name:server)")
        if not LOCALPART.match(localpart):
            raise InvalidIdentifier(f"{user!r} has characters a user id cannot contain")
        return UserName(localpart, server)
    if require_server:
        raise InvalidIdentifier(f"{user!r} is not a valid Matrix user id (@name:server)")
    if not user or not LOCALPART.match(user):
        raise InvalidIdentifier(f"{user!r} is not a valid user name")
    return UserName(user, None)
