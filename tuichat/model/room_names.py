"""Room display names, computed as the Matrix spec says.

Client-Server API, "Calculating the display name for a room". Member names
(and their disambiguation) live with the member state in
`tuichat.matrix.content.room_state`. Inputs are plain values so the
same code serves the live service and the cache loaded at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def _join_names(names: Sequence[str], others: int) -> str:
    if others > 0:
        return f"{', '.join(names)} and {others} other{'s' if others != 1 else ''}"
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def room_display_name(
    *,
    name: str | None,
    canonical_alias: str | None,
    heroes: Iterable[str],
    hero_names: Mapping[str, str],
    joined_count: int,
    invited_count: int,
    own_user_id: str,
) -> str:
    """The spec's room name: name, then alias, then heroes, then "Empty Room".

    `heroes` are user ids (from the sync summary's ``m.heroes``, or computed
    from membership when the server sent none); `hero_names` maps them to
    already disambiguated display names.
    """
    if name:
        return name
    if canonical_alias:
        return canonical_alias
    hero_ids = [hero for hero in heroes if hero != own_user_id][:5]
    names = [hero_names.get(hero, hero) for hero in hero_ids]
    members = joined_count + invited_count
    if members > 1:
        if not names:
            return "Empty Room"
        return _join_names(names, max(0, members - 1 - len(names)))
    if names:
        return f"Empty Room (was {_join_names(names, 0)})"
    return "Empty Room"
