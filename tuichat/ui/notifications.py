"""Telling the user about a mention or a direct message in another room:
the terminal bell, and desktop notifications by escape sequence (OSC 9, as
iTerm2, WezTerm, kitty and foot show it; OSC 777, as VTE terminals and
foot do).

The room name, sender and text are remote: every character that could end
or extend the sequence (all C0 and C1 controls, DEL; ";" in OSC 777's
fields, where it separates them) is removed before they are written, and
they are cut short. The text itself is only sent when configured
(`show_text`): the notification may be shown on a locked screen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from tuichat.config import Config
from tuichat.model.items import TimelineItem
from tuichat.model.rich_body import plain_text

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_FIELD = 120
# At most one notification this often, whatever arrives.
MIN_INTERVAL = 2.0


def _field(text: str, *, separator: bool = False) -> str:
    text = _UNSAFE.sub(" ", text)
    if separator:
        text = text.replace(";", ",")
    text = " ".join(text.split())
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"


def notification_sequences(config: Config, room: str, item: TimelineItem) -> list[str]:
    """What to write to the terminal for this message."""
    sequences = []
    if config.bell:
        sequences.append("\a")
    if config.desktop == "off":
        return sequences
    what = "mentioned you" if item.highlight else "sent a message"
    body = f"{item.sender_name} {what}"
    if config.show_text and item.kind.value in ("text", "emote", "notice"):
        text = plain_text(item.formatted) if item.formatted is not None else item.body
        body = f"{item.sender_name}: {text}"
    if config.desktop == "osc9":
        sequences.append(f"\x1b]9;{_field(room)}: {_field(body)}\a")
    elif config.desktop == "osc777":
        title = _field(f"tuichat: {room}", separator=True)
        sequences.append(f"\x1b]777;notify;{title};{_field(body, separator=True)}\a")
    return sequences


class Notifier:
    def __init__(
        self,
        config: Config,
        write: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._write = write
        self._clock = clock
        self._last = float("-inf")

    def message(self, room: str, item: TimelineItem) -> bool:
        """Notify of `item` in `room`; False if it was too soon after the
        last one (or nothing is configured)."""
        now = self._clock()
        if now - self._last < MIN_INTERVAL:
            return False
        sequences = notification_sequences(self.config, room, item)
        if not sequences:
            return False
        self._last = now
        for sequence in sequences:
            self._write(sequence)
        return True
