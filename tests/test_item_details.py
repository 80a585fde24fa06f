"""Compact timeline items (issue 25): the common fields in slots, the rest in
details shared between items, and still immutable values compared like the
frozen dataclass they replace."""

from __future__ import annotations

import sys
from dataclasses import FrozenInstanceError

import pytest

from tuichat.model.devices import MessageTrust
from tuichat.model.items import ItemKind, Relation, RelationKind, TimelineItem


def _item(key: str, **details: object) -> TimelineItem:
    return TimelineItem(
        key, "@ada:x", "Ada", 1_700_000_000_000, ItemKind.TEXT, "hi", key, **details
    )


def test_items_with_equal_details_share_them_and_stay_small() -> None:
    plain, other = _item("$1"), _item("$2", highlight=False, notify=True)
    assert plain._details is _item("$3")._details
    assert other._details is _item("$4", highlight=False, notify=True)._details
    assert sys.getsizeof(plain) <= 120  # was 280 with a slot per field
    assert other.notify is True and other.highlight is False and other.read_by == ()


def test_equal_values_of_another_type_do_not_share() -> None:
    trust = next(iter(MessageTrust))
    as_text = _item("$1", trust=trust.value)
    as_member = _item("$2", trust=trust)
    assert as_member.trust is trust
    assert type(as_text.trust) is str


def test_items_compare_hash_copy_and_refuse_changes_like_values() -> None:
    first = _item("$1", relation=Relation(RelationKind.REACTION, "$0", "👍"))
    assert first == _item("$1", relation=Relation(RelationKind.REACTION, "$0", "👍"))
    assert hash(first) == hash(_item("$1", relation=Relation(RelationKind.REACTION, "$0", "👍")))
    assert first != _item("$1")
    with pytest.raises(FrozenInstanceError):
        first.body = "changed"  # type: ignore[misc]
    copied = first.replace(body="changed", read_by=("Bob",))
    assert (copied.body, copied.read_by, copied.relation) == ("changed", ("Bob",), first.relation)
    assert copied.version == first.version and first.body == "hi"
    assert first.evolve(edited=True).version == first.version + 1
    with pytest.raises(TypeError):
        _item("$1", no_such_field=True)
    assert "relation=Relation(" in repr(first) and "read_by" not in repr(first)
