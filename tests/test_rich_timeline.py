"""The rich timeline end to end: the TUI against the real Synapse with a nio
peer in an encrypted room. Each feature is checked on the wire (what the
peer decrypted) and on screen (what the timeline shows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nio import ReceiptEvent, TypingNoticeEvent
from textual.pilot import Pilot

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.draft import DraftKind
from tuichat.model.events import ConnectionState
from tuichat.model.items import ItemKind
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.confirm import ConfirmDialog
from tuichat.ui.screens.reaction_picker import ReactionPicker
from tuichat.ui.widgets.composer import Composer
from tuichat.ui.widgets.timeline_view import TimelineView
from tuichat.ui.widgets.typing_line import TypingLine


async def _open_shared_room(
    pilot: Pilot[Any], app: TuichatApp, peer: NioPeer, alice_id: str
) -> str:
    room_id = await peer.create_room(invite=[alice_id], encrypted=True, name="Rich room")
    await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
    await join_in_ui(pilot, app, peer, room_id, alice_id)
    return room_id


def _shown(app: TuichatApp) -> str:
    return "\n".join(app.query_one(TimelineView).line_texts())


def _content(peer: NioPeer, room_id: str, test: Callable[[dict[str, Any]], bool]) -> Any:
    def find() -> dict[str, Any] | None:
        event = peer.find_event(room_id, lambda e: test(e.get("content") or {}))
        return event

    return find


async def test_sending_markdown_mentions_replies_edits_reactions_and_deletions(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        room_id = await _open_shared_room(pilot, app, peer, alice.user_id)

        # Markdown: a formatted body beside the plain one.
        await type_text(pilot, "**hello** `world`")
        sent = await wait_until(
            _content(peer, room_id, lambda c: c.get("body") == "**hello** `world`")
        )
        assert sent["type"] == "m.room.message"
        assert sent["content"]["format"] == "org.matrix.custom.html"
        assert sent["content"]["formatted_body"] == "<strong>hello</strong> <code>world</code>"
        await wait_ui(pilot, lambda: "hello world" in _shown(app))

        # A mention completed with Tab.
        await wait_ui(pilot, lambda: any(n == "Bob" for n, _ in app.main.composer.members))
        composer = app.query_one(Composer)
        composer.focus()
        composer.insert("@Bo")
        await pilot.press("tab")
        assert composer.text == "Bob"
        composer.insert(": lunch?")
        await pilot.press("enter")
        mention = await wait_until(
            _content(peer, room_id, lambda c: c.get("body") == "Bob: lunch?")
        )
        assert mention["content"]["m.mentions"] == {"user_ids": [bob.user_id]}
        assert (
            f'<a href="https://matrix.to/#/{bob.user_id}">Bob</a>'
            in (mention["content"]["formatted_body"])
        )

        # A reply to the peer's message, chosen in select mode.
        question_id = await peer.send_text(room_id, "which place?")
        await wait_ui(pilot, lambda: "which place?" in _shown(app))
        await pilot.press("ctrl+s")
        view = app.query_one(TimelineView)
        assert view.selected_item is not None and view.selected_item.body == "which place?"
        await pilot.press("r")
        assert app.main.draft_bar.has_class("-visible")
        await type_text(pilot, "the usual one")
        reply = await wait_until(
            _content(peer, room_id, lambda c: c.get("body") == "the usual one")
        )
        assert reply["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": question_id}}
        assert reply["content"]["m.mentions"] == {"user_ids": [bob.user_id]}
        await wait_ui(pilot, lambda: "↳ Bob: which place?" in _shown(app))
        reply_id = reply["event_id"]

        # An edit of our own reply.
        await wait_ui(pilot, lambda: app.state.timelines[room_id].get(reply_id) is not None)
        await pilot.press("ctrl+s", "e")
        assert composer.text == "the usual one"
        composer.clear()
        await type_text(pilot, "the *new* one")
        edit = await wait_until(
            _content(
                peer, room_id, lambda c: c.get("m.relates_to", {}).get("rel_type") == "m.replace"
            )
        )
        assert edit["content"]["m.relates_to"]["event_id"] == reply_id
        assert edit["content"]["m.new_content"]["body"] == "the *new* one"
        assert edit["content"]["m.new_content"]["formatted_body"] == "the <em>new</em> one"
        await wait_ui(pilot, lambda: "the new one  (edited)" in _shown(app))
        assert "the usual one" not in _shown(app)

        # A reaction to the peer's question, then the same again takes it back.
        await pilot.press("ctrl+s", "up", "plus")
        await wait_ui(pilot, lambda: isinstance(app.screen, ReactionPicker))
        await pilot.press("1")
        reaction = await wait_until(
            lambda: peer.find_event(room_id, lambda e: e.get("type") == "m.reaction")
        )
        assert reaction["content"]["m.relates_to"] == {
            "rel_type": "m.annotation",
            "event_id": question_id,
            "key": "👍",
        }
        await wait_ui(pilot, lambda: "👍 1" in _shown(app))
        # The picker closed; the question is still selected.
        assert view.selected_item is not None and view.selected_item.body == "which place?"
        await pilot.press("plus")
        await wait_ui(pilot, lambda: isinstance(app.screen, ReactionPicker))
        await pilot.press("1")
        await wait_until(
            lambda: peer.find_event(
                room_id,
                lambda e: (
                    e.get("type") == "m.room.redaction"
                    and reaction["event_id"]
                    in (e.get("redacts"), e.get("content", {}).get("redacts"))
                ),
            )
        )
        await wait_ui(pilot, lambda: "👍" not in _shown(app))

        # Deleting our reply after confirming.
        view.focus()
        view.select_last()
        await pilot.press("d")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(
            lambda: peer.find_event(
                room_id,
                lambda e: (
                    e.get("type") == "m.room.redaction"
                    and reply_id in (e.get("redacts"), e.get("content", {}).get("redacts"))
                ),
            )
        )
        await wait_ui(
            pilot, lambda: app.state.timelines[room_id].get(reply_id).kind is ItemKind.REDACTED
        )
        assert "message deleted" in _shown(app)
        assert "the new one" not in _shown(app)


async def test_what_the_peer_does_shows_replies_edits_reactions_typing_and_receipts(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        room_id = await _open_shared_room(pilot, app, peer, alice.user_id)
        await type_text(pilot, "are you there?")
        ours = await wait_until(
            _content(peer, room_id, lambda c: c.get("body") == "are you there?")
        )

        first = await peer.send_text(room_id, "yes, here")
        await peer.send_event(
            room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "* yes, right here",
                "m.new_content": {"msgtype": "m.text", "body": "yes, right here"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": first},
            },
        )
        await peer.send_event(
            room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "> <@alice> are you there?\n\nI was waiting",
                "format": "org.matrix.custom.html",
                "formatted_body": "<mx-reply><blockquote>old</blockquote></mx-reply>I was "
                "<b>waiting</b>",
                "m.relates_to": {"m.in_reply_to": {"event_id": ours["event_id"]}},
            },
        )
        await peer.send_event(
            room_id,
            "m.reaction",
            {
                "m.relates_to": {
                    "rel_type": "m.annotation",
                    "event_id": ours["event_id"],
                    "key": "❤️",
                }
            },
        )
        await wait_ui(pilot, lambda: "yes, right here  (edited)" in _shown(app))
        await wait_ui(pilot, lambda: "❤️ 1" in _shown(app))
        shown = _shown(app)
        assert "↳ Alice: are you there?" in shown
        assert "I was waiting" in shown and "mx-reply" not in shown and "old" not in shown
        assert "> <@alice>" not in shown

        # The peer types: the line under the timeline says so.
        await peer.client.room_typing(room_id, True, timeout=30000)
        typing = app.query_one(TypingLine)
        await wait_ui(pilot, lambda: "Bob is typing…" in str(typing.render()))
        await peer.client.room_typing(room_id, False)
        await wait_ui(pilot, lambda: "typing" not in str(typing.render()))

        # We type: the peer hears of it.
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press("h", "m")
        await wait_until(
            lambda: any(
                room == room_id
                and isinstance(event, TypingNoticeEvent)
                and alice.user_id in event.users
                for room, event in peer.ephemeral
            )
        )
        composer.clear()

        # The peer reads our message: its receipt shows there.
        await peer.client.room_read_markers(room_id, ours["event_id"], ours["event_id"])
        await wait_ui(pilot, lambda: "✓ Bob" in _shown(app))
        # We read the peer's messages: our receipt reaches it.
        last = app.state.timelines[room_id].last_event_id
        await wait_until(
            lambda: any(
                room == room_id
                and isinstance(event, ReceiptEvent)
                and any(r.user_id == alice.user_id and r.event_id == last for r in event.receipts)
                for room, event in peer.ephemeral
            )
        )

    # After a restart, before any sync, the cached receipt is still shown.
    again = TuichatApp(profile, connect=False)
    async with again.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: again.state.rooms.get(room_id))
        again.chat.switch_room(room_id)
        await wait_ui(pilot, lambda: "✓ Bob" in _shown(again))


async def test_up_in_an_empty_composer_edits_your_last_message_in_this_room(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """Element's habit: Up edits your newest message in the room shown (not
    one sent in another room), and Enter sends an edit, not a duplicate."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        room_id = await _open_shared_room(pilot, app, peer, alice.user_id)
        await type_text(pilot, "see you at noom")
        ours = await wait_until(
            _content(peer, room_id, lambda c: c.get("body") == "see you at noom")
        )
        await peer.send_text(room_id, "ok")
        other = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Other")
        await join_in_ui(pilot, app, peer, other, alice.user_id)
        await type_text(pilot, "elsewhere")
        await wait_until(_content(peer, other, lambda c: c.get("body") == "elsewhere"))
        await wait_ui(pilot, lambda: app.state.timelines[other].last_event_id is not None)
        while app.state.current_room_id != room_id:
            await pilot.press("alt+down")
        composer = app.query_one(Composer)
        composer.focus()
        await pilot.press("up")
        await wait_ui(pilot, lambda: app.state.draft is not None)
        assert app.state.draft is not None and app.state.draft.kind is DraftKind.EDIT
        assert app.state.draft.item.event_id == ours["event_id"]
        assert composer.text == "see you at noom"
        await pilot.press("backspace", "n")
        await pilot.press("enter")
        edit = await wait_until(
            _content(
                peer,
                room_id,
                lambda c: (c.get("m.new_content") or {}).get("body") == "see you at noon",
            )
        )
        assert edit["content"]["m.relates_to"] == {
            "rel_type": "m.replace",
            "event_id": ours["event_id"],
        }
        await wait_ui(pilot, lambda: "see you at noon  (edited)" in _shown(app))
        bodies = [
            (e.get("content") or {}).get("body")
            for room, e in peer.events
            if room == room_id and (e.get("content") or {}).get("m.relates_to") is None
        ]
        assert bodies.count("see you at noom") == 1 and "see you at noon" not in bodies


