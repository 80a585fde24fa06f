"""Upload progress above the composer."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar


class UploadBar(Horizontal):
    DEFAULT_CSS = """
    UploadBar { height: 1; padding: 0 1; display: none; }
    UploadBar.-visible { display: block; }
    UploadBar Label { width: auto; margin-right: 1; }
    """

    # Its label and bar are made at the first upload: a progress bar costs
    # a noticeable part of the first frame, and most sessions upload nothing.

    def start(self, name: str, total: int) -> None:
        if not self.children:
            self.mount(
                Label("", id="upload-name"),
                ProgressBar(total=100, show_eta=False, id="upload-progress"),
            )
        self.query_one(Label).update(Text(f"Uploading {name}", no_wrap=True))
        self.query_one(ProgressBar).update(total=max(1, total), progress=0)
        self.add_class("-visible")

    def advance(self, done: int, total: int) -> None:
        self.query_one(ProgressBar).update(total=max(1, total), progress=done)

    def finish(self) -> None:
        self.remove_class("-visible")
