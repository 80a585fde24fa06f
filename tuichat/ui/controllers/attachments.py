"""Files in the chat: image previews in the timeline, downloads (then the
offer to open them), the image viewer, and uploads with their progress bar
and retry.

Each runs as a worker of the App (`exit_on_error=False`), whose failures
the App reports in one place (`tuichat.ui.worker_errors`); what the service
expects to fail (a file too large, a bad checksum) comes back as `Failed`
and is told on the feedback line. Dialogs are imported where they open (see
`tuichat.ui.controllers.chat`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platformdirs import user_downloads_path

from tuichat.matrix.service import Failed
from tuichat.model.items import TimelineItem
from tuichat.model.sanitize import safe_line, safe_text, trusted
from tuichat.ui.graphics import inline_images
from tuichat.ui.widgets.image_preview import preview_or_note

if TYPE_CHECKING:
    from rich.segment import Segment

    from tuichat.ui.app import TuichatApp

log = logging.getLogger(__name__)


class Attachments:
    def __init__(self, app: TuichatApp) -> None:
        self.app = app
        # Image previews made so far, by (room id, event id): a room switch
        # does not fetch them again.
        self._previews: dict[tuple[str, str], list[Any]] = {}
        self._failed_uploads: list[tuple[str, Path]] = []

    def download_dir(self) -> Path:
        return self.app.config.download_dir or user_downloads_path()

    # -- previews ------------------------------------------------------------------------

    def preview_wanted(self, item: TimelineItem) -> None:
        room_id = self.app.state.current_room_id
        if room_id is None or item.event_id is None:
            return
        cached = self._previews.get((room_id, item.event_id))
        if cached is not None:
            self._show_preview(item.key, cached)
        else:
            self.app.run_worker(
                self._fetch_preview(room_id, item), group="previews", exit_on_error=False
            )

    def _show_preview(self, key: str, lines: list[list[Segment]]) -> None:
        """In the room's timeline, and in the thread pane (issue 21)."""
        main = self.app.main
        main.timeline.set_preview(key, lines)
        main.thread_pane.timeline.set_preview(key, lines)

    async def _fetch_preview(self, room_id: str, item: TimelineItem) -> None:
        service = self.app.service
        if service is None or item.attachment is None or item.event_id is None:
            return
        data = await service.preview_data(item.attachment)
        kitty = inline_images()
        # Data that is no image gets a line saying so, not a silent gap.
        lines = await asyncio.to_thread(preview_or_note, data, kitty=kitty) if data else None
        if lines:
            self._previews[(room_id, item.event_id)] = lines
            if room_id == self.app.state.current_room_id:
                self._show_preview(item.key, lines)

    # -- downloads -----------------------------------------------------------------------

    def download(self, item: TimelineItem, data: bytes | None = None) -> None:
        """Save the file (`data`: already fetched and checked, by the
        viewer), then offer to open it."""
        self.app.run_worker(self._download(item, data), group="downloads", exit_on_error=False)

    async def _download(self, item: TimelineItem, data: bytes | None) -> None:
        from tuichat.ui.screens.confirm import ConfirmDialog

        app = self.app
        feedback, room = app.main.feedback, app.state.current_room_id
        if app.service is None or item.attachment is None:
            feedback.show("Not connected yet.", error=True)
            return
        feedback.show(safe_text(f"Downloading {item.attachment.name}…"), room=room)
        path = await app.service.download(item.attachment, self.download_dir(), data)
        if isinstance(path, Failed):
            feedback.show(safe_text(f"Not saved: {path.message}"), error=True, room=room)
            return
        feedback.show(safe_text(f"Saved to {path}"), room=room)
        app.push_screen(
            ConfirmDialog(
                safe_line(f"Saved {path.name}. Open it?"), safe_line(str(path)), yes=trusted("Open")
            ),
            lambda yes: open_with_system(path) if yes else None,
        )

    def view_image(self, item: TimelineItem) -> None:
        self.app.run_worker(self._view_image(item), group="downloads", exit_on_error=False)

    async def _view_image(self, item: TimelineItem) -> None:
        from tuichat.ui.screens.image_viewer import ImageViewer

        app = self.app
        if app.service is None or item.attachment is None:
            return
        data = await app.service.fetch_attachment(item.attachment)
        if isinstance(data, Failed):
            app.main.feedback.show(safe_text(f"Cannot show the image: {data.message}"), error=True)
            return
        choice = await app.push_screen_wait(ImageViewer(item.attachment.name, data))
        if choice == "save":
            self.download(item, data)  # not fetched a second time

    # -- uploads ---------------------------------------------------------------------------

    def choose_upload(self) -> None:
        from tuichat.ui.screens.file_picker import FilePicker

        app = self.app

        def chosen(path: Path | None) -> None:
            app.main.composer.focus()
            if path is not None and app.state.current_room_id is not None:
                self.upload(app.state.current_room_id, path)

        app.push_screen(FilePicker(Path.cwd()), chosen)

    def upload(self, room_id: str, path: Path) -> None:
        self.app.run_worker(self._upload(room_id, path), group="uploads", exit_on_error=False)

    async def _upload(self, room_id: str, path: Path) -> None:
        app = self.app
        feedback, bar = app.main.feedback, app.main.upload_bar
        if app.service is None:
            feedback.show("Not connected yet.", error=True, room=room_id)
            return
        if not await asyncio.to_thread(path.exists):
            # Nothing to try again: say what is wrong.
            feedback.show(
                safe_text(f"Upload failed: no such file: {path}"), error=True, room=room_id
            )
            return
        bar.start(path.name, 1)
        try:
            sent = await app.service.send_file(room_id, path, bar.advance)
        finally:
            bar.finish()
        if isinstance(sent, Failed):
            self._failed_uploads.append((room_id, path))
            retry = app.key_label("retry_failed")
            feedback.show(
                safe_text(f"Upload failed: {sent.message}. {retry} tries again."),
                error=True,
                room=room_id,
            )
        else:
            feedback.hide(room_id)

    def retry_uploads(self, room_id: str) -> list[Path]:
        """Start this room's failed uploads again; the files started."""
        uploads = [path for room, path in self._failed_uploads if room == room_id]
        self._failed_uploads = [(r, p) for r, p in self._failed_uploads if r != room_id]
        for path in uploads:
            self.upload(room_id, path)
        return uploads


def open_with_system(path: Path) -> None:
    """Open a downloaded file with the desktop's opener (never a shell)."""
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        subprocess.Popen(
            [opener, str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as error:
        log.info("could not open %s: %s", path, error)
