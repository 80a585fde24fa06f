"""Threads without a terminal: replies kept out of the main timeline, the
summary under a root (local and server), the thread pane's view, relations
pages, threaded receipts and unread counts; conversion of thread relations."""

from __future__ import annotations

from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.model import events as ev
from tuichat.model.items import (
    ItemKind,
    Relation,
    RelationKind,
    SendState,
    ThreadSummary,
    TimelineItem,
)
from tuichat.model.rooms import Membership, RoomSummary
from tuichat.model.state import ChatState
from tuichat.model.threads import RoomTimeline, ThreadView

ME = "@sam:example.org"
ADA = "@ada:example.org"
T0 = 1_700_000_000_000


def item(n: int, *, sender: str = ADA, root: str | None = None, **fields: object) -> TimelineItem:
    return TimelineItem(
        key=f"$e{n}",
        event_id=f"$e{n}",
        sender=sender,
        sender_name="Sam" if sender == ME else "Ada",
        timestamp=T0 + n,
        kind=ItemKind.TEXT,
        body=f"message {n}",
        thread_root=root,
        **fields,  # type: ignore[arg-type]
    )


def keys(items: object) -> list[str]:
    return [i.key for i in items]  # type: ignore[attr-defined]


def test_replies_leave_the_main_timeline_and_the_root_gets_a_summary() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1), item(2, root="$e1"), item(3), item(4, root="$e1")])
    assert keys(timeline) == ["$e1", "$e3"]
    root = timeline.get("$e1")
    assert root is not None and root.thread is not None
    assert root.thread.count == 2
    assert root.thread.latest_sender_name == "Ada"
    assert root.thread.latest_preview == "message 4"
    assert root.thread.unread
    assert keys(timeline.thread("$e1").timeline) == ["$e2", "$e4"]
    assert timeline.root_of("$e4") == "$e1"
    # A reply's parent inside a thread is found from the main timeline too.
    assert timeline.lookup("$e2") is not None


def test_a_reply_after_the_root_was_shown_redraws_the_root() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1), item(2)])
    change = timeline.append([item(3, root="$e1")])
    assert 0 in change.indices
    assert len(timeline) == 2


def test_relations_of_thread_replies_go_to_the_thread() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1), item(2, root="$e1")])
    edit = TimelineItem(
        key="$e5",
        event_id="$e5",
        sender=ADA,
        sender_name="Ada",
        timestamp=T0 + 5,
        kind=ItemKind.TEXT,
        body="edited",
        relation=Relation(RelationKind.EDIT, "$e2"),
    )
    reaction = TimelineItem(
        key="$e6",
        event_id="$e6",
        sender=ME,
        sender_name="Sam",
        timestamp=T0 + 6,
        kind=ItemKind.TEXT,
        body="",
        relation=Relation(RelationKind.REACTION, "$e2", "👍"),
    )
    timeline.append([edit, reaction])
    reply = timeline.thread("$e1").timeline.get("$e2")
    assert reply is not None and reply.body == "edited" and reply.edited
    assert reply.reactions and reply.reactions[0].mine
    assert timeline.own_reaction("$e2", "👍") == "$e6"
    redaction = TimelineItem(
        key="$e7",
        event_id="$e7",
        sender=ADA,
        sender_name="Ada",
        timestamp=T0 + 7,
        kind=ItemKind.TEXT,
        body="",
        relation=Relation(RelationKind.REDACTION, "$e2"),
    )
    timeline.append([redaction])
    reply = timeline.thread("$e1").timeline.get("$e2")
    assert reply is not None and reply.kind is ItemKind.REDACTED
    assert keys(timeline) == ["$e1"]


def test_server_summary_counts_replies_not_loaded_and_newer_ones() -> None:
    server = ThreadSummary(
        count=5,
        latest_sender=ADA,
        latest_sender_name="Ada",
        latest_preview="fifth",
        latest_ts=T0 + 10,
        latest_event_id="$e10",
    )
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1, thread=server)])
    root = timeline.get("$e1")
    assert root is not None and root.thread is not None
    assert root.thread.count == 5 and root.thread.latest_preview == "fifth"
    timeline.append([item(20, root="$e1", sender=ME)])
    root = timeline.get("$e1")
    assert root is not None and root.thread is not None
    assert root.thread.count == 6
    assert root.thread.latest_sender == ME and root.thread.participated


