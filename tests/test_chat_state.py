"""ChatState without a terminal: every domain event's handler, read markers
and unread counts, and a room read from the cache before (or after) sync."""

from __future__ import annotations

import typing

from tuichat.model import events as ev
from tuichat.model.connection import ConnectionState
from tuichat.model.draft import Draft, DraftKind
from tuichat.model.items import ItemKind, SendState, TimelineItem
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.state import HANDLERS, ChatState
from tuichat.model.timeline import ChangeKind
from tuichat.model.verification import Phase, VerificationView

ME = "@sam:example.org"
ADA = "@ada:example.org"


def item(n: int, *, sender: str = ADA, highlight: bool = False, **fields: object) -> TimelineItem:
    return TimelineItem(
        key=f"$e{n}",
        event_id=f"$e{n}",
        sender=sender,
        sender_name="Ada",
        timestamp=1_700_000_000_000 + n,
        kind=ItemKind.TEXT,
        body=f"message {n}",
        highlight=highlight,
        **fields,  # type: ignore[arg-type]
    )


def echo(txn: str) -> TimelineItem:
    return TimelineItem(
        key=f"txn:{txn}",
        sender=ME,
        sender_name="Sam",
        timestamp=1_700_000_000_000,
        kind=ItemKind.TEXT,
        body="mine",
        txn_id=txn,
        send_state=SendState.PENDING,
    )


def two_rooms() -> ChatState:
    """`!a` shown, `!b` beside it."""
    state = ChatState(ME)
    changes = state.apply(
        ev.RoomsChanged([RoomSummary("!a", "A", last_activity=2), RoomSummary("!b", "B")])
    )
    assert changes.switch_to == "!a" and changes.rooms and changes.header
    state.select_room("!a")
    return state


def test_every_domain_event_has_a_handler() -> None:
    assert set(typing.get_args(ev.DomainEvent)) == set(HANDLERS)


def test_new_items_in_the_room_shown_are_read_and_drawn() -> None:
    state = two_rooms()
    changes = state.apply(ev.TimelineAppended("!a", [item(1), item(2)]))
    assert [c.kind for c in changes.timeline] == [ChangeKind.APPENDED]
    assert changes.read_markers == [("!a", "$e2")]
    assert changes.rooms and not changes.history
    assert state.rooms.get("!a").unread == 0  # type: ignore[union-attr]
    # Nothing new: the marker does not move again.
    changes = state.apply(ev.ItemsReplaced("!a", [item(2)]))
    assert changes.read_markers == [] and len(changes.timeline) == 1


def test_new_items_elsewhere_count_as_unread_with_highlights() -> None:
    state = two_rooms()
    changes = state.apply(
        ev.TimelineAppended("!b", [item(1), item(2, highlight=True), item(3, sender=ME)])
    )
    assert changes.timeline == [] and changes.read_markers == []
    summary = state.rooms.get("!b")
    assert summary is not None and (summary.unread, summary.highlight) == (2, 1)
    assert summary.last_activity == item(3).timestamp


def test_a_limited_sync_resets_the_room_and_asks_for_history() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!a", [item(1)]))
    changes = state.apply(ev.TimelineAppended("!a", [item(5)], limited=True))
    assert changes.timeline[0].kind is ChangeKind.RESET and changes.history
    assert [i.event_id for i in state.timeline("!a")] == ["$e5"]


def test_older_history_is_prepended_and_says_whether_there_is_more() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!a", [item(5)]))
    changes = state.apply(ev.TimelinePrepended("!a", [item(1)], has_more=False))
    assert changes.timeline[0].kind is ChangeKind.PREPENDED and changes.history
    assert not state.timeline("!a").has_more_history


def test_a_failed_send_is_told_and_a_retry_ends_when_nothing_is_pending() -> None:
    state = two_rooms()
    changes = state.apply(ev.LocalEchoAdded("!a", echo("t1")))
    assert changes.timeline[0].kind is ChangeKind.APPENDED
    changes = state.apply(ev.SendStateChanged("!a", "t1", SendState.FAILED, error="boom"))
    assert [f.error for f in changes.send_failures] == ["boom"]
    assert state.failed_echoes("!a") == ["t1"]
    state.retrying["!a"] = 1
    state.apply(ev.LocalEchoAdded("!a", echo("t2")))
    changes = state.apply(ev.SendStateChanged("!a", "t1", SendState.PENDING))
    assert changes.retries_ended == []  # t1 and t2 still pending
    state.apply(ev.SendStateChanged("!a", "t2", SendState.SENT, event_id="$t2"))
    changes = state.apply(ev.SendStateChanged("!a", "t1", SendState.SENT, event_id="$t1"))
    assert changes.retries_ended == [("!a", 1)] and state.retrying == {}


