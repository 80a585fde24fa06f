"""The feedback line under the timeline: each line belongs to the room where
its action started, and a line about an action under way ends with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.invite import InviteDialog
from tuichat.ui.widgets.status_line import Feedback


def shown(feedback: Feedback) -> str:
    return str(feedback.render()) if feedback.has_class("-visible") else ""


async def test_feedback_belongs_to_its_room_and_ends_with_its_action(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    alice, bob = new_user("alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer = await peer_factory(bob)
    first = await peer.create_room(invite=[alice.user_id], name="First")
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        feedback = app.query_one(Feedback)
        await join_in_ui(pilot, app, peer, first, alice.user_id)
        second = await peer.create_room(invite=[alice.user_id], name="Second")
        await wait_ui(pilot, lambda: app.state.rooms.get(second))
        app.chat.switch_room(second)  # an invite: asks
        await wait_ui(pilot, lambda: isinstance(app.screen, InviteDialog))
        await pilot.press("a")
        await peer.wait_for_member(second, alice.user_id)
        await wait_ui(pilot, lambda: app.state.current_room_id == second)
        # The join is done: its line ("Joining Second…") goes; it stayed,
        # in every room, until something else was said.
        for room in (first, second):
            app.chat.switch_room(room)
            await wait_ui(pilot, lambda: "Joining" not in shown(feedback), 5)

        # A file that is not there: said so, with no retry offered.
        missing = tmp_path / "missing.txt"
        await type_text(pilot, f"/upload {missing}")
        await wait_ui(pilot, lambda: "no such file" in shown(feedback))
        assert str(missing) in shown(feedback) and "again" not in shown(feedback)
        # It belongs to this room.
        app.chat.switch_room(first)
        await pilot.pause()
        assert shown(feedback) == ""
        app.chat.switch_room(second)
        await pilot.pause()
        assert "no such file" in shown(feedback)


async def test_the_retry_line_ends_when_the_messages_are_sent(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    """Ctrl+R's "Sending 1 message(s) again…" goes when the message is sent;
    it stayed until something else was said."""
    from tests.fault_proxy import FaultProxy
    from tuichat.matrix.account.login import login

    alice, bob = new_user("alice"), new_user("bob", "Bob")
    proxy = FaultProxy(synapse.url)
    url = await proxy.start()
    try:
        await login(profile, homeserver=url, user=alice.user_id, password=alice.password)
        peer = await peer_factory(bob)
        room_id = await peer.create_room(invite=[alice.user_id], name="Retry")
        app = TuichatApp(profile, sync_timeout_ms=1000)
        async with app.run_test(size=(120, 36)) as pilot:
            feedback = app.query_one(Feedback)
            await join_in_ui(pilot, app, peer, room_id, alice.user_id)
            proxy.fail("/send/", 1, status=400)  # refused: not retried by itself
            await type_text(pilot, "once more")
            await wait_ui(pilot, lambda: "Message not sent" in shown(feedback), 30)
            said: list[str] = []
            show = feedback.show

            def recording_show(message: Any, **kwargs: Any) -> None:
                said.append(str(message))
                show(message, **kwargs)

            feedback.show = recording_show  # type: ignore[method-assign]
            await pilot.press("ctrl+r")
            assert await peer.wait_for_text(room_id, "once more") == alice.user_id
            await wait_ui(pilot, lambda: shown(feedback) == "", 30)
            assert said == ["Sending 1 message(s) again…"]
    finally:
        await proxy.close()
