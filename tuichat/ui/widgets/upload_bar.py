"""Upload progress above the composer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Label

from tuichat.model.sanitize import safe_line

if TYPE_CHECKING:
    from textual.widgets import ProgressBar


class UploadBar(Horizontal):
    DEFAULT_CSS = """
    UploadBar { height: 1; padding: 0 1; display: none; }
    UploadBar.-visible { display: block; }
    UploadBar Label { width: auto; margin-right: 1; }
    """

    # Its label and bar are made (and Textual's progress bar imported) at the
    # first upload: a progress bar costs a noticeable part of the first
    # frame, and most sessions upload nothing.

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._bar: ProgressBar | None = None

    def start(self, name: str, total: int) -> None:
        if self._bar is None:
            from textual.widgets import ProgressBar

            self._bar = ProgressBar(total=100, show_eta=False, id="upload-progress")
            self.mount(Label("", id="upload-name"), self._bar)
        self.query_one(Label).update(Text(safe_line(f"Uploading {name}"), no_wrap=True))
        self._bar.update(total=max(1, total), progress=0)
        self.add_class("-visible")

    def advance(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(total=max(1, total), progress=done)

    def finish(self) -> None:
        self.remove_class("-visible")
