"""Telling the user about a message the push rules ring for (a mention, a
keyword, a direct message) in a room not on screen: the terminal bell, and
desktop notifications by escape sequence (OSC 9, as iTerm2, WezTerm,
kitty and foot show it; OSC 777, as VTE terminals and foot do; OSC 99,
kitty's own), wrapped for tmux's passthrough inside tmux, or by
`notify-send` where no sequence fits and a desktop session is there
("auto" picks). The window title can carry the number of highlights.

The room name, sender and text are remote: every character that could end
or extend the sequence (all C0 and C1 controls, DEL; ";" in OSC 777's
fields, where it separates them) is removed before they are written, and
they are cut short. The text itself is only sent when configured
(`show_text`; for encrypted rooms also `show_encrypted_text`): the
notification may be shown on a locked screen.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping

from tuichat.config import Config
from tuichat.model.items import TimelineItem
from tuichat.model.rich_body import plain_text

log = logging.getLogger(__name__)

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_FIELD = 120
# At most one notification this often, whatever arrives.
MIN_INTERVAL = 2.0
NOTIFY_SEND = "notify-send"


def _field(text: str, *, separator: bool = False) -> str:
    text = _UNSAFE.sub(" ", text)
    if separator:
        text = text.replace(";", ",")
    text = " ".join(text.split())
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"


def resolve_desktop(desktop: str, env: Mapping[str, str]) -> str:
    """The configured way, with "auto" resolved from the terminal the
    environment names: kitty OSC 99, iTerm2/WezTerm/Ghostty OSC 9, VTE and
    foot OSC 777; else notify-send in a desktop session; else off."""
    if desktop != "auto":
        return desktop
    term, program = env.get("TERM", ""), env.get("TERM_PROGRAM", "")
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty":
        return "osc99"
    if program in ("iTerm.app", "WezTerm", "ghostty") or env.get("WEZTERM_PANE"):
        return "osc9"
    if env.get("VTE_VERSION") or term.startswith("foot"):
        return "osc777"
    if (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")) and shutil.which(NOTIFY_SEND):
        return NOTIFY_SEND
    return "off"


def tmux_wrap(sequence: str) -> str:
    """A sequence for the terminal outside tmux (passthrough: tmux's
    `allow-passthrough` option must be on), its ESCs doubled."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def notification_text(config: Config, room: str, item: TimelineItem) -> tuple[str, str]:
    """(title, body) of a desktop notification, not yet cleaned."""
    what = "mentioned you" if item.highlight else "sent a message"
    body = f"{item.sender_name} {what}"
    show = config.show_text and (not item.encrypted or config.show_encrypted_text)
    if show and item.kind.value in ("text", "emote", "notice"):
        text = plain_text(item.formatted) if item.formatted is not None else item.body
        body = f"{item.sender_name}: {text}"
    return room, body


def notification_sequences(
    config: Config,
    room: str,
    item: TimelineItem,
    *,
    desktop: str | None = None,
    tmux: bool = False,
) -> list[str]:
    """What to write to the terminal for this message (`desktop`: the way
    resolved from "auto", default the configured one)."""
    sequences = []
    if config.bell:
        sequences.append("\a")
    desktop = desktop or config.desktop
    title, body = notification_text(config, room, item)
    if desktop == "osc9":
        sequences.append(f"\x1b]9;{_field(title)}: {_field(body)}\a")
    elif desktop == "osc777":
        title = _field(f"tuichat: {title}", separator=True)
        sequences.append(f"\x1b]777;notify;{title};{_field(body, separator=True)}\a")
    elif desktop == "osc99":
        # kitty: the title (d=0: more follows), then the body, one id.
        title = _field(f"tuichat: {title}")
        sequences.append(f"\x1b]99;i=tuichat:d=0;{title}\x1b\\")
        sequences.append(f"\x1b]99;i=tuichat:p=body;{_field(body)}\x1b\\")
    if tmux:
        sequences = [s if s == "\a" else tmux_wrap(s) for s in sequences]
    return sequences


def title_sequence(highlights: int) -> str:
    """The window title with the number of highlights (OSC 2)."""
    return f"\x1b]2;tuichat ({highlights})\a" if highlights else "\x1b]2;tuichat\a"


def _spawn(argv: list[str]) -> None:
    """Start a helper program, not waiting for it (its failure is logged)."""
    try:
        subprocess.Popen(  # a fixed program; the arguments are no shell line
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        log.warning("%s failed: %s", argv[0], error)


class Notifier:
    def __init__(
        self,
        config: Config,
        write: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        env: Mapping[str, str] | None = None,
        spawn: Callable[[list[str]], None] = _spawn,
    ) -> None:
        self.config = config
        self._write = write
        self._clock = clock
        self._spawn = spawn
        self._last = float("-inf")
        env = os.environ if env is None else env
        self.desktop = resolve_desktop(config.desktop, env)
        self.tmux = bool(env.get("TMUX"))
        self._title: int | None = None

    def message(self, room: str, item: TimelineItem) -> bool:
        """Notify of `item` in `room`; False if it was too soon after the
        last one (or nothing is configured)."""
        now = self._clock()
        if now - self._last < MIN_INTERVAL:
            return False
        sequences = notification_sequences(
            self.config, room, item, desktop=self.desktop, tmux=self.tmux
        )
        command = None
        if self.desktop == NOTIFY_SEND:
            title, body = notification_text(self.config, room, item)
            command = [
                NOTIFY_SEND,
                "--app-name=tuichat",
                "--",
                _field(f"tuichat: {title}"),
                _field(body),
            ]
        if not sequences and command is None:
            return False
        self._last = now
        for sequence in sequences:
            self._write(sequence)
        if command is not None:
            self._spawn(command)
        return True

    def highlights(self, total: int) -> None:
        """Show the total of highlights in the window title (if set so and
        it changed)."""
        if not self.config.title_counts or total == self._title:
            return
        self._title = total
        sequence = title_sequence(total)
        self._write(tmux_wrap(sequence) if self.tmux else sequence)
