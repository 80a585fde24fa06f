"""Key sequences that Textual's terminal parser reads wrongly.

Most terminals, and tmux always, send Alt+Enter as ESC CR (some, like foot,
as ESC LF). Textual's parser knows no such sequence: it waits for more, then
reissues it key by key, and the Alt of a key that has a name of its own
(Enter) is dropped, so Alt+Enter arrived as a plain Enter and sent the
message instead of starting a new line. Registering both sequences makes the
parser report `alt+enter` as soon as the two bytes are read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, cast

from textual._ansi_sequences import ANSI_SEQUENCES_KEYS


class ExtraKey(StrEnum):
    """Keys reported like Textual's own `Keys` (the parser reads `.value`)."""

    ALT_ENTER = "alt+enter"


ALT_ENTER_SEQUENCES = ("\x1b\r", "\x1b\n")


def install() -> None:
    """Teach the parser the sequences above (once; harmless to repeat)."""
    table = cast(dict[str, Any], ANSI_SEQUENCES_KEYS)
    for sequence in ALT_ENTER_SEQUENCES:
        table.setdefault(sequence, (ExtraKey.ALT_ENTER,))