def test_rooms_changed_updates_members_of_the_room_shown() -> None:
    state = two_rooms()
    changes = state.apply(ev.RoomsChanged([RoomSummary("!a", "A renamed")]))
    assert changes.members and changes.header and changes.switch_to is None
    changes = state.apply(ev.RoomsChanged([RoomSummary("!b", "B renamed")]))
    assert not changes.members


def test_an_invite_alone_is_not_switched_to() -> None:
    state = ChatState(ME)
    changes = state.apply(ev.RoomsChanged([RoomSummary("!i", "I", Membership.INVITE)]))
    assert changes.switch_to is None


def test_leaving_the_room_shown_moves_to_the_next_or_clears() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!a", [item(1)]))
    changes = state.apply(ev.RoomRemoved("!a"))
    assert changes.left and changes.switch_to == "!b"
    assert "!a" not in state.timelines and state.current_room_id is None
    state.select_room("!b")
    changes = state.apply(ev.RoomRemoved("!b"))
    assert changes.left and changes.switch_to is None and changes.header
    # Another room than the one shown: nothing about the room shown.
    state = two_rooms()
    changes = state.apply(ev.RoomRemoved("!b"))
    assert not changes.left and changes.rooms


def test_connection_notice_and_switch() -> None:
    state = ChatState(ME)
    changes = state.apply(ev.ConnectionChanged(ConnectionState.SYNCED, "ok"))
    assert changes.status and state.connection is ConnectionState.SYNCED
    assert state.connection_detail == "ok"
    notice = ev.Notice("hello", error=True, room_id="!a")
    assert state.apply(notice).notices == [notice]
    assert state.apply(ev.SwitchToRoom("!z")).switch_to == "!z"


def test_devices_verification_and_recovery_are_passed_on() -> None:
    state = ChatState(ME)
    assert state.apply(ev.DevicesChanged(frozenset({ADA}))).devices == {ADA}
    view = VerificationView("t", ADA, None, we_requested=False, phase=Phase.REQUESTED)
    assert state.apply(ev.VerificationChanged(view)).verifications == [view]
    assert state.apply(ev.RecoveryOffered(12)).recovery_offered == 12


def test_receipts_typing_and_context_redraw_only_the_room_shown() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!a", [item(1)]))
    state.apply(ev.TimelineAppended("!b", [item(2)]))
    changes = state.apply(ev.ReceiptsChanged("!a", {ADA: ("$e1", "Ada")}))
    assert len(changes.timeline) == 1 and changes.read_markers == []
    assert state.timeline("!a")[0].read_by == ("Ada",)
    assert state.apply(ev.ReceiptsChanged("!b", {ADA: ("$e2", "Ada")})).timeline == []
    changes = state.apply(ev.TypingChanged("!a", ("Ada",)))
    assert changes.typing and state.typing["!a"] == ("Ada",)
    assert not state.apply(ev.TypingChanged("!b", ("Ada",))).typing
    assert len(state.apply(ev.ContextFetched("!a", [item(0)])).timeline) == 1
    assert state.apply(ev.ContextFetched("!b", [item(0)])).timeline == []


def test_read_elsewhere_moves_the_marker_forward_only() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!b", [item(1), item(2), item(3)]))
    assert state.rooms.get("!b").unread == 3  # type: ignore[union-attr]
    changes = state.apply(ev.ReadMarkers({"!b": "$e2"}))
    assert changes.rooms and state.rooms.get("!b").unread == 1  # type: ignore[union-attr]
    changes = state.apply(ev.ReadMarkers({"!b": "$e1"}))  # behind: ignored
    assert not changes.rooms and state.timeline("!b").read_marker == "$e2"
    changes = state.apply(ev.ReadMarkers({"!b": "$unknown"}))
    assert not changes.rooms


def test_mark_read_zeroes_the_counts_and_says_when_the_marker_moved() -> None:
    state = two_rooms()
    state.apply(ev.TimelineAppended("!b", [item(1), item(2)]))
    assert state.mark_read("!b") == "$e2"
    assert state.rooms.get("!b").unread == 0  # type: ignore[union-attr]
    assert state.mark_read("!b") is None


