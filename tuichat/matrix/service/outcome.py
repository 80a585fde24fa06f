"""What a service call that can fail in an expected way returns: its value,
or `Failed` with a sentence saying why.

Expected failures (a wrong recovery key, a file too large for the server,
the server out of reach) come back as `Failed`; the caller shows its
message (through the sanitiser: it may quote the server). Anything else
raised is a bug and goes, as before, to the UI's one worker-error handler.

Importing this module imports neither nio nor aiohttp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """An expected failure; `message` is a plain sentence (unsanitised)."""

    message: str

    def __str__(self) -> str:
        return self.message


# A call's value, or why it failed: `if isinstance(result, Failed): ...`.
Outcome = Union[T, Failed]  # noqa: UP007 (a generic alias needs Union before 3.12)

__all__ = ["Failed", "Outcome"]
