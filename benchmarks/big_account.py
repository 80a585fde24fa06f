"""A large account on a real local Synapse for the network benchmarks
(`first_login`, `catch_up`): ROOMS rooms, each with MEMBERS members and
EVENTS messages, built once and kept under benchmarks/.data (gitignored),
so later runs start the same homeserver on the same database.

    python -m benchmarks.big_account [ROOMS [MEMBERS [EVENTS]]]

builds (or finishes building) the account and exits. Building is resumable:
the progress is written after every room, so an interrupted build goes on
where it stopped. Rate limits are off (see tuichat/demo/synapse.py) and
rooms are built concurrently; within a room, events go one after another
(concurrent sends to one room only queue on the server's per-room lock)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from tuichat.demo.synapse import LocalSynapse

DATA = Path(os.environ.get("TUICHAT_BENCH_DATA") or Path(__file__).with_name(".data"))
ROOMS, MEMBERS, EVENTS = 2000, 20, 50
CONCURRENCY = 12
PASSWORD = "bench-password"
OWNER = "owner"
BODY = "A message of ordinary length, the kind people write every day in a chat."


@dataclass
class Account:
    """A built account: its homeserver's directory and what was made."""

    directory: Path
    rooms: int
    members: int
    events: int
    room_ids: list[str]

    @property
    def owner(self) -> str:
        return OWNER

    def server(self, directory: Path | None = None) -> LocalSynapse:
        return LocalSynapse(directory or self.directory / "synapse")

    def copy_to(self, target: Path) -> Account:
        """A copy of the homeserver's data a benchmark may change."""
        shutil.copytree(self.directory, target)
        return Account(target, self.rooms, self.members, self.events, self.room_ids)


def _directory(members: int, events: int) -> Path:
    # Rooms are added to the same account: a larger build goes on from a
    # smaller one.
    return DATA / f"account-{members}x{events}"


class _Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None, token: str | None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for attempt in range(20):
            async with self.session.request(
                method, self.base + path, json=body, headers=headers
            ) as response:
                reply = await response.json(content_type=None)
                if response.status == 200:
                    return reply if isinstance(reply, dict) else {}
                if response.status in (429, 500, 502, 503) and attempt < 19:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                raise RuntimeError(f"{method} {path}: {response.status} {reply}")
        raise RuntimeError("unreachable")

    async def register(self, localpart: str) -> str:
        body: dict[str, Any] = {"username": localpart, "password": PASSWORD}
        async with self.session.post(
            self.base + "/_matrix/client/v3/register", json=body
        ) as response:
            reply = await response.json(content_type=None)
        if "session" in reply:
            body["auth"] = {"type": "m.login.dummy", "session": reply["session"]}
            reply = await self.call("POST", "/_matrix/client/v3/register", body, None)
        if "access_token" not in reply:
            raise RuntimeError(f"registering {localpart}: {reply}")
        return str(reply["access_token"])

    async def send(self, room_id: str, token: str, body: str) -> None:
        txn = secrets.token_hex(8)
        await self.call(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": body},
            token,
        )


async def _build_room(client: _Client, tokens: list[str], number: int, events: int) -> str:
    owner = tokens[0]
    reply = await client.call(
        "POST",
        "/_matrix/client/v3/createRoom",
        {"preset": "public_chat", "name": f"Room {number:05d}"},
        owner,
    )
    room_id = str(reply["room_id"])
    for token in tokens[1:]:
        await client.call("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {}, token)
    for n in range(events):
        await client.send(room_id, tokens[n % len(tokens)], f"{BODY} ({number}.{n})")
    return room_id


def _load(state_file: Path) -> dict[str, Any]:
    return json.loads(state_file.read_text()) if state_file.exists() else {"room_ids": []}


def _save(state_file: Path, state: dict[str, Any]) -> None:
    state_file.write_text(json.dumps(state))


async def _build(
    server: LocalSynapse, state_file: Path, rooms: int, members: int, events: int
) -> None:
    state = _load(state_file)
    async with aiohttp.ClientSession() as session:
        client = _Client(session, server.url)
        if "tokens" not in state:
            state["tokens"] = [await client.register(OWNER)] + [
                await client.register(f"member{n:02d}") for n in range(1, members)
            ]
            _save(state_file, state)
        tokens: list[str] = state["tokens"]
        started, done = time.monotonic(), len(state["room_ids"])
        queue = list(range(done, rooms))
        if not queue:
            return

        async def worker() -> None:
            while queue:
                number = queue.pop(0)
                room_id = await _build_room(client, tokens, number, events)
                state["room_ids"].append(room_id)
                _save(state_file, state)
                count = len(state["room_ids"])
                if count % 50 == 0:
                    rate = (count - done) / (time.monotonic() - started)
                    print(f"{count} rooms, {rate:.2f} rooms/s", flush=True)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def account(rooms: int = ROOMS, members: int = MEMBERS, events: int = EVENTS) -> Account:
    """The account, built first if it is not there yet (this may take long)."""
    directory = _directory(members, events)
    state_file = directory / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if len(state.get("room_ids", [])) < rooms:
        directory.mkdir(parents=True, exist_ok=True)
        server = LocalSynapse(directory / "synapse")
        server.start()
        try:
            asyncio.run(_build(server, state_file, rooms, members, events))
        finally:
            server.stop()
        state = json.loads(state_file.read_text())
    # The account is in every room built so far (maybe more than asked).
    room_ids = list(state["room_ids"])
    return Account(directory, len(room_ids), members, events, room_ids)


async def login(base: str, token_owner: str = OWNER) -> tuple[str, str]:
    """A fresh device for the owner: (access token, device id)."""
    async with aiohttp.ClientSession() as session:
        reply = await _Client(session, base).call(
            "POST",
            "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": token_owner},
                "password": PASSWORD,
            },
            None,
        )
    return str(reply["access_token"]), str(reply["device_id"])


async def send_burst(base: str, account: Account, rooms: int, per_room: int) -> None:
    """`per_room` messages from the members into the `rooms` oldest rooms."""
    tokens: list[str] = _load(account.directory / "state.json")["tokens"][1:]
    targets = account.room_ids[:rooms]
    async with aiohttp.ClientSession() as session:
        client = _Client(session, base)

        async def fill(room_ids: list[str]) -> None:
            for room_id in room_ids:
                for n in range(per_room):
                    await client.send(room_id, tokens[n % len(tokens)], f"{BODY} (later {n})")

        share = [targets[n::CONCURRENCY] for n in range(CONCURRENCY)]
        await asyncio.gather(*(fill(part) for part in share))


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:4]]
    built = account(*sizes)
    print(f"{built.directory}: {len(built.room_ids)} rooms")
