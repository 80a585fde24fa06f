"""Polls, stickers and locations with Element's stack: the matrix-js-sdk peer
starts a poll with the SDK's own builder in an encrypted room; tuichat shows
it through the screen, votes with /vote, the peer receives the vote, the
peer's vote and end update the counts in tuichat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.ui.app import TuichatApp
from tuichat.ui.widgets.timeline_view import TimelineView

pytestmark = requires_js_peer


async def test_a_poll_from_element_is_shown_voted_on_counted_and_ended(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Lunch planning")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        await join_in_ui(pilot, app, js, room_id, alice.user_id, 30)
        view = app.query_one(TimelineView)

        poll_id, content = await js.send_poll(room_id, "Lunch?", ["Pizza", "Soup", "Salad"])
        answers = content["org.matrix.msc3381.poll.start"]["answers"]
        await wait_ui(pilot, lambda: any("Poll: Lunch?" in line for line in view.line_texts()), 30)
        poll = next(i for i in app.state.timelines[room_id] if i.event_id == poll_id)
        assert poll.encrypted and poll.poll is not None
        assert [a.text for a in poll.poll.answers] == ["Pizza", "Soup", "Salad"]

        await type_text(pilot, "/vote 2")
        vote = await js.wait_for_event(
            room_id, "org.matrix.msc3381.poll.response", "m.reference", alice.user_id
        )
        assert vote["content"]["org.matrix.msc3381.poll.response"]["answers"] == [answers[1]["id"]]
        assert vote["relation"]["event_id"] == poll_id and vote["encrypted"]

        def lines_with(text: str) -> list[str]:
            return [line for line in view.line_texts() if text in line]

        await wait_ui(pilot, lambda: lines_with("● 2. Soup — 1 vote"), 30)
        await js.vote_poll(room_id, poll_id, [answers[0]["id"]])
        await wait_ui(pilot, lambda: lines_with("1. Pizza — 1 vote"), 30)
        await js.end_poll(room_id, poll_id)
        await wait_ui(pilot, lambda: lines_with("Poll ended: Lunch?"), 30)
        assert lines_with("Final result: 2 votes")

        # A location, a sticker and an unknown event type from Element's stack show too.
        await js.send_event(
            room_id,
            "m.room.message",
            {"msgtype": "m.location", "body": "Office", "geo_uri": "geo:51.5,-0.12"},
        )
        await wait_ui(pilot, lambda: lines_with("[location] Office — geo:51.5,-0.12"), 30)
        await js.send_event(
            room_id,
            "m.sticker",
            {"body": "A cat", "url": "mxc://localhost/cat", "info": {"mimetype": "image/png"}},
        )
        await wait_ui(pilot, lambda: lines_with("[sticker] A cat"), 30)
        sticker = next(i for i in app.state.timelines[room_id] if "[sticker]" in i.body)
        assert sticker.attachment is not None and sticker.attachment.is_image
        # An unknown type is kept, and its line shows with `show_hidden_events`.
        await js.send_event(room_id, "org.example.widget", {"x": 1})
        await wait_ui(
            pilot,
            lambda: any(
                "org.example.widget" in i.body and i.type_only for i in app.state.timelines[room_id]
            ),
            30,
        )
        assert not lines_with("org.example.widget")
        view.set_show_hidden_events(True)
        await wait_ui(pilot, lambda: lines_with("sent an event of type org.example.widget"), 30)


async def test_a_digit_on_a_selected_poll_votes_and_toggles_on_a_multi_choice_poll(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Lunch planning")
    response = "org.matrix.msc3381.poll.response"

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED, 30)
        await join_in_ui(pilot, app, js, room_id, alice.user_id, 30)
        view = app.query_one(TimelineView)

        def lines_with(text: str) -> list[str]:
            return [line for line in view.line_texts() if text in line]

        async def vote(key: str, nth: int) -> list[str]:
            """Press `key` on the selected poll: the answers the peer received."""
            await pilot.press(key)
            sent = await js.wait_for_event(room_id, response, "m.reference", alice.user_id, nth=nth)
            assert sent["encrypted"]
            return list(sent["content"][response]["answers"])

        # A single-choice poll from Element: 2 votes for the second answer.
        poll_id, content = await js.send_poll(room_id, "Lunch?", ["Pizza", "Soup", "Salad"])
        answers = [a["id"] for a in content["org.matrix.msc3381.poll.start"]["answers"]]
        await wait_ui(pilot, lambda: lines_with("Poll: Lunch?"), 30)
        await pilot.press("ctrl+s")
        await wait_ui(pilot, lambda: (i := view.selected_item) is not None and i.poll is not None)
        assert view.selected_item is not None and view.selected_item.event_id == poll_id
        assert await vote("2", 0) == [answers[1]]
        await wait_ui(pilot, lambda: lines_with("● 2. Soup — 1 vote"), 30)

        # A poll taking two answers: each digit toggles that answer in the vote.
        drinks = await js.send_event(
            room_id,
            "org.matrix.msc3381.poll.start",
            {
                "org.matrix.msc3381.poll.start": {
                    "question": {"org.matrix.msc1767.text": "Drinks?"},
                    "kind": "org.matrix.msc3381.poll.disclosed",
                    "max_selections": 2,
                    "answers": [
                        {"id": "tea", "org.matrix.msc1767.text": "Tea"},
                        {"id": "coffee", "org.matrix.msc1767.text": "Coffee"},
                        {"id": "juice", "org.matrix.msc1767.text": "Juice"},
                    ],
                },
                "org.matrix.msc1767.text": "Drinks?\n1. Tea\n2. Coffee\n3. Juice",
            },
        )
        await wait_ui(pilot, lambda: lines_with("Poll: Drinks?"), 30)
        await pilot.press("escape", "ctrl+s")
        await wait_ui(pilot, lambda: (i := view.selected_item) is not None and i.event_id == drinks)
        assert await vote("1", 1) == ["tea"]
        await wait_ui(pilot, lambda: lines_with("● 1. Tea — 1 vote"), 30)
        assert await vote("3", 2) == ["tea", "juice"]
        await wait_ui(pilot, lambda: lines_with("● 3. Juice — 1 vote"), 30)
        assert await vote("1", 3) == ["juice"]
        await wait_ui(pilot, lambda: lines_with("○ 1. Tea — 0 votes"), 30)
        assert lines_with("● 3. Juice — 1 vote")
        # The first poll kept its vote.
        assert lines_with("● 2. Soup — 1 vote")