async def test_a_peer_reading_message_after_message_is_shown_once_at_the_last(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """Bob reads our messages as they come: his receipt moves down with him,
    "✓ Bob" is under the newest message he read, not under each one."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        room_id = await _open_shared_room(pilot, app, peer, alice.user_id)
        for n in range(4):
            await type_text(pilot, f"note {n}")
            sent = await wait_until(
                _content(peer, room_id, lambda c, n=n: c.get("body") == f"note {n}")
            )
            await peer.client.room_read_markers(room_id, sent["event_id"], sent["event_id"])
            # Each receipt arrives (and is shown) before the next is sent.
            await wait_ui(
                pilot,
                lambda sent=sent: (
                    (item := app.state.timelines[room_id].get(sent["event_id"])) is not None
                    and item.read_by == ("Bob",)
                ),
            )
            await pilot.pause()
        lines = app.query_one(TimelineView).line_texts()
        receipts = [number for number, line in enumerate(lines) if "✓ Bob" in line]
        assert len(receipts) == 1, lines
        assert "note 3" in lines[receipts[0] - 1]


async def test_a_verification_request_we_send_shows_as_a_short_line_not_its_fallback(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """/verify in a room shared with one person sends an in-room request;
    our own timeline says we sent it, as Element does, and does not show
    the fallback text meant for clients without in-room verification."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        room_id = await _open_shared_room(pilot, app, peer, alice.user_id)
        await type_text(pilot, f"/verify {bob.user_id}")
        request = await wait_until(
            lambda: peer.find_event(
                room_id,
                lambda e: (e.get("content") or {}).get("msgtype") == "m.key.verification.request",
            )
        )
        await wait_ui(
            pilot, lambda: app.state.timelines[room_id].get(request["event_id"]) is not None
        )
        shown = _shown(app)
        assert "You sent a verification request to Bob" in shown
        assert "in-room verification" not in shown


@requires_js_peer
async def test_replies_edits_and_reactions_with_the_matrix_js_sdk_peer(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
) -> None:
    """Element's stack sends a reply, an edit and a reaction that tuichat
    shows, and reads tuichat's as the same relations."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    js: JsPeer = await js_peer_factory(bob)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        room_id = await js.create_room(invite=[alice.user_id], name="With Element's stack")
        await join_in_ui(pilot, app, js, room_id, alice.user_id, timeout=30)

        await type_text(pilot, "shall we **ship** it?")
        ours = await js.wait_for_message(room_id, "shall we **ship** it?")
        ours_id = ours["event_id"]

        js_message = await js.send(room_id, "almost ready")
        await js.send_event(
            room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "* ready now",
                "m.new_content": {"msgtype": "m.text", "body": "ready now"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": js_message},
            },
        )
        await js.send_event(
            room_id,
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": "yes, ship it",
                "m.relates_to": {"m.in_reply_to": {"event_id": ours_id}},
            },
        )
        await js.send_event(
            room_id,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": ours_id, "key": "🚀"}},
        )
        await wait_ui(pilot, lambda: "🚀 1" in _shown(app), timeout=30)
        await wait_ui(pilot, lambda: "ready now  (edited)" in _shown(app), timeout=30)
        shown = _shown(app)
        assert "almost ready" not in shown
        assert "↳ Alice: shall we ship it?" in shown
        assert "yes, ship it" in shown

        # tuichat's reply, edit and reaction, as Element's stack reads them.
        view = app.query_one(TimelineView)
        await pilot.press("ctrl+s")
        while view.selected_item is not None and view.selected_item.body != "ready now":
            await pilot.press("up")
        await pilot.press("r")
        await type_text(pilot, "great")
        reply = await js.wait_for_event(
            room_id, "m.room.message", "m.in_reply_to", sender=alice.user_id
        )
        assert reply["encrypted"] and reply["relation"]["m.in_reply_to"]["event_id"] == js_message
        assert reply["content"]["body"] == "great"

        await wait_ui(
            pilot,
            lambda: any(i.body == "great" and i.event_id for i in app.state.timelines[room_id]),
        )
        await pilot.press("ctrl+s", "e")
        app.query_one(Composer).clear()
        await type_text(pilot, "great!")
        edit = await js.wait_for_event(room_id, "m.room.message", "m.replace", alice.user_id)
        assert edit["relation"]["event_id"] == reply["event_id"]
        assert edit["content"]["m.new_content"]["body"] == "great!"

        await pilot.press("ctrl+s", "up", "plus")
        await wait_ui(pilot, lambda: isinstance(app.screen, ReactionPicker))
        await pilot.press("4")
        reaction = await js.wait_for_event(room_id, "m.reaction", "m.annotation", alice.user_id)
        assert reaction["relation"]["key"] == "🎉"


async def test_a_reply_whose_parent_is_not_loaded_fetches_it(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=False, name="Long room")
    original = await peer.send_text(room_id, "the very first question")
    for number in range(60):
        await peer.send_text(room_id, f"filler {number}")
    await peer.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "answering the first question",
            "m.relates_to": {"m.in_reply_to": {"event_id": original}},
        },
    )
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id))
        await type_text(pilot, f"/join {room_id}")
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
        await wait_ui(pilot, lambda: "answering the first question" in _shown(app))
        # Only the last page came with the join: the parent is fetched.
        assert app.state.timelines[room_id].get(original) is None
        await wait_ui(pilot, lambda: "↳ Bob: the very first question" in _shown(app))
