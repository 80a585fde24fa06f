"""Choose a file to send: a directory tree, or a path typed with Tab
completion."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label

from tuichat.model.sanitize import safe_line


class FilePicker(ModalScreen[Path | None]):
    DEFAULT_CSS = """
    FilePicker { align: center middle; }
    FilePicker > Vertical {
        width: 80%; height: 80%; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    FilePicker DirectoryTree { height: 1fr; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self.start = start or Path.home()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Send a file: choose it, or type its path and press Enter.")
            yield Input(placeholder=safe_line(f"{self.start}/…"), id="path")
            yield DirectoryTree(self.start, id="tree")

    def on_mount(self) -> None:
        self.query_one("#tree", DirectoryTree).focus()

    @on(DirectoryTree.FileSelected)
    def _chosen(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    @on(Input.Submitted)
    def _typed(self, event: Input.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if path.is_file():
            self.dismiss(path)
        else:
            self.notify(safe_line(f"No such file: {path}"), severity="error", markup=False)

    def action_cancel(self) -> None:
        self.dismiss(None)
