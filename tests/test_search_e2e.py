"""Search (issue 24) against the real Synapse: encrypted rooms through the
local encrypted index (messages from Element's crypto stack, the js peer,
and a late key staged by the nio peer), rooms in the clear through the
server's /search, filters, a restart, a changed key, and no searched word
in any file of the profile."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import UserFactory, log_in
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory, join_invite
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.matrix.storage.search_index import IndexFilter, SearchIndex
from tuichat.model.events import Notice
from tuichat.model.items import ItemKind
from tuichat.model.search_query import SearchCursor, SearchHit, parse_query

pytestmark = requires_js_peer

# Every word sent in the encrypted room: none may be found in the profile.
WORDS = ("quokka", "marmot", "wombat", "narwhal", "pangolin", "ocelot", "axolotl")


async def _found(
    service: MatrixService, text: str, room_id: str | None, cursor: SearchCursor | None = None
) -> list[SearchHit]:
    page = await service.search(parse_query(text), room_id, cursor)
    return list(page.hits)


async def _until(
    service: MatrixService, text: str, room_id: str | None, *, found: bool = True
) -> list[SearchHit]:
    """Search until something is found (or, `found` False, nothing is)."""
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        hits = await _found(service, text, room_id)
        if bool(hits) is found:
            return hits
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{text!r}: {_texts(hits)}")
        await asyncio.sleep(0.1)


def _texts(hits: list[SearchHit]) -> list[str]:
    return [hit.text for hit in hits]


def _words_on_disk(root: Path) -> list[str]:
    """(file, word) for each sent word found in any file under `root`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            found += [f"{path.name}: {word}" for word in WORDS if word.encode() in data]
    return found


async def test_encrypted_room_search_through_the_encrypted_index(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob, carol = new_user("alice", "Alice"), new_user("bob", "Bob"), new_user("carol")
    await log_in(synapse, profile, alice)
    device_id = profile.load_session().device_id  # type: ignore[union-attr]
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)
    nio: NioPeer = await peer_factory(carol)

    room_id = await js.create_room(invite=[alice.user_id, carol.user_id], name="Zoo")
    await wait_until(lambda: room_id in recorder.rooms(), 30)
    assert await service.join(room_id)
    await nio.join(room_id)
    await js.wait_for_member(room_id, alice.user_id)
    await js.wait_for_member(room_id, carol.user_id)
    await wait_until(lambda: service.states[room_id].encrypted, 30)

    await js.send(room_id, "A Quokka smiles")
    original = await js.send(room_id, "the marmot digs")
    await js.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "* the wombat digs",
            "m.new_content": {"msgtype": "m.text", "body": "the wombat digs"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        },
    )
    doomed = await js.send(room_id, "a narwhal swims")
    await js.send(room_id, "an ocelot at https://example.org/cats")
    await wait_until(
        lambda: recorder.text_from(room_id, "an ocelot at https://example.org/cats"), 30
    )
    await _until(service, "narwhal", room_id)

    # Redacted: no longer found.
    status, _reply = synapse._request(
        "PUT",
        f"/_matrix/client/v3/rooms/{room_id}/redact/{doomed}/txn-search-1",
        {},
        token=bob.access_token,
    )
    assert status == 200

    # A message whose key arrives late: found once it decrypts.
    held = await nio.send_withholding_key(room_id, "the pangolin arrives late")
    await wait_until(
        lambda: any(i.kind is ItemKind.UNDECRYPTABLE for i in recorder.items(room_id)), 30
    )
    assert await _found(service, "pangolin", room_id) == []
    await nio.deliver_key(held, alice.user_id, device_id)
    await wait_until(lambda: recorder.text_from(room_id, "the pangolin arrives late"), 30)

    assert _texts(await _until(service, "pangolin", room_id)) == ["the pangolin arrives late"]
    assert await _until(service, "narwhal", room_id, found=False) == []

    # Prefix, case and accents; the newest first; the edit by its new text only.
    hits = await _found(service, "QUOK", room_id)
    assert _texts(hits) == ["A Quokka smiles"] and hits[0].encrypted
    assert hits[0].sender == bob.user_id and hits[0].sender_name == "Bob"
    assert [h.event_id for h in await _found(service, "wombat", room_id)] == [original]
    assert await _found(service, "marmot", room_id) == []
    # Filters.
    assert _texts(await _found(service, f"from:{carol.user_id}", room_id)) == [
        "the pangolin arrives late"
    ]
    assert _texts(await _found(service, "has:link", room_id)) == [
        "an ocelot at https://example.org/cats"
    ]
    assert await _found(service, "quokka after:2999-01-01", room_id) == []
    assert len(await _found(service, "quokka before:2999-01-01", room_id)) == 1
    assert _texts(await _found(service, '"wombat digs"', room_id)) == ["the wombat digs"]
    assert await _found(service, '"digs wombat"', room_id) == []
    # Another room (no room chosen, or --all, or in:) finds it; this one is empty.
    assert len(await _found(service, "quokka in:Zoo", None)) == 1
    assert len(await _found(service, "quokka --all", "!elsewhere:localhost")) == 1

    # No word sent, on disk: the running profile (WAL files too), then stopped.
    await service.parts.search.flushed()
    assert _words_on_disk(profile.root) == []
    await service.stop()
    assert _words_on_disk(profile.root) == []
    # The index on disk, opened with the profile's key, holds them.
    kept = SearchIndex(profile.search_file, profile.pickle_key())
    assert not kept.rebuilt
    assert [h.text for h in kept.search('"quokka"*', IndexFilter())] == ["A Quokka smiles"]
    kept.close()

    # A restart: found from the index (nothing synced again is needed).
    recorder = Recorder()
    service = await start_service(profile, recorder)
    assert _texts(await _found(service, "quokka", room_id)) == ["A Quokka smiles"]
    await js.send(room_id, "an axolotl after the restart")
    await _until(service, "axolotl", room_id)
    await service.stop()

    # Another key for the index (what a changed profile key looks like to
    # it): it starts over, says so, and indexes the cached history again.
    other = SearchIndex(profile.search_file, base64.b64encode(secrets.token_bytes(32)).decode())
    other.close()
    recorder = Recorder()
    service = await start_service(profile, recorder)
    service.index_history()
    await wait_until(
        lambda: any(isinstance(e, Notice) and "built again" in e.text for e in recorder.events), 30
    )
    await wait_until(lambda: not service.parts.search.progress.running, 30)
    assert _texts(await _until(service, "quokka", room_id)) == ["A Quokka smiles"]
    assert _texts(await _until(service, "axolotl", room_id)) == ["an axolotl after the restart"]
    assert await _found(service, "narwhal", room_id) == []
    await service.parts.search.flushed()
    assert _words_on_disk(profile.root) == []


