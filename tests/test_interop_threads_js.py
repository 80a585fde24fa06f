"""Threads against Element's stack: the matrix-js-sdk peer (Rust crypto)
and tuichat's screen, driven with Pilot, in an encrypted room on the real
Synapse. The peer's thread reply stays out of tuichat's main timeline and
shows as the root's summary; the thread pane shows it decrypted (its page
fetched through the relations API); tuichat's replies in the pane reach the
peer in the thread with Element's fallback (or a real reply); the threaded
read receipt reaches the server with the root as `thread_id`."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import OptionList

from tests.conftest import UserFactory, log_in, sync_timeline_limit
from tests.js_peer import JsPeer, requires_js_peer
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import PAGE_SIZE
from tuichat.model.events import ConnectionState
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.thread_list import ThreadListScreen

pytestmark = requires_js_peer


def lines(view: Any) -> str:
    return "\n".join(view.line_texts())


async def test_threads_with_the_js_peer_in_an_encrypted_room(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Any,
    sync_mode: str,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Threads")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        await join_in_ui(pilot, app, js, room_id, alice.user_id, 30)
        main = app.main

        root = await js.send(room_id, "a root from element")
        await wait_ui(pilot, lambda: "a root from element" in lines(main.timeline), 30)
        reply = await js.send_thread_reply(room_id, root, "first reply in the thread", latest=root)
        await js.send(room_id, "back in the main timeline")

        # The main timeline: the root with "1 reply", not the reply itself.
        await wait_ui(pilot, lambda: "back in the main timeline" in lines(main.timeline), 30)
        await wait_ui(pilot, lambda: "1 reply" in lines(main.timeline), 30)
        shown = lines(main.timeline)
        summary = next(line for line in shown.splitlines() if "1 reply" in line)
        assert "Bob" in summary and "first reply in the thread" in summary
        assert sum("first reply in the thread" in line for line in shown.splitlines()) == 1
        timeline = app.state.timeline(room_id)
        assert timeline.index_of(reply) is None
        assert timeline.root_of(reply) == root

        # Enter on the root opens the pane: the reply, decrypted.
        main.timeline.focus()
        main.timeline.select_last()
        await pilot.press("up", "enter")
        pane = main.thread_pane
        await wait_ui(pilot, lambda: pane.is_open and app.threads.root == root, 10)
        await wait_ui(pilot, lambda: "first reply in the thread" in lines(pane.timeline), 30)
        shown_reply = timeline.thread(root).timeline.get(reply)
        assert shown_reply is not None and shown_reply.encrypted
        assert shown_reply.utd_reason is None
        # The page from the relations API came (the only page: no more).
        await wait_ui(pilot, lambda: not timeline.thread(root).has_more, 30)

        # The threaded receipt for the reply reached the server, and the
        # main timeline's receipt says "main".
        async def receipt_seen(thread_id: str, event_id: str | None) -> bool:
            receipts = await js.server_receipts(room_id)
            return any(
                r["user_id"] == alice.user_id
                and r["thread_id"] == thread_id
                and (event_id is None or r["event_id"] == event_id)
                for r in receipts
            )

        for thread_id, event_id in ((root, reply), ("main", None)):
            for _ in range(100):
                if await receipt_seen(thread_id, event_id):
                    break
                await pilot.pause(0.2)
            else:
                raise AssertionError(f"no receipt with thread_id {thread_id} on the server")

        # The peer edits its reply: the pane shows the new text.
        await js.send_event(
            room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "* first reply, edited",
                "m.new_content": {"msgtype": "m.text", "body": "first reply, edited"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": reply},
            },
        )
        await wait_ui(pilot, lambda: "first reply, edited" in lines(pane.timeline), 30)
        # tuichat reacts to it: the peer sees the annotation of the reply.
        assert app.service is not None
        app.service.react(room_id, reply, "👍")
        reaction = await js.wait_for_event(room_id, "m.reaction", sender=alice.user_id)
        assert reaction["relation"]["event_id"] == reply
        await wait_ui(pilot, lambda: "👍 1" in lines(pane.timeline), 30)

        # tuichat replies in the thread: Element's relation and fallback.
        assert pane.composer.has_focus
        pane.composer.insert("tuichat answers in the thread")
        await pilot.press("enter")
        event = await js.wait_for_thread_event(room_id, root, "tuichat answers in the thread")
        assert event["thread_root"] == root and event["encrypted"]
        relation = event["relation"]
        assert relation["rel_type"] == "m.thread" and relation["event_id"] == root
        assert relation["is_falling_back"] is True
        assert relation["m.in_reply_to"]["event_id"] == reply
        await wait_ui(pilot, lambda: "tuichat answers in the thread" in lines(pane.timeline), 30)
        assert "tuichat answers in the thread" not in lines(main.timeline).replace(
            "Alice: tuichat answers in the thread", ""
        )

        # The peer's threaded receipt on it shows under it in the pane.
        ours = next(
            i
            for i in timeline.thread(root).timeline
            if i.body == "tuichat answers in the thread" and i.event_id
        )
        assert ours.event_id is not None
        await js.send_threaded_receipt(room_id, ours.event_id, root)
        await wait_ui(pilot, lambda: "✓ Bob" in lines(pane.timeline), 30)

        # A reply to a specific message in the thread quotes it.
        pane.timeline.focus()
        thread_items = timeline.thread(root).timeline
        pane.timeline.select_last()
        await pilot.press("up")
        selected = pane.timeline.selected_item
        assert selected is not None and selected.event_id == reply, selected
        await pilot.press("r")
        assert pane.composer.has_focus
        pane.composer.insert("quoting bob inside the thread")
        await pilot.press("enter")
        quoted = await js.wait_for_thread_event(room_id, root, "quoting bob inside the thread")
        relation = quoted["relation"]
        assert relation["rel_type"] == "m.thread" and relation["event_id"] == root
        assert relation["is_falling_back"] is False
        assert relation["m.in_reply_to"]["event_id"] == reply
        await wait_ui(pilot, lambda: thread_items.remote_count == 3, 30)
        root_item = timeline.get(root)
        assert root_item is not None and root_item.thread is not None
        assert root_item.thread.count == 3 and root_item.thread.participated

        # The peer quotes a message inside the thread (a reply to a reply):
        # in the pane, with its quote.
        answer = await js.send_thread_reply(
            room_id, root, "bob quotes the first reply", reply_to=reply
        )
        await wait_ui(pilot, lambda: thread_items.get(answer) is not None, 30)
        quoting = thread_items.get(answer)
        assert quoting is not None and quoting.reply_to == reply and quoting.utd_reason is None
        await wait_ui(pilot, lambda: "bob quotes the first reply" in lines(pane.timeline), 30)
        assert "↳ Bob: first reply, edited" in lines(pane.timeline)

        # Escape (from the pane's composer) closes it.
        pane.composer.focus()
        await pilot.press("escape")
        await wait_ui(pilot, lambda: not pane.is_open, 10)

        # A reply while the thread is closed is unread: marked on the root.
        def root_unread() -> bool:
            item = timeline.get(root)
            return item is not None and item.thread is not None and item.thread.unread

        unread = await js.send_thread_reply(room_id, root, "while the thread was closed")
        await wait_ui(pilot, root_unread, 30)
        # The server counts it too (MSC3773, asked for in the sync filter).
        # Simplified sliding sync carries no per-thread counts (Synapse's
        # room counts there are always 0): the count is tuichat's own.
        if sync_mode == "v3":
            await wait_ui(pilot, lambda: timeline.thread(root).server_counts[0] >= 1, 30)
        assert any("5 replies" in line and "●" in line for line in lines(main.timeline).split("\n"))
        # Another of Alice's sessions reads it (a threaded receipt): read here too.
        await asyncio.to_thread(
            synapse._request,
            "POST",
            f"/_matrix/client/v3/rooms/{room_id}/receipt/m.read/{unread}",
            {"thread_id": root},
            token=alice.access_token,
        )
        await wait_ui(pilot, lambda: not root_unread(), 30)
        await wait_ui(pilot, lambda: timeline.thread(root).server_counts == (0, 0), 30)


async def test_thread_list_and_replies_older_than_the_sync_window(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    sync_mode: str,
) -> None:
    """A thread whose root and replies lie beyond the synced window (sent
    before tuichat joined, then buried under more messages than a sync and
    a page of history bring, in either sync mode): the thread list (F5,
    `/threads`) finds it with the server's summary, and opening it fetches
    the root and the replies (relations API), in order."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)

    def request(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, reply = synapse._request(method, path, body, token=bob.access_token)
        assert status == 200, (status, reply)
        return reply

    def send(room_id: str, n: int, content: dict[str, Any]) -> str:
        path = f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t{n}"
        return str(request("PUT", path, content)["event_id"])

    room = request(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "private_chat", "invite": [alice.user_id], "name": "Old threads"},
    )
    room_id = room["room_id"]
    root = send(room_id, 0, {"msgtype": "m.text", "body": "an old thread root"})
    replies = [
        send(
            room_id,
            n,
            {
                "msgtype": "m.text",
                "body": f"old reply {n}",
                "m.relates_to": {"rel_type": "m.thread", "event_id": root},
            },
        )
        for n in (1, 2, 3)
    ]
    # The screen is filled from history when a sync brings fewer events
    # than it shows (sliding sync's 10): one page more than a sync.
    buried = sync_timeline_limit(sync_mode) + PAGE_SIZE + 5
    for n in range(4, 4 + buried):
        send(room_id, n, {"msgtype": "m.text", "body": f"main message {n}"})

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id), 30)
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id, 30)
        timeline = app.state.timeline(room_id)
        await wait_ui(pilot, lambda: len(timeline) > 40, 30)
        assert timeline.get(root) is None and timeline.root_of(replies[0]) is None

        await pilot.press("f5")
        await wait_ui(pilot, lambda: isinstance(app.screen, ThreadListScreen), 10)
        options = app.screen.query_one(OptionList)
        await wait_ui(pilot, lambda: options.option_count == 1, 30)
        row = str(options.get_option_at_index(0).prompt)
        assert "an old thread root" in row and "3 replies" in row and "old reply 3" in row
        await pilot.press("enter")
        pane = app.main.thread_pane
        await wait_ui(pilot, lambda: pane.is_open and app.threads.root == root, 10)
        await wait_ui(pilot, lambda: [i.key for i in timeline.thread(root).timeline] == replies, 30)
        await wait_ui(pilot, lambda: "an old thread root" in lines(pane.timeline), 30)
        shown = lines(pane.timeline)
        # (The root's summary line quotes the latest reply: the last
        # occurrence of each text is the reply itself.)
        order = [shown.rindex(t) for t in ("an old thread root", "old reply 1", "old reply 3")]
        assert order == sorted(order)
        assert "old reply" not in lines(app.main.timeline)
