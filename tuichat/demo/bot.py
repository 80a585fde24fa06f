"""The demo's chatting peer, Ada: tuichat's own service, run without a screen.

She opens an encrypted direct message with the demo user, greets them once
they have joined, answers what they write there, and accepts an emoji
verification they start (to-device or in the DM), so that the demo shows
the whole of what tuichat is for. Run it as
`python -m tuichat.demo.bot --homeserver URL --user ID --password-file F
--partner ID --store DIR`; `tuichat demo` does that for you.

Ada is built on `MatrixService` rather than bare nio because nio has no
verification request flow, no in-room verification and no cross-signing:
the service has them, and Ada answers with the same code a person's
tuichat runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
from pathlib import Path
from typing import Any

from tuichat.matrix.account.login import login
from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService
from tuichat.model.events import (
    ItemsReplaced,
    RoomsChanged,
    TimelineAppended,
    VerificationChanged,
)
from tuichat.model.items import ItemKind, TimelineItem
from tuichat.model.verification import Phase, VerificationView

log = logging.getLogger("tuichat.demo.bot")

GREETING = (
    "Hi! I'm Ada, tuichat's demo peer. This direct message is end-to-end encrypted. "
    "My lines show ⚠ because you have not verified me yet: type /verify {me} to compare "
    "emoji with me (I'll accept), and they turn into 🔒. Write me something and I'll answer."
)
VERIFY_HINT = (
    "You asked to verify me: I accepted. Compare the emoji in your dialog with the ones "
    "I see: {emoji}"
)
VERIFIED = "Verified! We both checked the emoji: what I write from now on shows 🔒, not ⚠."
VERIFY_CANCELLED = "The verification was cancelled ({reason}). /verify starts another."

_SMALL_TALK = (
    "Noted, and encrypted before it left your terminal.",
    "Interesting! Nobody but the two of us can read that.",
    "I read that with a Megolm session only our devices hold.",
    "Try Ctrl+K to switch rooms, or /help for the commands.",
    "Try **Markdown** or a code block in ```backticks```; Ctrl+S selects a message "
    "to reply (r), edit (e), react (+) or delete (d).",
)

# Messages Ada answers: text and emotes (not notices, files or placeholders).
_ANSWERED_KINDS = frozenset({ItemKind.TEXT, ItemKind.EMOTE})


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


def describe_emoji(emoji: list[tuple[str, str]]) -> str:
    return ", ".join(f"{symbol} {name}" for symbol, name in emoji)


class DemoBot:
    """Ada: one MatrixService and the few reactions of a friendly person."""

    def __init__(self, profile: Profile, partner: str) -> None:
        self.profile = profile
        self.partner = partner
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.service = MatrixService(profile, self.events.put_nowait)
        self.room_id: str | None = None
        self.greeted = False
        self._answered: set[str] = set()
        self._phases: dict[str, Phase] = {}

    async def start(self) -> str:
        """Sync once, open the encrypted DM and invite the partner; returns its id."""
        await self.service.start()
        await self.service.first_sync_done.wait()
        room_id = await self.service.create_dm([self.partner])
        if room_id is None:
            raise RuntimeError("the demo bot could not create the DM")
        self.room_id = room_id
        return room_id

    async def run(self) -> None:
        """Answer the service's events until cancelled."""
        while True:
            event = await self.events.get()
            try:
                await self._handle(event)
            except Exception:  # one failed answer must not end the demo peer
                log.exception("the demo bot could not handle %s", type(event).__name__)

    async def close(self) -> None:
        await self.service.stop()

    async def _handle(self, event: Any) -> None:
        if isinstance(event, RoomsChanged):
            await self._greet_when_joined()
        elif isinstance(event, (TimelineAppended, ItemsReplaced)):
            if event.room_id == self.room_id:
                for item in event.items:
                    await self._answer(item)
        elif isinstance(event, VerificationChanged):
            await self._verification(event.view)

    async def _greet_when_joined(self) -> None:
        if self.greeted or self.room_id is None:
            return
        state = self.service.room_state(self.room_id)
        if state is not None and state.membership_of(self.partner) == "join":
            self.greeted = True
            await self.say(GREETING.format(me=self.service.user_id))

    async def _answer(self, item: TimelineItem) -> None:
        if (
            item.sender != self.partner
            or item.kind not in _ANSWERED_KINDS
            or item.event_id is None
            or item.relation is not None
            or item.event_id in self._answered
            or not self.greeted
        ):
            return
        self._answered.add(item.event_id)
        assert self.room_id is not None
        # Read, a reaction, typing, then the answer: what a person would do.
        self.service.set_read_marker(self.room_id, item.event_id)
        self.service.react(self.room_id, item.event_id, "👍")
        await self.service.set_typing(self.room_id, True)
        await asyncio.sleep(0.6)
        await self.say(reply_to(item.body))

    async def _verification(self, view: VerificationView) -> None:
        """Accept what the partner starts; say the emoji; trust them as a
        person would after comparing (a bot cannot see the other screen)."""
        if view.other_user != self.partner:
            return
        was = self._phases.get(view.transaction_id)
        self._phases[view.transaction_id] = view.phase
        if was is view.phase:
            return
        if view.phase is Phase.REQUESTED and not view.we_requested:
            await self.service.accept_verification(view.transaction_id)
        elif view.phase is Phase.SHOW_SAS:
            await self.say(VERIFY_HINT.format(emoji=describe_emoji(view.emoji)))
            await self.service.confirm_verification(view.transaction_id)
        elif view.phase is Phase.DONE and view.verified:
            await self.say(VERIFIED)
        elif view.phase is Phase.CANCELLED and not view.cancelled_by_us:
            await self.say(VERIFY_CANCELLED.format(reason=view.cancel_reason or view.cancel_code))

    async def say(self, text: str) -> None:
        assert self.room_id is not None
        self.service.send_text(self.room_id, text)


async def _main(args: argparse.Namespace, password: str) -> None:
    profile = Profile(Path(args.store))
    if profile.load_session() is None:
        await login(
            profile,
            homeserver=args.homeserver,
            user=args.user,
            password=password,
            device_name="demo bot",
        )
    bot = DemoBot(profile, args.partner)
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