def test_a_cached_room_then_synced() -> None:
    """Start-up: the cache's rooms and the newest room's history, then sync
    brings newer messages."""
    state = ChatState(ME)
    changes = state.apply(
        ev.CachedTimelineRead("!a", [item(1), item(2)], read_marker="$e1", has_older=False)
    )
    assert changes.cached_rooms == ["!a"] and changes.timeline == []
    changes = state.apply(
        ev.CachedRoomsRead([RoomSummary("!a", "A", last_activity=2), RoomSummary("!b", "B")])
    )
    assert changes.switch_to == "!a" and changes.rooms
    state.select_room("!a")
    timeline = state.timeline("!a")
    assert timeline.read_marker == "$e1" and not timeline.has_more_history
    changes = state.apply(ev.TimelineAppended("!a", [item(2), item(3)]))
    assert [i.event_id for i in timeline] == ["$e1", "$e2", "$e3"]
    assert changes.read_markers == [("!a", "$e3")]


def test_a_room_synced_before_its_cache_was_read() -> None:
    """Sync came first: the cached items it does not repeat are older; the
    read marker sync set stays."""
    state = two_rooms()
    state.apply(ev.TimelineAppended("!b", [item(3)]))
    changes = state.apply(
        ev.CachedTimelineRead("!b", [item(1), item(2)], read_marker="$e1", receipts={})
    )
    assert [i.event_id for i in state.timeline("!b")] == ["$e1", "$e2", "$e3"]
    assert changes.timeline == [] and changes.cached_rooms == ["!b"]
    assert state.rooms.get("!b").unread == 3  # type: ignore[union-attr]


def test_a_cache_read_before_the_sync_that_came_first_was_written_keeps_older_history() -> None:
    """A room joined and shown at once: its first (limited) sync's events
    are on screen while that sync's writes are still queued, and the cache
    read for the room finds nothing of it yet. That says nothing of what
    lies before the sync's events: older history is still asked for."""
    state = two_rooms()
    state.apply(ev.TimelineAppended("!b", [item(3)], limited=True))
    state.apply(ev.CachedTimelineRead("!b", [], has_older=False))
    timeline = state.timeline("!b")
    assert [i.event_id for i in timeline] == ["$e3"] and timeline.has_more_history
    # Where nothing came by sync first, the cache says it.
    state.apply(ev.CachedTimelineRead("!a", [item(1)], has_older=False))
    assert not state.timeline("!a").has_more_history


def test_a_cached_room_without_marker_counts_as_read_and_keeps_receipts() -> None:
    state = two_rooms()
    state.apply(ev.CachedTimelineRead("!b", [item(1), item(2)], receipts={ADA: ("$e1", "Ada")}))
    timeline = state.timeline("!b")
    assert timeline.read_marker == "$e2" and timeline[0].read_by == ("Ada",)
    assert state.rooms.get("!b").unread == 0  # type: ignore[union-attr]
    changes = state.apply(ev.CachedTimelineRead("!a", [item(4)]))
    assert len(changes.timeline) == 1  # the room shown redraws
    assert changes.read_markers == []  # reading the cache does not mark it read


def test_waiting_placeholders_settle_when_nothing_will_decrypt() -> None:
    state = two_rooms()
    waiting = item(1, utd_reason="decrypting", encrypted=True)
    state.apply(ev.CachedTimelineRead("!a", [waiting]))
    state.apply(ev.CachedTimelineRead("!b", [item(2, utd_reason="decrypting")]))
    changes = state.apply(ev.WaitingSettled("no_store"))
    assert state.timeline("!a")[0].utd_reason == "no_store"
    assert state.timeline("!b")[0].utd_reason == "no_store"
    assert len(changes.timeline) == 1  # only the room shown redraws


def test_a_mention_elsewhere_notifies_once_synced_and_not_twice() -> None:
    state = two_rooms()
    mention = ev.TimelineAppended("!b", [item(1, highlight=True)])
    assert state.apply(mention).new_messages == []  # the first sync's backlog
    state.apply(ev.ConnectionChanged(ConnectionState.SYNCED))
    assert state.apply(ev.TimelineAppended("!b", [item(2)])).new_messages == []
    new = state.apply(ev.TimelineAppended("!b", [item(3, highlight=True)])).new_messages
    assert [(n.room_id, n.room_name, n.item.event_id) for n in new] == [("!b", "B", "$e3")]
    again = state.apply(ev.TimelineAppended("!b", [item(3, highlight=True)]))
    assert again.new_messages == []  # already known


def test_selecting_another_room_drops_the_draft_and_steps_wrap() -> None:
    state = two_rooms()
    state.draft = Draft(DraftKind.REPLY, item(1))
    assert state.select_room("!a") is False and state.draft is not None
    assert state.select_room("!b") is True and state.draft is None
    assert state.step_room(1) == "!a" and state.step_room(-1) == "!a"
    assert state.current_summary is not None and state.current_summary.name == "B"