async def test_room_in_the_clear_is_searched_by_the_server_page_by_page(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=False, name="Open")
    await join_invite(service, recorder, peer, room_id)

    for number in range(40):
        await peer.send_text(room_id, f"giraffe number {number}")
    await peer.send_text(room_id, "a giraffe picture at https://example.org/g.png")
    service.send_text(room_id, "my own giraffe")
    await wait_until(lambda: recorder.text_from(room_id, "my own giraffe"), 30)

    first = await service.search(parse_query("giraffe"), room_id)
    assert first.next is not None and first.next.server_batch is not None
    assert first.hits and not any(hit.encrypted for hit in first.hits)
    assert first.hits[0].text == "my own giraffe"
    stamps = [hit.timestamp for hit in first.hits]
    assert stamps == sorted(stamps, reverse=True)
    seen = list(first.hits)
    cursor = first.next
    while cursor is not None:
        page = await service.search(parse_query("giraffe"), room_id, cursor)
        seen += page.hits
        cursor = page.next
    assert len({hit.event_id for hit in seen}) == 42
    # Filters: the server's (senders) and tuichat's (links, dates, phrases).
    from_alice = await _found(service, f"giraffe from:{alice.user_id}", room_id)
    assert _texts(from_alice) == ["my own giraffe"]
    links = await _found(service, "giraffe has:link", room_id)
    assert _texts(links) == ["a giraffe picture at https://example.org/g.png"]
    assert await _found(service, "giraffe after:2999-01-01", room_id) == []
    assert _texts(await _found(service, '"giraffe number 7"', room_id)) == ["giraffe number 7"]
    # Nothing of this room went into the local index: the server searched it.
    assert all(not hit.encrypted for hit in await _found(service, "giraffe --all", None))
