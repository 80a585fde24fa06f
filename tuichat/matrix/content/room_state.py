"""The current state of one room, kept from raw state events.

Plain Python over event dicts, so the cache loaded at start-up (before nio is
imported) and the live sync share one implementation of names, members and
flags. nio keeps its own `MatrixRoom` for sending; this is what tuichat shows.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from tuichat.model.room_names import room_display_name
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.sanitize import clean_line
from tuichat.model.space_tree import SpaceChild, valid_order

StateKey = tuple[str, str]

_MAX_HEROES = 5
# The summary's display names of its heroes, by user id, where the sync
# names them beside `m.heroes` (sliding sync; on `/v3/sync` their member
# events come instead). Used for a hero whose member event is not known.
HERO_NAMES = "tuichat.hero_names"


def _content(event: dict[str, Any]) -> dict[str, Any]:
    content = event.get("content")
    return content if isinstance(content, dict) else {}


class RoomState:
    """State events of one room by (type, state_key), plus the sync summary."""

    def __init__(self, room_id: str, membership: Membership = Membership.JOIN) -> None:
        self.room_id = room_id
        self.membership = membership
        self.events: dict[StateKey, dict[str, Any]] = {}
        # The sync `summary` (m.heroes, m.joined_member_count, ...), merged.
        self.sync_summary: dict[str, Any] = {}
        self.is_direct = False
        self._names: dict[str, str] | None = None
        # The space links by type, found once per change of them (not by
        # scanning every member at every summary).
        self._links: dict[str, list[tuple[str, dict[str, Any], int]]] | None = None

    # -- updates ---------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one state event; returns whether it was a state event."""
        event_type = event.get("type")
        state_key = event.get("state_key")
        if not isinstance(event_type, str) or not isinstance(state_key, str):
            return False
        self.events[(event_type, state_key)] = event
        if event_type == "m.room.member":
            self._names = None
        elif event_type.startswith("m.space."):
            self._links = None
        return True

    def load(self, events: dict[StateKey, dict[str, Any]]) -> None:
        """Take a whole state at once, keyed by (type, state_key) as `apply`
        keys it (from the cache, which checked each event when writing)."""
        self.events = events
        self._names = None
        self._links = None

    def merge_summary(self, summary: dict[str, Any]) -> None:
        for key in ("m.heroes", "m.joined_member_count", "m.invited_member_count", HERO_NAMES):
            if key in summary:
                self.sync_summary[key] = summary[key]

    # -- reading -----------------------------------------------------------------

    def content(self, event_type: str, state_key: str = "") -> dict[str, Any]:
        event = self.events.get((event_type, state_key))
        return _content(event) if event else {}

    @property
    def name(self) -> str:
        return clean_line(self.content("m.room.name").get("name"))

    @property
    def topic(self) -> str:
        return clean_line(self.content("m.room.topic").get("topic"), max_length=1024)

    @property
    def canonical_alias(self) -> str:
        return clean_line(self.content("m.room.canonical_alias").get("alias"))

    @property
    def encrypted(self) -> bool:
        return bool(self.content("m.room.encryption").get("algorithm"))

    def membership_of(self, user_id: str) -> str | None:
        value = self.content("m.room.member", user_id).get("membership")
        return value if isinstance(value, str) else None

    def members(self, memberships: tuple[str, ...] = ("join", "invite")) -> list[str]:
        return sorted(
            state_key
            for (event_type, state_key), event in self.events.items()
            if event_type == "m.room.member" and _content(event).get("membership") in memberships
        )

    def _display_names(self) -> dict[str, str]:
        if self._names is None:
            raw: dict[str, str] = {}
            for (event_type, state_key), event in self.events.items():
                if event_type != "m.room.member":
                    continue
                content = _content(event)
                raw[state_key] = clean_line(content.get("displayname"), max_length=256)
            current = {
                user: name
                for user, name in raw.items()
                if self.membership_of(user) in ("join", "invite") and name
            }
            clashes = Counter(current.values())
            names = {}
            for user, name in raw.items():
                # A state key is whatever string the event carried: cleaned
                # like any other remote text.
                if not name:
                    names[user] = clean_line(user)
                elif clashes[name] > 1 and user in current:
                    names[user] = f"{name} ({clean_line(user)})"
                else:
                    names[user] = name
            self._names = names
        return self._names

    def member_name(self, user_id: str) -> str:
        """The member's display name, disambiguated as the spec says (a hero
        whose member event is not known: the name the summary gave)."""
        name = self._display_names().get(user_id)
        if name:
            return name
        hero_names = self.sync_summary.get(HERO_NAMES)
        hero_name = hero_names.get(user_id) if isinstance(hero_names, dict) else None
        return clean_line(hero_name, max_length=256) or clean_line(user_id)

    def heroes(self, own_user_id: str) -> list[str]:
        heroes = self.sync_summary.get("m.heroes")
        if isinstance(heroes, list) and heroes:
            return [h for h in heroes if isinstance(h, str) and h != own_user_id]
        others = [m for m in self.members() if m != own_user_id]
        if not others:
            others = [m for m in self.members(("leave", "ban")) if m != own_user_id]
        return others[:_MAX_HEROES]

    def member_counts(self) -> tuple[int, int]:
        joined = self.sync_summary.get("m.joined_member_count")
        invited = self.sync_summary.get("m.invited_member_count")
        if not isinstance(joined, int):
            joined = len(self.members(("join",)))
        if not isinstance(invited, int):
            invited = len(self.members(("invite",)))
        return joined, invited

    def inviter(self, own_user_id: str) -> str:
        event = self.events.get(("m.room.member", own_user_id))
        if not event or _content(event).get("membership") != "invite":
            return ""
        sender = event.get("sender")
        return self.member_name(sender) if isinstance(sender, str) else ""

    def invited_as_direct(self, own_user_id: str) -> bool:
        return bool(self.content("m.room.member", own_user_id).get("is_direct"))

    def display_name(self, own_user_id: str) -> str:
        name, alias = self.name, self.canonical_alias
        if name or alias:
            # What the spec's algorithm returns first; members are not needed.
            return name or alias
        joined, invited = self.member_counts()
        heroes = self.heroes(own_user_id)
        return room_display_name(
            name=name,
            canonical_alias=alias,
            heroes=heroes,
            hero_names={hero: self.member_name(hero) for hero in heroes},
            joined_count=joined,
            invited_count=invited,
            own_user_id=own_user_id,
        )

    # -- spaces (issue 22) ---------------------------------------------------------

    @property
    def is_space(self) -> bool:
        return self.content("m.room.create").get("type") == "m.space"

    def _space_links(self, event_type: str) -> list[tuple[str, dict[str, Any], int]]:
        """(state key, content, timestamp) of the valid links: those with `via`."""
        if self._links is None:
            links: dict[str, list[tuple[str, dict[str, Any], int]]] = {
                "m.space.child": [],
                "m.space.parent": [],
            }
            for (kind, state_key), event in self.events.items():
                if kind not in links:
                    continue
                via = _content(event).get("via")
                if isinstance(via, list) and via and state_key:
                    ts = event.get("origin_server_ts")
                    links[kind].append(
                        (state_key, _content(event), ts if isinstance(ts, int) else 0)
                    )
            self._links = links
        return self._links[event_type]

    def space_children(self) -> tuple[SpaceChild, ...]:
        if not self.is_space:
            return ()
        return tuple(
            SpaceChild(
                room_id=room_id,
                order=valid_order(content.get("order")),
                suggested=content.get("suggested") is True,
                via=tuple(clean_line(v) for v in content["via"] if isinstance(v, str))[:10],
                added=ts,
            )
            for room_id, content, ts in self._space_links("m.space.child")
        )

    def space_parents(self) -> tuple[str, ...]:
        return tuple(sorted(room_id for room_id, _c, _t in self._space_links("m.space.parent")))

    def pinned(self) -> tuple[str, ...]:
        """Pinned event ids (at most 50: remote input, bounded)."""
        pinned = self.content("m.room.pinned_events").get("pinned")
        if not isinstance(pinned, list):
            return ()
        return tuple(dict.fromkeys(p for p in pinned if isinstance(p, str) and p.startswith("$")))[
            -50:
        ]

    def summary(self, own_user_id: str, last_activity: int = 0) -> RoomSummary:
        invite = self.membership is Membership.INVITE
        return RoomSummary(
            room_id=self.room_id,
            name=self.display_name(own_user_id),
            membership=self.membership,
            topic=self.topic,
            is_direct=self.is_direct or (invite and self.invited_as_direct(own_user_id)),
            encrypted=self.encrypted,
            inviter=self.inviter(own_user_id) if invite else "",
            last_activity=last_activity,
            is_space=self.is_space,
            space_children=self.space_children(),
            space_parents=self.space_parents(),
            successor=clean_line(self.content("m.room.tombstone").get("replacement_room")),
            pinned=self.pinned(),
        )