def test_thread_view_shows_the_root_then_replies_and_pages_go_above() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1), item(5, root="$e1")])
    view = ThreadView(timeline, "$e1")
    assert keys(view) == ["$e1", "$e5"]
    assert view.index_of("$e5") == 1
    timeline.add_thread_page(
        "$e1", [item(2, root="$e1"), item(3, root="$e1")], has_more=False, next_token=None
    )
    assert keys(view) == ["$e1", "$e2", "$e3", "$e5"]
    changes = view.changes()
    assert changes and changes[-1].count == 2
    assert timeline.get("$e1").thread.count == 3  # type: ignore[union-attr]
    view.close()
    timeline.append([item(6, root="$e1")])
    assert view.changes() == []


def test_thread_echo_stays_in_the_thread_until_its_remote_echo() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1)])
    echo = TimelineItem(
        key="txn:t1",
        sender=ME,
        sender_name="Sam",
        timestamp=T0 + 9,
        kind=ItemKind.TEXT,
        body="mine",
        txn_id="t1",
        send_state=SendState.PENDING,
        thread_root="$e1",
    )
    timeline.add_local_echo(echo)
    assert len(timeline) == 1
    assert timeline.local_echo("t1") is not None
    timeline.update_local_echo("t1", SendState.SENT, "$e9")
    timeline.append([item(9, root="$e1", sender=ME, txn_id="t1")])
    thread = timeline.thread("$e1").timeline
    assert keys(thread) == ["$e9"]


def test_unread_threads_count_for_the_room_and_receipts_clear_them() -> None:
    state = ChatState(ME)
    state.apply(ev.RoomsChanged([RoomSummary("!a", "A"), RoomSummary("!b", "B")]))
    state.select_room("!a")
    state.apply(ev.TimelineAppended("!b", [item(1)]))
    state.mark_read("!b")
    state.apply(ev.TimelineAppended("!b", [item(2, root="$e1"), item(3, root="$e1")]))
    summary = state.rooms.get("!b")
    assert summary is not None and summary.unread == 2
    timeline = state.timeline("!b")
    assert timeline.get("$e1").thread.unread  # type: ignore[union-attr]
    state.apply(ev.ThreadReceipts("!b", {"$e1": "$e3"}))
    summary = state.rooms.get("!b")
    assert summary is not None and summary.unread == 0
    assert not timeline.get("$e1").thread.unread  # type: ignore[union-attr]


def test_thread_list_orders_by_latest_activity() -> None:
    state = ChatState(ME)
    state.apply(ev.RoomsChanged([RoomSummary("!a", "A")]))
    state.select_room("!a")
    old_root = item(1, thread=ThreadSummary(count=1, latest_ts=T0 + 50, latest_event_id="$x"))
    state.apply(ev.ThreadsListed("!a", [old_root, item(2)]))
    state.apply(ev.TimelineAppended("!a", [item(2), item(60, root="$e2")]))
    timeline = state.timeline("!a")
    assert [t.root for t in timeline.ordered_threads()] == ["$e2", "$e1"]
    assert timeline.root_item("$e1") is not None


def test_converter_reads_thread_relations_and_server_summaries() -> None:
    state = RoomState("!a", Membership.JOIN)
    viewer = Viewer(ME)
    reply = to_item(
        {
            "type": "m.room.message",
            "event_id": "$r",
            "sender": ADA,
            "origin_server_ts": T0,
            "content": {
                "msgtype": "m.text",
                "body": "in the thread",
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": "$root",
                    "is_falling_back": True,
                    "m.in_reply_to": {"event_id": "$prev"},
                },
            },
        },
        state,
        viewer,
    )
    assert reply is not None and reply.thread_root == "$root" and reply.reply_to is None
    quoting = to_item(
        {
            "type": "m.room.message",
            "event_id": "$q",
            "sender": ADA,
            "origin_server_ts": T0,
            "content": {
                "msgtype": "m.text",
                "body": "quoting",
                "m.relates_to": {
                    "rel_type": "m.thread",
                    "event_id": "$root",
                    "is_falling_back": False,
                    "m.in_reply_to": {"event_id": "$prev"},
                },
            },
        },
        state,
        viewer,
    )
    assert quoting is not None and quoting.reply_to == "$prev"
    placeholder = to_item(
        {
            "type": "m.room.encrypted",
            "event_id": "$enc",
            "sender": ADA,
            "origin_server_ts": T0,
            "content": {
                "algorithm": "m.megolm.v1.aes-sha2",
                "ciphertext": "x",
                "session_id": "s",
                "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
            },
        },
        state,
        viewer,
    )
    assert placeholder is not None and placeholder.thread_root == "$root"
    root = to_item(
        {
            "type": "m.room.message",
            "event_id": "$root",
            "sender": ME,
            "origin_server_ts": T0,
            "content": {"msgtype": "m.text", "body": "root"},
            "unsigned": {
                "m.relations": {
                    "m.thread": {
                        "count": 3,
                        "current_user_participated": False,
                        "latest_event": {
                            "type": "m.room.message",
                            "event_id": "$l",
                            "sender": ADA,
                            "origin_server_ts": T0 + 3,
                            "content": {"body": "latest\x1b[31m one"},
                        },
                    }
                }
            },
        },
        state,
        viewer,
    )
    assert root is not None and root.thread is not None
    assert root.thread.count == 3 and root.thread.latest_event_id == "$l"
    assert "\x1b" not in root.thread.latest_preview


