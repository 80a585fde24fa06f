"""The Search view through the screen (issue 24): Ctrl+F and /search, the
results with their matches marked, and Enter going to a message far back
in its room's history, loaded back to it, its words still marked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.widgets import Input, OptionList

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import wait_until
from tests.recorder import Recorder, ServiceFactory
from tests.test_ui_chat import type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.search_query import parse_query
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.search import MATCH_STYLE, SearchScreen
from tuichat.ui.widgets.timeline_view import TimelineView

pytestmark = requires_js_peer

FILLER = 160  # messages after the one searched for: several history pages
LATER = 80  # messages sent while tuichat is closed: more than a sync brings


async def test_search_view_goes_to_a_message_far_back_and_keeps_it_marked(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Burrow")
    await wait_until(lambda: room_id in recorder.rooms(), 30)
    assert await service.join(room_id)
    await js.wait_for_member(room_id, alice.user_id)
    await wait_until(lambda: service.states[room_id].encrypted, 30)
    target = await js.send(room_id, "the Capybara sleeps far back")
    for number in range(FILLER):
        await js.send(room_id, f"filler line {number}")
    await wait_until(lambda: recorder.text_from(room_id, f"filler line {FILLER - 1}"), 60)
    # The server's /context around it, decrypted (what a result further
    # back than the history loaded is shown with).
    around = await service.event_context(room_id, target)
    assert [i.body for i in around if i.event_id == target] == ["the Capybara sleeps far back"]
    assert len(around) > 10
    await service.stop()

    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_ui(pilot, lambda: app.state.rooms.get(room_id))
        app.chat.switch_room(room_id)
        await wait_ui(pilot, lambda: app.service is not None and app.service.synced_once)
        timeline = app.state.timeline(room_id)
        assert all(item.event_id != target for item in timeline), "not far back"

        # Ctrl+F opens the view; Escape closes it.
        await pilot.press("ctrl+f")
        await wait_ui(pilot, lambda: isinstance(app.screen, SearchScreen))
        await pilot.press("escape")
        await wait_ui(pilot, lambda: not isinstance(app.screen, SearchScreen))

        await type_text(pilot, "/search capy")
        await wait_ui(pilot, lambda: isinstance(app.screen, SearchScreen))
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await wait_ui(pilot, lambda: screen.results)
        assert [hit.event_id for hit in screen.results] == [target]
        assert screen.query_one(Input).value == "capy"
        options = screen.query_one(OptionList)
        prompt = options.get_option_at_index(0).prompt
        marked = [
            str(prompt)[span.start : span.end] for span in prompt.spans if span.style == MATCH_STYLE
        ]
        assert marked == ["Capybara"]
        assert "Burrow" in str(prompt) and "Bob" in str(prompt)

        await pilot.press("enter")
        view = app.query_one(TimelineView)
        await wait_ui(
            pilot,
            lambda: (item := view.selected_item) is not None and item.event_id == target,
            60,
        )
        assert app.state.current_room_id == room_id
        await pilot.pause()
        # The match stays marked in the timeline: its words drawn with the mark.
        strips = view._render_at(view._index_of(target))  # type: ignore[arg-type]
        marked_words = [
            segment.text
            for strip in strips
            for segment in strip
            if segment.style is not None and segment.style.reverse and segment.style.bold
        ]
        assert marked_words == ["Capybara"]
        assert any("the Capybara sleeps far back" in line for line in view.line_texts())


async def test_history_missed_offline_is_fetched_and_indexed_when_the_setting_asks(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    """Messages sent while tuichat was closed, more than a sync brings (a
    gap): `fetch_history` fetches the older ones from the server, caches
    and indexes them."""
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Archive")
    await wait_until(lambda: room_id in recorder.rooms(), 30)
    assert await service.join(room_id)
    await js.wait_for_member(room_id, alice.user_id)
    await wait_until(lambda: service.states[room_id].encrypted, 30)
    await service.stop()

    target = await js.send(room_id, "an old Tapir story")  # tuichat is closed
    for number in range(LATER):
        await js.send(room_id, f"later line {number}")

    recorder = Recorder()
    service = await start_service(profile, recorder)
    await wait_until(lambda: recorder.text_from(room_id, f"later line {LATER - 1}"), 60)
    await service.cache.flushed()
    assert service.cache.load_event(room_id, target) is None  # in the gap
    search = service.parts.search
    assert (await service.search(parse_query("tapir"), room_id)).hits == ()
    service.index_history(fetch_older=500)
    await wait_until(lambda: search.progress.rooms_total == 1, 30)
    await wait_until(lambda: not search.progress.running, 60)
    page = await service.search(parse_query("tapir"), room_id)
    assert [hit.event_id for hit in page.hits] == [target]
    assert service.cache.load_event(room_id, target) is not None  # cached on the way
