"""The demo's chatting peer: a small nio bot.

It opens an encrypted direct message with the demo user, greets them once
they have joined, and answers what they write there. Run it as
`python -m tuichat.demo.bot --homeserver URL --user ID --password-file F
--partner ID --store DIR`; `tuichat demo` does that for you.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
from pathlib import Path
from urllib.parse import quote

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    MatrixRoom,
    RoomCreateResponse,
    RoomMemberEvent,
    RoomMessageText,
)
from nio.api import RoomPreset

log = logging.getLogger("tuichat.demo.bot")

GREETING = (
    "Hi! I'm Ada, tuichat's demo peer. This direct message is end-to-end "
    "encrypted: look for the 🔒 beside each line. Write me something and I'll answer."
)

_SMALL_TALK = (
    "Noted, and encrypted before it left your terminal.",
    "Interesting! Nobody but the two of us can read that.",
    "I read that with a Megolm session only our devices hold.",
    "Try Ctrl+K to switch rooms, or /help for the commands.",
    "Try **Markdown** or a code block in ```backticks```; Ctrl+S selects a message "
    "to reply (r), edit (e), react (+) or delete (d).",
)


def reply_to(text: str) -> str:
    """What the bot answers to `text` (deterministic apart from small talk)."""
    lowered = text.strip().lower()
    if lowered in {"hi", "hello", "hey", "hallo", "moin"}:
        return "Hello to you too! 👋"
    if lowered in {"help", "?"}:
        return "Type anything and I'll answer. /help lists tuichat's commands."
    if "?" in lowered:
        return f"Good question: “{text.strip()}”. I'm only a demo bot, though."
    return f"You wrote “{text.strip()}”. {random.choice(_SMALL_TALK)}"


class DemoBot:
    def __init__(
        self, homeserver: str, user_id: str, password: str, partner: str, store: Path
    ) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.partner = partner
        self.client = AsyncClient(
            homeserver,
            user_id,
            store_path=str(store),
            config=AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False),
        )
        self.room_id: str | None = None
        self.greeted = False
        self._started_at = 0

    async def start(self) -> str:
        """Log in, open the encrypted DM and invite the partner; returns the room id."""
        response = await self.client.login(self.password, device_name="demo bot")
        if not isinstance(response, LoginResponse):
            raise RuntimeError(f"demo bot login failed: {response}")
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self.client.sync(timeout=0, full_state=True)
        created = await self.client.room_create(
            is_direct=True,
            invite=[self.partner],
            preset=RoomPreset.trusted_private_chat,
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        if not isinstance(created, RoomCreateResponse):
            raise RuntimeError(f"demo bot could not create the DM: {created}")
        self.room_id = created.room_id
        await self._mark_direct()
        self.client.add_event_callback(self._on_member, RoomMemberEvent)
        self.client.add_event_callback(self._on_text, RoomMessageText)
        return self.room_id

    async def _mark_direct(self) -> None:
        """Record the room in m.direct, as Element does (nio has no setter)."""
        user = quote(self.client.user_id, safe="")
        response = await self.client.send(
            "PUT",
            f"/_matrix/client/v3/user/{user}/account_data/m.direct",
            json.dumps({self.partner: [self.room_id]}),
            headers={"Authorization": f"Bearer {self.client.access_token}"},
        )
        response.release()

    async def run(self) -> None:
        await self.client.sync_forever(timeout=30_000)

    async def close(self) -> None:
        await self.client.close()

    async def _on_member(self, room: MatrixRoom, event: RoomMemberEvent) -> None:
        if (
            room.room_id == self.room_id
            and event.state_key == self.partner
            and event.membership == "join"
            and not self.greeted
        ):
            self.greeted = True
            await self.say(GREETING)

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if room.room_id != self.room_id or event.sender != self.partner:
            return
        if not self.greeted:
            return
        # Read, a reaction, typing, then the answer: what a person would do.
        await self.client.room_read_markers(room.room_id, event.event_id, event.event_id)
        await self._react(event.event_id, "👍")
        await self.client.room_typing(room.room_id, True, timeout=2000)
        await asyncio.sleep(0.6)
        await self.say(reply_to(event.body))

    async def _react(self, event_id: str, key: str) -> None:
        assert self.room_id is not None
        await self.client.room_send(
            self.room_id,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}},
            ignore_unverified_devices=True,
        )

    async def say(self, text: str) -> None:
        assert self.room_id is not None
        # Know the partner's devices before encrypting, or they get no key.
        if self.client.should_query_keys:
            await self.client.keys_query()
        await self.client.room_send(
            self.room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=True,
        )


async def _main(args: argparse.Namespace, password: str) -> None:
    bot = DemoBot(args.homeserver, args.user, password, args.partner, Path(args.store))
    room_id = await bot.start()
    print(room_id, flush=True)  # the runner waits for this line
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(bot.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await bot.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="tuichat's demo bot")
    parser.add_argument("--homeserver", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--partner", required=True)
    parser.add_argument("--store", required=True)
    logging.basicConfig(level=logging.WARNING)  # stderr: the runner keeps it in bot.log
    args = parser.parse_args()
    password = Path(args.password_file).read_text().strip()
    asyncio.run(_main(args, password))


if __name__ == "__main__":
    main()
