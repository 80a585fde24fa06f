"""A tuichat service in a process of its own, for the kill -9 test: it
writes the given messages while the homeserver is down, says so, and waits
to be killed.

    python -m tests.outbox_child PROFILE ROOM_ID BODY...
"""

from __future__ import annotations

import asyncio
import sys

from tuichat.matrix.account.session import Profile
from tuichat.matrix.service import MatrixService


async def main(profile_dir: str, room_id: str, bodies: list[str]) -> None:
    service = MatrixService(Profile(profile_dir), lambda event: None, sync_timeout_ms=1000)
    await service.start()
    for body in bodies:
        service.send_text(room_id, body)
    print("queued", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
