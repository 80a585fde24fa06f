"""Synthetic data for the benchmarks: profiles, rooms, and events encrypted
with real Megolm sessions. Nothing here talks to a network."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import vodozemac

from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.storage.cache import Cache, RoomWrite, SyncWrite

OWN_USER = "@me:bench.test"
OWN_DEVICE = "BENCHDEVICE"
PEER_USER = "@ada:bench.test"
PEER_DEVICE = "ADADEVICE"
HOMESERVER = "http://127.0.0.1:9"  # discard port: nothing listens, nothing is sent
MEGOLM = "m.megolm.v1.aes-sha2"
BODY = "The quick brown fox jumps over the lazy dog, and then writes it down again."


def make_profile(root: Path) -> Profile:
    profile = Profile(root)
    profile.ensure()
    profile.create_pickle_key()
    profile.save_session(
        Session(
            homeserver=HOMESERVER,
            user_id=OWN_USER,
            device_id=OWN_DEVICE,
            access_token="bench-token-" + secrets.token_hex(8),
            created_ms=1,
        )
    )
    return profile


def room_id(number: int) -> str:
    return f"!room{number:05d}:bench.test"


def state_events(room: str, *, encrypted: bool = True) -> list[dict[str, Any]]:
    def state(event_type: str, key: str, content: dict[str, Any], n: int) -> dict[str, Any]:
        return {
            "type": event_type,
            "state_key": key,
            "content": content,
            "sender": OWN_USER,
            "event_id": f"$state{n}-{room}",
            "origin_server_ts": 1_700_000_000_000 + n,
        }

    events = [
        state("m.room.create", "", {"creator": OWN_USER, "room_version": "10"}, 0),
        state("m.room.member", OWN_USER, {"membership": "join", "displayname": "Me"}, 1),
        state("m.room.member", PEER_USER, {"membership": "join", "displayname": "Ada"}, 2),
        state("m.room.name", "", {"name": f"Room {room[5:10]}"}, 3),
    ]
    if encrypted:
        events.append(state("m.room.encryption", "", {"algorithm": MEGOLM}, 4))
    return events


def plain_event(room: str, number: int, sender: str = PEER_USER) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": f"{BODY} #{number}"},
        "sender": sender,
        "event_id": f"$ev{number}-{room}",
        "origin_server_ts": 1_700_000_100_000 + number,
    }


class PeerDevice:
    """The peer's device: identity keys and one outbound Megolm session per room."""

    def __init__(self) -> None:
        self.account = vodozemac.Account()
        self.sessions: dict[str, vodozemac.GroupSession] = {}

    @property
    def curve25519(self) -> str:
        return self.account.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self.account.ed25519_key.to_base64()

    def outbound(self, room: str) -> vodozemac.GroupSession:
        session = self.sessions.get(room)
        if session is None:
            session = self.sessions[room] = vodozemac.GroupSession()
        return session

    def encrypt(self, room: str, number: int) -> dict[str, Any]:
        outbound = self.outbound(room)
        payload = {
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": f"{BODY} #{number}"},
            "room_id": room,
        }
        ciphertext = outbound.encrypt(json.dumps(payload).encode()).to_base64()
        return {
            "type": "m.room.encrypted",
            "content": {
                "algorithm": MEGOLM,
                "sender_key": self.curve25519,
                "session_id": outbound.session_id,
                "device_id": PEER_DEVICE,
                "ciphertext": ciphertext,
            },
            "sender": PEER_USER,
            "event_id": f"$enc{number}-{room}",
            "origin_server_ts": 1_700_000_200_000 + number,
        }


def fill_cache(
    profile: Profile, rooms: int, events_per_room: int, *, encrypted_share: float = 0.0
) -> None:
    """A cache as after a long life: `rooms` joined rooms, each with
    `events_per_room` events (a share of them encrypted ciphertext)."""
    cache = Cache(profile.cache_file)
    sender = PeerDevice() if encrypted_share else None
    every = int(1 / encrypted_share) if encrypted_share else 0
    write = SyncWrite(next_batch="s_bench")
    for number in range(rooms):
        room = room_id(number)
        events = []
        for n in range(events_per_room):
            if sender is not None and every and n % every == 0:
                events.append(sender.encrypt(room, number * events_per_room + n))
            else:
                events.append(plain_event(room, number * events_per_room + n))
        write.rooms[room] = RoomWrite(
            membership="join",
            summary={"m.joined_member_count": 2},
            state=state_events(room),
            events=events,
            prev_batch="t_older",
        )
        if len(write.rooms) >= 50:
            cache.commit_sync(write)
            write = SyncWrite(next_batch="s_bench")
    cache.commit_sync(write)
    cache.close()


def sync_response(
    rooms: dict[str, list[dict[str, Any]]], next_batch: str, *, limited: bool = False
) -> dict[str, Any]:
    return {
        "next_batch": next_batch,
        "rooms": {
            "join": {
                room: {"timeline": {"events": events, "limited": limited, "prev_batch": "p"}}
                for room, events in rooms.items()
            }
        },
    }


def state_sync(room_ids: list[str]) -> dict[str, Any]:
    return {
        "next_batch": "s_state",
        "rooms": {
            "join": {
                room: {
                    "state": {"events": state_events(room)},
                    "timeline": {"events": [], "limited": False},
                    "summary": {"m.joined_member_count": 2},
                }
                for room in room_ids
            }
        },
    }


def now_ms() -> int:
    return int(time.time() * 1000)
