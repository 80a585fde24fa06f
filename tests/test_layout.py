"""The timeline's neighbour facts and fetch plan, without a terminal
(`tuichat.model.layout`); how they are drawn is pinned in
test_timeline_rendering.py."""

from __future__ import annotations

from tuichat.model.items import Attachment, ItemKind, TimelineItem
from tuichat.model.layout import (
    DAY_BREAK,
    HIDDEN,
    NEW_BELOW,
    PREVIEW,
    RUN_HEAD,
    FetchPlan,
    ItemList,
    Layout,
    MembershipDisplay,
    date_line,
    membership_summary,
)
from tuichat.model.timeline import Timeline

DAY = 86_400_000
NOON = 1_763_812_800_000  # 2025-11-22 12:00 UTC: midday in every time zone


def message(n: int, ts: int = NOON, **fields: object) -> TimelineItem:
    return TimelineItem(
        key=f"$m{n}",
        event_id=f"$m{n}",
        sender="@ada:x",
        sender_name="Ada",
        timestamp=ts + n,
        kind=ItemKind.TEXT,
        body=f"message {n}",
        **fields,  # type: ignore[arg-type]
    )


def joined(n: int, name: str, ts: int = NOON, action: str = "joined") -> TimelineItem:
    return TimelineItem(
        key=f"$j{n}",
        event_id=f"$j{n}",
        sender=f"@{name}:x",
        sender_name=name,
        timestamp=ts + n,
        kind=ItemKind.STATE,
        body=f"{name} {action}",
        membership=(action, name),
    )


def layout_of(items: list[TimelineItem], unread_after: str | None = None) -> Layout:
    layout = Layout(ItemList(items))
    layout.unread_after = unread_after
    return layout


def test_the_first_item_of_each_day_has_a_day_line_above() -> None:
    layout = layout_of([message(0), message(1), message(2, NOON + DAY)])
    assert [layout.flags(i, ())[0] & DAY_BREAK for i in range(3)] == [DAY_BREAK, 0, DAY_BREAK]
    assert date_line(0) == "unknown date"


def test_the_new_messages_line_goes_below_the_last_item_read_unless_it_is_the_last() -> None:
    items = [message(0), message(1), message(2)]
    layout = layout_of(items, unread_after="$m1")
    assert [bool(layout.flags(i, ())[0] & NEW_BELOW) for i in range(3)] == [False, True, False]
    layout.unread_after = "$m2"
    assert not any(layout.flags(i, ())[0] & NEW_BELOW for i in range(3))


def test_a_run_of_membership_changes_is_one_summary_line_on_its_first_item() -> None:
    items = [message(0), joined(1, "bob"), joined(2, "carol"), joined(3, "dan"), message(4)]
    layout = layout_of(items)
    assert layout.flags(1, ()) == (RUN_HEAD, 3)
    assert layout.flags(2, ())[0] & HIDDEN and layout.flags(3, ())[0] & HIDDEN
    assert layout.run_head(3) == 1 and layout.run_head(0) is None
    assert membership_summary(items[1:4]) == "bob, carol and dan joined"


def test_a_run_ends_at_the_new_messages_line_and_at_a_day_line() -> None:
    items = [joined(0, "bob"), joined(1, "carol"), joined(2, "dan", NOON + DAY)]
    layout = layout_of(items, unread_after="$j0")
    # bob's change was the last read: carol starts a run of her own, and
    # dan's is on another day.
    assert [layout.flags(i, ())[0] & (HIDDEN | RUN_HEAD) for i in range(3)] == [0, 0, 0]


def test_membership_changes_shown_one_a_line_or_hidden() -> None:
    items = [joined(0, "bob"), joined(1, "carol")]
    layout = layout_of(items)
    layout.membership = MembershipDisplay.SHOW
    assert [layout.flags(i, ())[0] & (HIDDEN | RUN_HEAD) for i in range(2)] == [0, 0]
    layout.membership = MembershipDisplay.HIDE
    assert all(layout.flags(i, ())[0] & HIDDEN for i in range(2))


def test_the_summary_names_a_few_and_counts_the_rest() -> None:
    names = ["a", "b", "c", "d", "e"]
    items = [joined(n, name) for n, name in enumerate(names)]
    items.append(joined(9, "f", action="were kicked"))
    assert membership_summary(items) == "a, b and 3 others joined; f was kicked"


def test_an_image_whose_preview_arrived_says_so() -> None:
    image = Attachment("m.image", "p.png", url="mxc://x/p")
    layout = layout_of([message(0, attachment=image)])
    assert not layout.flags(0, ())[0] & PREVIEW
    assert layout.flags(0, {"$m0"})[0] & PREVIEW


def test_the_fetch_plan_asks_once_for_missing_parents_and_previews_in_range() -> None:
    image = Attachment("m.image", "p.png", url="mxc://x/p")
    no_url = Attachment("m.image", "q.png")
    timeline = Timeline("!r")
    timeline.append(
        [
            message(0),
            message(1, reply_to="$m0"),  # its parent is loaded
            message(2, reply_to="$gone"),
            message(3, attachment=image),
            message(4, attachment=no_url),
            message(5, reply_to="$far"),  # out of the range asked
        ]
    )
    plan = FetchPlan()
    images, parents = plan.wanted(timeline, 0, 4, previews=())
    assert [item.key for item in images] == ["$m3"] and parents == ["$gone"]
    assert plan.wanted(timeline, 0, 4, previews=()) == ([], [])
    assert plan.wanted(timeline, 5, 99, previews=()) == ([], ["$far"])


def test_the_fetch_plan_asks_for_no_preview_when_previews_are_off_or_shown() -> None:
    image = Attachment("m.image", "p.png", url="mxc://x/p")
    items = ItemList([message(0, attachment=image)])
    assert FetchPlan(previews_enabled=False).wanted(items, 0, 0, ()) == ([], [])
    assert FetchPlan().wanted(items, 0, 0, {"$m0"}) == ([], [])


def test_a_plain_list_of_items_finds_by_key_but_holds_no_fetched_parents() -> None:
    items = ItemList([message(0), message(1)])
    assert items.index_of("$m1") == 1 and items.index_of("$nope") is None
    assert items.lookup("$m0") is None
