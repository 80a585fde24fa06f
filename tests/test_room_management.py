"""Room management: the power-level checks and the command parsing without a
terminal, then the commands against the real Synapse with a nio peer that
sees each change, and the confirmations through the screen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import UserFactory, log_in, service_and_peer_in_room
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_direct_messages import _state
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model import commands
from tuichat.model.events import Notice
from tuichat.model.power_levels import (
    CREATOR_LEVEL,
    PowerLevels,
    check_member_action,
    check_set_level,
    check_state,
    with_user_level,
)

# -- power levels, without a terminal -----------------------------------------------------

LEVELS = PowerLevels(
    {
        "users": {"@admin:x": 100, "@mod:x": 50},
        "users_default": 0,
        "events": {"m.room.name": 50, "m.room.power_levels": 100},
        "state_default": 50,
        "kick": 50,
        "ban": 50,
        "invite": 0,
    }
)


def test_levels_follow_the_event_and_the_spec_defaults() -> None:
    assert LEVELS.user_level("@admin:x") == 100
    assert LEVELS.user_level("@someone:x") == 0
    assert LEVELS.state_level("m.room.topic") == 50
    assert LEVELS.state_level("m.room.power_levels") == 100
    # No event: the creator has 100, everyone else 0, everything is open.
    bare = PowerLevels(None, creator="@c:x")
    assert bare.user_level("@c:x") == 100 and bare.user_level("@d:x") == 0
    assert check_state(bare, "@d:x", "m.room.topic") is None
    # Missing keys take the spec's defaults; a non-integer is not trusted.
    odd = PowerLevels({"users": {"@a:x": "100"}, "kick": True})
    assert odd.user_level("@a:x") == 0 and odd.action_level("kick") == 50


def test_checks_say_why_in_a_sentence() -> None:
    assert check_state(LEVELS, "@mod:x", "m.room.topic") is None
    assert check_state(LEVELS, "@someone:x", "m.room.topic") == (
        "You cannot change the topic here: that needs power level 50, you have 0."
    )
    assert check_member_action(LEVELS, "@mod:x", "kick", "@someone:x") is None
    assert "not below yours" in (check_member_action(LEVELS, "@mod:x", "ban", "@admin:x") or "")
    assert "needs power level 50" in (
        check_member_action(LEVELS, "@someone:x", "kick", "@mod:x") or ""
    )
    assert check_member_action(LEVELS, "@someone:x", "invite", "@new:x") is None
    # Power levels: only who may send the event, never above your own level,
    # never someone at or above you.
    assert "needs power level 100" in (check_set_level(LEVELS, "@mod:x", "@someone:x", 10) or "")
    assert check_set_level(LEVELS, "@admin:x", "@someone:x", 50) is None
    assert "above your own" in (check_set_level(LEVELS, "@admin:x", "@someone:x", 101) or "")


def test_setting_a_level_keeps_the_rest_and_the_default_removes_the_entry() -> None:
    content = LEVELS.content
    assert content is not None
    raised = with_user_level(content, "@someone:x", 50)
    assert raised["users"]["@someone:x"] == 50 and raised["kick"] == 50
    lowered = with_user_level(raised, "@someone:x", 0)
    assert "@someone:x" not in lowered["users"]
    assert content["users"] == {"@admin:x": 100, "@mod:x": 50}  # not changed in place


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("/create Book club", ("private", "Book club")),
        ("/create --public Town square @a:x @b:y", ("public", "Town square", "@a:x", "@b:y")),
        ("/kick @a:x spamming links", ("@a:x", "spamming links")),
        ("/ban @a:x", ("@a:x",)),
        ("/op @a:x 50", ("@a:x", "50")),
        ("/forget", ()),
        ("/forget !abc:x", ("!abc:x",)),
        ("/nick Ann", ("global", "Ann")),
        ("/nick --room Ann B", ("room", "Ann B")),
        ("/topic Read a book", ("Read a book",)),
        ("/encrypt", ()),
    ],
)
def test_room_commands_parse(text: str, args: tuple[str, ...]) -> None:
    parsed = commands.parse(text)
    assert isinstance(parsed, commands.Command), parsed
    assert parsed.args == args


@pytest.mark.parametrize(
    "text",
    ["/create", "/create --public", "/create @a:x", "/op @a:x mod", "/op a 50", "/kick bob",
     "/nick --room", "/encrypt now", "/unban", "/forget room"],
)  # fmt: skip
def test_malformed_room_commands_say_their_usage(text: str) -> None:
    parsed = commands.parse(text)
    assert isinstance(parsed, commands.CommandError) and "Usage:" in parsed.message


# -- against Synapse ------------------------------------------------------------------------


def _notices(recorder: Recorder) -> list[Notice]:
    return [e for e in recorder.events if isinstance(e, Notice)]


async def _notice(recorder: Recorder, text: str) -> Notice:
    return await wait_until(lambda: next((n for n in _notices(recorder) if text in n.text), None))


async def test_created_room_is_managed_and_the_peer_sees_every_change(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice", "Alice"), new_user("bob", "Bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    await service.first_sync_done.wait()
    peer: NioPeer = await peer_factory(bob)

    room_id = await service.create_named_room("Book club", invite=(bob.user_id,))
    assert room_id is not None
    # Private rooms are encrypted from the start and invite-only, as Element makes them.
    assert _state(synapse, alice, room_id, "m.room.encryption")["algorithm"]
    assert _state(synapse, alice, room_id, "m.room.join_rules")["join_rule"] == "invite"
    await wait_until(lambda: room_id in peer.client.invited_rooms, 30)
    await peer.join(room_id)
    await wait_until(lambda: service.states[room_id].membership_of(bob.user_id) == "join")

    assert await service.set_topic(room_id, "Chapter one"), _notices(recorder)
    assert await service.set_room_name(room_id, "Reading club")
    await wait_until(lambda: peer.client.rooms[room_id].topic == "Chapter one")
    await wait_until(lambda: peer.client.rooms[room_id].name == "Reading club")

    assert await service.set_power_level(room_id, bob.user_id, 50)
    await wait_until(
        lambda: peer.client.rooms[room_id].power_levels.get_user_level(bob.user_id) == 50
    )
    assert await service.invite(room_id, carol.user_id)
    assert await service.kick(room_id, bob.user_id, "testing")
    assert _state(synapse, alice, room_id, "m.room.member", bob.user_id)["membership"] == "leave"
    assert await service.ban(room_id, bob.user_id, "testing more")
    assert _state(synapse, alice, room_id, "m.room.member", bob.user_id)["membership"] == "ban"
    assert await service.unban(room_id, bob.user_id), _notices(recorder)[-1]
    assert _state(synapse, alice, room_id, "m.room.member", bob.user_id)["membership"] == "leave"

    assert await service.set_display_name("Alice in books", room_id)
    assert _state(synapse, alice, room_id, "m.room.member", alice.user_id)["displayname"] == (
        "Alice in books"
    )
    assert await service.set_display_name("Alice A.")
    status, body = synapse._request(
        "GET", f"/_matrix/client/v3/profile/{alice.user_id}/displayname"
    )
    assert status == 200 and body["displayname"] == "Alice A."

    # A public room: no encryption until /encrypt, then encrypted for good.
    public = await service.create_named_room("Town square", public=True)
    assert public is not None
    assert _state(synapse, alice, public, "m.room.join_rules")["join_rule"] == "public"
    _status, directory = synapse._request(
        "GET", "/_matrix/client/v3/publicRooms", token=alice.access_token
    )
    assert public in [r["room_id"] for r in directory["chunk"]]
    await wait_until(lambda: public in service.states)
    assert not service.states[public].encrypted
    assert await service.enable_encryption(public)
    await wait_until(lambda: service.states[public].encrypted)

    # Leaving, then forgetting the room left last.
    assert await service.leave(public)
    await wait_until(lambda: public not in service.states)
    assert await service.forget(None)
    await _notice(recorder, "Room forgotten.")


async def test_refusals_are_told_as_sentences_locally_first_then_from_the_server(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=True
    )
    topic_before = peer.client.rooms[room_id].topic
    # Alice has level 0 in Bob's room: told before anything is sent.
    assert not await service.set_topic(room_id, "mine now")
    refused = await _notice(recorder, "You cannot change the topic here")
    assert refused.error and refused.text.endswith("you have 0.")
    assert not await service.kick(room_id, peer.user_id)
    await _notice(recorder, "You cannot kick people here: that needs power level 50")
    assert not await service.set_power_level(room_id, service.user_id, 100)
    await _notice(recorder, "You cannot change power levels here")
    assert peer.client.rooms[room_id].topic == topic_before

    # Allowed here, refused there: the server's reason, in a sentence.
    levels = _state(synapse, peer.user, room_id, "m.room.power_levels")
    levels["users"][service.user_id] = 50
    await peer.client.room_put_state(room_id, "m.room.power_levels", levels)
    await wait_until(
        lambda: service.parts.moderation.levels(room_id).user_level(service.user_id) == 50
    )
    assert not await service.kick(room_id, "@nobody:localhost"), _notices(recorder)[-1]
    server = await _notice(recorder, "Could not kick @nobody:localhost")
    assert server.error and server.text.endswith(".")

    # /forget in a room you are still in says what to do first.
    assert not await service.forget(room_id)
    await _notice(recorder, "Leave the room first")


# -- through the screen -------------------------------------------------------------------


async def test_encrypt_and_leave_ask_first_and_refusals_show_in_the_status_line(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    from tests.test_ui_chat import join_in_ui, type_text, wait_ui
    from tuichat.model.events import ConnectionState
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.confirm import ConfirmDialog
    from tuichat.ui.widgets.status_line import Feedback

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=False, name="Plain")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        feedback = app.query_one(Feedback)

        await type_text(pilot, "/topic not mine")
        await wait_ui(pilot, lambda: "You cannot change the topic" in str(feedback.render()))
        assert feedback.has_class("-error")

        # Bob makes Alice an admin; /encrypt asks, "n" leaves the room as it was.
        levels = _state(synapse, bob, room_id, "m.room.power_levels")
        levels["users"][alice.user_id] = 100
        await peer.client.room_put_state(room_id, "m.room.power_levels", levels)
        service = app.service
        assert service is not None
        await wait_ui(
            pilot,
            lambda: service.parts.moderation.levels(room_id).user_level(alice.user_id) == 100,
        )
        await type_text(pilot, "/encrypt")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("n")
        await wait_ui(pilot, lambda: not isinstance(app.screen, ConfirmDialog))
        await type_text(pilot, "/encrypt")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(lambda: peer.client.rooms[room_id].encrypted)

        await type_text(pilot, "/leave")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_ui(pilot, lambda: room_id not in app.state.rooms)
        await type_text(pilot, "/forget")
        await wait_ui(pilot, lambda: "Room forgotten." in str(feedback.render()))


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("/directory", ("", "")),
        ("/directory books", ("", "books")),
        ("/directory matrix.org", ("matrix.org", "")),
        ("/directory example.org:8448 book swap", ("example.org:8448", "book swap")),
    ],
)
def test_directory_arguments(text: str, args: tuple[str, ...]) -> None:
    parsed = commands.parse(text)
    assert isinstance(parsed, commands.Command) and parsed.args == args


async def test_the_directory_finds_a_public_room_and_joins_it_through_the_screen(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.model.events import ConnectionState
    from tuichat.model.rooms import Membership
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.space_browser import SpaceBrowser

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    from nio.api import RoomPreset, RoomVisibility

    created = await peer.client.room_create(
        visibility=RoomVisibility.public, name="Book swap", preset=RoomPreset.public_chat
    )
    room_id = created.room_id
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await type_text(pilot, "/directory localhost swap")
        browser = await wait_ui(pilot, lambda: isinstance(app.screen, SpaceBrowser) and app.screen)
        assert [r.name for r in browser.rooms] == ["Book swap"]
        assert not browser.rooms[0].joined and browser.rooms[0].members == 1
        await pilot.press("enter")
        await wait_ui(
            pilot, lambda: (r := app.state.rooms.get(room_id)) and r.membership is Membership.JOIN
        )
        await wait_ui(pilot, lambda: app.state.current_room_id == room_id)


async def test_room_settings_edit_what_the_power_level_allows(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    from textual.widgets import Button, Input, Select

    from tests.test_ui_chat import join_in_ui, type_text, wait_ui
    from tuichat.model.events import ConnectionState
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.room_settings import RoomSettingsDialog

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Bob's room")

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 50)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        await type_text(pilot, "/settings")
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, RoomSettingsDialog) and app.screen
        )
        # Level 0 in Bob's room: everything read-only, Bob listed at 100.
        assert dialog.query_one("#topic", Input).disabled
        assert dialog.query_one("#save", Button).disabled
        # Bob created it: in room version 12 a creator outranks every level.
        assert (bob.user_id, "Bob", CREATOR_LEVEL) in list(dialog.view.members)
        await pilot.press("escape")

        levels = _state(synapse, bob, room_id, "m.room.power_levels")
        levels["users"][alice.user_id] = 100
        await peer.client.room_put_state(room_id, "m.room.power_levels", levels)
        service = app.service
        assert service is not None
        await wait_ui(pilot, lambda: service.power_levels(room_id).user_level(alice.user_id) == 100)
        await type_text(pilot, "/settings")
        dialog = await wait_ui(
            pilot, lambda: isinstance(app.screen, RoomSettingsDialog) and app.screen
        )
        topic = dialog.query_one("#topic", Input)
        assert not topic.disabled
        topic.value = "Set in the settings"
        dialog.query_one("#join_rule", Select).value = "public"
        dialog.query_one("#save", Button).press()
        await wait_until(lambda: peer.client.rooms[room_id].topic == "Set in the settings")
        await wait_until(
            lambda: _state(synapse, bob, room_id, "m.room.join_rules")["join_rule"] == "public"
        )


async def test_ignore_report_and_notice(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=True
    )
    event_id = await peer.send_text(room_id, "rude words")
    await wait_until(lambda: recorder.text_from(room_id, "rude words"))
    assert await service.report(room_id, event_id, "spam")
    await _notice(recorder, "Reported to your server's administrators.")

    assert await service.set_ignored(peer.user_id, True)
    _status, ignored = synapse._request(
        "GET",
        f"/_matrix/client/v3/user/{service.user_id}/account_data/m.ignored_user_list",
        token=service.session.access_token,
    )
    assert peer.user_id in ignored["ignored_users"]
    await peer.send_text(room_id, "more rude words")
    service.send_notice(room_id, "a notice after")
    await wait_until(
        lambda: any(
            r == room_id and e.get("content", {}).get("msgtype") == "m.notice"
            for r, e in peer.events
        )
    )
    await wait_until(lambda: any(i.body == "a notice after" for i in recorder.items(room_id)))
    assert recorder.text_from(room_id, "more rude words") is None  # hidden by the server
    notice = next(i for i in recorder.items(room_id) if i.body == "a notice after")
    assert notice.kind.value == "notice"

    assert await service.set_ignored(peer.user_id, False)
    await peer.send_text(room_id, "sorry")
    await wait_until(lambda: recorder.text_from(room_id, "sorry"), 30)
    assert not await service.set_ignored(service.user_id, True)


async def test_pin_list_and_unpin_through_the_screen(
    synapse: LocalSynapse, new_user: UserFactory, profile: Profile
) -> None:
    from tests.test_ui_chat import type_text, wait_ui
    from tuichat.model.events import ConnectionState
    from tuichat.model.items import SendState
    from tuichat.ui.app import TuichatApp
    from tuichat.ui.screens.pinned import PinnedDialog
    from tuichat.ui.widgets.room_header import RoomHeader

    alice = new_user("alice", "Alice")
    await log_in(synapse, profile, alice)
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await type_text(pilot, "/create Notes")
        await wait_ui(pilot, lambda: app.state.current_summary is not None, 30)
        room_id = app.state.current_room_id
        assert room_id is not None
        await type_text(pilot, "remember the milk")
        await wait_ui(
            pilot,
            lambda: any(
                i.body == "remember the milk" and i.send_state is SendState.SENT
                for i in app.state.timelines[room_id]
            ),
        )
        await pilot.press("ctrl+s")
        await wait_ui(pilot, lambda: app.chat.main.timeline.selected_item is not None)
        await type_text(pilot, "/pin")
        header = app.query_one(RoomHeader)
        await wait_ui(pilot, lambda: "📌 1 pinned" in header.render().plain, 30)
        await type_text(pilot, "/pins")
        dialog = await wait_ui(pilot, lambda: isinstance(app.screen, PinnedDialog) and app.screen)
        assert dialog.pins == [("Alice", "remember the milk")]
        await pilot.press("escape")
        await pilot.press("ctrl+s")
        await wait_ui(pilot, lambda: app.chat.main.timeline.selected_item is not None)
        await type_text(pilot, "/unpin")
        await wait_ui(pilot, lambda: "pinned" not in header.render().plain, 30)