def test_threads_without_a_receipt_are_read_up_to_when_the_room_was_read() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1), item(2, root="$e1"), item(3)])
    timeline.mark_read()  # the room was read up to $e3 (after the reply)
    assert timeline.unread_counts(ME) == (0, 0)
    assert not timeline.get("$e1").thread.unread  # type: ignore[union-attr]
    timeline.append([item(4, root="$e1")])
    assert timeline.unread_counts(ME) == (1, 0)
    assert timeline.get("$e1").thread.unread  # type: ignore[union-attr]
    # Reading the main timeline further does not read the thread.
    timeline.append([item(5)])
    timeline.mark_read()
    assert timeline.unread_counts(ME) == (1, 0)
    assert timeline.mark_thread_read("$e1") == "$e4"
    assert timeline.unread_counts(ME) == (0, 0)


def test_server_thread_counts_mark_threads_unread_until_read_here() -> None:
    state = ChatState(ME)
    state.apply(ev.RoomsChanged([RoomSummary("!a", "A"), RoomSummary("!b", "B")]))
    state.select_room("!a")
    state.apply(ev.TimelineAppended("!b", [item(1), item(2, root="$e1", sender=ME)]))
    state.mark_read("!b")
    timeline = state.timeline("!b")
    assert not timeline.get("$e1").thread.unread  # type: ignore[union-attr]
    changes = state.apply(ev.ThreadCounts("!b", {"$e1": (2, 1)}))
    assert changes.rooms and "!b" in changes.threads
    assert timeline.get("$e1").thread.unread  # type: ignore[union-attr]
    summary = state.rooms.get("!b")
    assert summary is not None and summary.unread == 2 and summary.highlight == 1
    # Absent from the next count: none unread.
    state.apply(ev.ThreadCounts("!b", {}))
    assert not timeline.get("$e1").thread.unread  # type: ignore[union-attr]
    assert state.rooms.get("!b").unread == 0  # type: ignore[union-attr]


def test_a_thread_placeholder_fills_in_where_it_is() -> None:
    timeline = RoomTimeline("!a", ME)
    timeline.append([item(1)])
    view = ThreadView(timeline, "$e1")
    placeholder = item(2, root="$e1").evolve(
        kind=ItemKind.UNDECRYPTABLE, body="", utd_reason="missing_key", encrypted=True
    )
    timeline.append([placeholder])
    assert timeline.get("$e1").thread.latest_preview == "🔒 encrypted message"  # type: ignore[union-attr]
    view.changes()
    change = timeline.replace([item(2, root="$e1", encrypted=True)])
    assert 0 in change.indices  # the root's summary line changed
    assert [c.indices for c in view.changes()] == [(1,)]  # the pane's row 1
    assert view[1].body == "message 2" and view[1].utd_reason is None
    assert timeline.get("$e1").thread.latest_preview == "message 2"  # type: ignore[union-attr]


def test_others_threaded_receipts_show_in_the_thread() -> None:
    state = ChatState(ME)
    state.apply(ev.RoomsChanged([RoomSummary("!a", "A")]))
    state.select_room("!a")
    state.apply(ev.TimelineAppended("!a", [item(1), item(2, root="$e1"), item(3, root="$e1")]))
    state.apply(ev.ThreadReaders("!a", "$e1", {"@bo:example.org": ("$e2", "Bo")}))
    reply = state.timeline("!a").thread("$e1").timeline.get("$e2")
    assert reply is not None and reply.read_by == ("Bo",)
