"""A stream of hostile events through the real homeserver into the running
app: huge bodies, thousands of lines, code blocks in exponential lexers,
floods of edits and reactions, giant names, images that are no images.
The event loop must keep ticking: no callback may hold it for 100 ms."""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.peers import NioPeer
from tests.test_image_viewer import EPS, png_bomb
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.room_switcher import RoomSwitcher
from tuichat.ui.widgets.timeline_view import TimelineView

# The longest the app's thread may run between two ticks of the loop.
MAX_TICK_SECONDS = 0.1
FLOOD = 200  # edits, and reactions, to one message


class Sender:
    """Sends events as the peer's user with plain HTTP in a thread, so the
    sending costs the app's event loop nothing."""

    def __init__(self, homeserver: str, token: str, room_id: str) -> None:
        self.homeserver, self.token, self.room_id = homeserver, token, room_id

    def _call(self, method: str, path: str, body: bytes, kind: str = "application/json") -> Any:
        request = urllib.request.Request(
            self.homeserver + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": kind},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def send(self, event_type: str, content: dict[str, Any]) -> str:
        room = urllib.parse.quote(self.room_id)
        path = f"/_matrix/client/v3/rooms/{room}/send/{event_type}/{uuid.uuid4().hex}"
        return str(self._call("PUT", path, json.dumps(content).encode())["event_id"])

    def state(self, event_type: str, state_key: str, content: dict[str, Any]) -> None:
        room, key = urllib.parse.quote(self.room_id), urllib.parse.quote(state_key)
        path = f"/_matrix/client/v3/rooms/{room}/state/{event_type}/{key}"
        self._call("PUT", path, json.dumps(content).encode())

    def upload(self, data: bytes, name: str) -> str:
        path = f"/_matrix/media/v3/upload?filename={urllib.parse.quote(name)}"
        return str(self._call("POST", path, data, "application/octet-stream")["content_uri"])


def code(language: str, text: str) -> dict[str, Any]:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "msgtype": "m.text",
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": f'<pre><code class="language-{language}">{escaped}</code></pre>',
    }


def send_stream(sender: Sender, user_id: str) -> None:
    """The hostile stream, in the order a malicious peer might send it."""
    sender.state("m.room.name", "", {"name": "a " * 255})
    sender.state("m.room.member", user_id, {"membership": "join", "displayname": "é" * 255})
    rng = random.Random(18)
    sender.send("m.room.message", {"msgtype": "m.text", "body": "a" * 60_000})
    sender.send("m.room.message", {"msgtype": "m.text", "body": "x\n" * 20_000})
    sender.send("m.room.message", {"msgtype": "m.text", "body": "word " * 12_000})
    noise = "".join(rng.choice("\\\"'`([{<$#/* \n") for _ in range(4000))
    for language, text in [
        ("chapel", "'" + "\\" * 40),
        ("tcsh", '"' + "\\" * 300),
        ("c", "$" + " " * 4000),
        ("cpp", "x" + "\t" * 4000),
        ("python", noise),
        ("javascript", noise),
        ("makefile", "`" + "{" * 3999),
        ("no-such-language", noise),
        ("", noise),
    ]:
        sender.send("m.room.message", code(language, text))
    target = sender.send("m.room.message", {"msgtype": "m.text", "body": "edit me"})
    for n in range(FLOOD):
        sender.send(
            "m.room.message",
            {
                "msgtype": "m.text",
                "body": f"* edit {n}",
                "m.new_content": {"msgtype": "m.text", "body": f"edit {n}"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": target},
            },
        )
    for n in range(FLOOD):
        sender.send(
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": f"k{n}"}},
        )
    for name, data in [
        ("bomb.png", png_bomb()),
        ("noise.png", rng.randbytes(5000)),
        ("page.eps", EPS),
    ]:
        # As the thumbnail too: the app decodes a thumbnail itself (the
        # server would refuse to make one of these).
        uri = sender.upload(data, name)
        info = {"mimetype": "image/png", "thumbnail_url": uri}
        sender.send(
            "m.room.message", {"msgtype": "m.image", "body": name, "url": uri, "info": info}
        )
    sender.send("m.room.message", {"msgtype": "m.text", "body": "end of the stream"})


def notes(view: TimelineView) -> int:
    """How many previews are a line saying why there is none."""
    return sum(
        "(no preview:" in "".join(segment.text for segment in lines[0])
        for lines in view._previews.values()
    )


async def test_a_stream_of_hostile_events_never_holds_up_the_event_loop(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
) -> None:
    alice, mallory = new_user("alice", "Alice"), new_user("mallory", "Mallory")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(mallory)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=False, name="Stream")
    app = TuichatApp(profile, sync_timeout_ms=1000)
    async with app.run_test(size=(120, 40)) as pilot:
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)
        # The peer's own client would share this loop: only HTTP from a
        # thread from now on.
        await peer.close()
        sender = Sender(synapse.url, peer.client.access_token, room_id)
        ticks: list[tuple[float, float]] = []  # (CPU of this thread, wall) per tick
        running = True

        async def sample() -> None:
            cpu, wall = time.thread_time(), time.perf_counter()
            while running:
                await asyncio.sleep(0.005)
                now_cpu, now_wall = time.thread_time(), time.perf_counter()
                ticks.append((now_cpu - cpu, now_wall - wall))
                cpu, wall = now_cpu, now_wall

        sampler = asyncio.create_task(sample())
        stream = asyncio.create_task(asyncio.to_thread(send_stream, sender, mallory.user_id))
        view = app.query_one(TimelineView)
        # The reader moves around while it arrives: resizes, scrolls, and
        # looks for the room with Ctrl+K.
        await pilot.resize_terminal(100, 35)
        await wait_ui(pilot, lambda: "a a a" in app.state.rooms.get(room_id).name, 60)
        await pilot.press("ctrl+k")
        await wait_ui(pilot, lambda: isinstance(app.screen, RoomSwitcher))
        await type_text(pilot, "aaa")
        await pilot.press("escape")
        await wait_ui(pilot, lambda: not isinstance(app.screen, RoomSwitcher))
        await pilot.resize_terminal(120, 40)
        await stream
        # (Waiting looks at the items, not at `line_texts`, which would draw
        # every item of the room in one go, on this loop.)
        await wait_ui(pilot, lambda: view.items and view.items[-1].body == "end of the stream", 120)
        await wait_ui(pilot, lambda: notes(view) == 3, 30)
        view.scroll_home(animate=False)
        await pilot.pause(0.2)
        view.scroll_end(animate=False)
        await pilot.pause(0.2)
        running = False
        await sampler
        assert app.is_running
        shown = "\n".join(view.line_texts())
        assert f"edit {FLOOD - 1}" in shown and "more lines not shown" in shown
        assert shown.count("(no preview:") == 3
    worst_cpu = max(cpu for cpu, _ in ticks)
    worst_wall = max(wall for _, wall in ticks)
    print(f"{len(ticks)} ticks; longest: {worst_cpu * 1000:.0f} ms CPU, {worst_wall * 1000:.0f} ms")
    assert worst_cpu < MAX_TICK_SECONDS, f"the loop was held {worst_cpu * 1000:.0f} ms"
