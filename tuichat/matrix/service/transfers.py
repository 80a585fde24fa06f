"""Sending and fetching files: uploads with progress, encrypted in
encrypted rooms, downloads checked and decrypted, image previews.

A file bigger than the server's `m.upload.size` is refused before anything
is read or sent. The upload itself is not in the outbox (the bytes are not
kept); once uploaded, the message pointing at it goes through the outbox
like any other, so it is sent once and in order. The calls the UI makes
return their value or a `Failed` sentence (too large, unreadable,
interrupted, a bad checksum).
"""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path
from typing import Any

from tuichat.matrix.content import file_messages as attachments
from tuichat.matrix.content.convert import human_size
from tuichat.matrix.content.file_messages import AttachmentError
from tuichat.matrix.service.account_context import AccountContext
from tuichat.matrix.service.outcome import Failed, Outcome
from tuichat.matrix.service.send_queue import SendQueue
from tuichat.matrix.transport.media import MediaError, MediaRepository, Progress
from tuichat.matrix.transport.network import NETWORK_ERRORS
from tuichat.model.items import Attachment

log = logging.getLogger(__name__)

# Previews are made from at most this much data (a thumbnail, or the image
# itself when there is no thumbnail).
PREVIEW_MAX_BYTES = 8 * 1024 * 1024
THUMBNAIL_SIZE = (320, 240)


class Transfers:
    """Files in and out; a sent file's message goes through the send queue."""

    def __init__(self, context: AccountContext, sending: SendQueue) -> None:
        self._context = context
        self._sending = sending
        self._media: MediaRepository | None = None
        self._upload_limit: int | None = None
        self._upload_limit_known = False

    def _repository(self) -> MediaRepository:
        client = self._context.client
        if client is None:
            raise AttachmentError("not connected yet")
        if self._media is None or self._media.client is not client:
            self._media = MediaRepository(client)
        return self._media

    async def upload_limit(self) -> int | None:
        """The server's upload size limit in bytes (asked once)."""
        if not self._upload_limit_known:
            try:
                self._upload_limit = await self._repository().upload_limit()
                self._upload_limit_known = True
            except NETWORK_ERRORS as error:
                log.info("media config unavailable: %s", error)
        return self._upload_limit

    async def send_file(
        self, room_id: str, path: Path, progress: Progress | None = None
    ) -> Outcome[str]:
        """Upload `path` (encrypted if the room is) and send it as a message;
        returns the transaction id, or why not (too large, unreadable,
        upload refused or interrupted)."""
        try:
            return await self._send_file(room_id, path, progress)
        except AttachmentError as error:
            return Failed(str(error))

    async def _send_file(self, room_id: str, path: Path, progress: Progress | None) -> str:
        state = self._context.states.get(room_id)
        if state is None:
            raise AttachmentError("not in that room")
        try:
            status = await asyncio.to_thread(path.stat)
        except OSError as error:
            raise AttachmentError(f"cannot read {path}: {error.strerror or error}") from None
        if not stat.S_ISREG(status.st_mode):
            raise AttachmentError(f"{path} is not a file")
        size = status.st_size
        limit = await self.upload_limit()
        if limit is not None and size > limit:
            raise AttachmentError(
                f"{path.name} is {human_size(size)}; this server accepts files up to "
                f"{human_size(limit)}"
            )
        prepared = await asyncio.to_thread(attachments.prepare, path)
        data, keys = prepared.data, None
        if state.encrypted:
            # The server gets ciphertext only, under a generic type.
            data, keys = await asyncio.to_thread(attachments.encrypt, prepared.data)
        content_type = "application/octet-stream" if keys else prepared.mimetype
        try:
            uri = await self._repository().upload(data, content_type, prepared.name, progress)
        except MediaError as error:
            raise AttachmentError(str(error)) from None
        except NETWORK_ERRORS as error:
            raise AttachmentError(f"the upload was interrupted: {error}") from None
        thumbnail = None
        if keys is not None and prepared.msgtype == "m.image":
            thumbnail = await self._upload_thumbnail(prepared)
        content = attachments.content_for(prepared, uri, keys, thumbnail)
        return self._sending.send_content(room_id, "m.room.message", content)

    async def _upload_thumbnail(
        self, prepared: attachments.PreparedFile
    ) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        """An encrypted thumbnail for an encrypted image (the server cannot
        make one); the image is sent without it if this fails."""
        made = await asyncio.to_thread(attachments.make_thumbnail, prepared.data)
        if made is None:
            return None
        thumbnail, info = made
        ciphertext, keys = await asyncio.to_thread(attachments.encrypt, thumbnail)
        try:
            uri = await self._repository().upload(
                ciphertext, "application/octet-stream", f"thumbnail-{prepared.name}"
            )
        except (MediaError, *NETWORK_ERRORS) as error:
            log.info("thumbnail not uploaded: %s", error)
            return None
        return uri, keys, info

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> Outcome[bytes]:
        """The file's bytes, decrypted and checked when it is encrypted."""
        try:
            return await self._fetch(attachment, max_bytes)
        except AttachmentError as error:
            return Failed(str(error))

    async def _fetch(self, attachment: Attachment, max_bytes: int | None) -> bytes:
        if attachment.url is None:
            raise AttachmentError("this attachment has no valid address")
        try:
            data = await self._repository().download(attachment.url, max_bytes=max_bytes)
        except MediaError as error:
            raise AttachmentError(f"download failed: {error}") from None
        except NETWORK_ERRORS as error:
            raise AttachmentError(f"download interrupted: {error}") from None
        if attachment.file is not None:
            data = await asyncio.to_thread(attachments.decrypt, data, attachment.file)
        return data

    async def download(
        self, attachment: Attachment, directory: Path, data: bytes | None = None
    ) -> Outcome[Path]:
        """Save the file in `directory` under a safe, new name; nothing is
        written when the download or the checksum fails. `data` is the
        file as `fetch_attachment` gave it, when it was fetched already."""
        try:
            if data is None:
                data = await self._fetch(attachment, None)
            return await asyncio.to_thread(attachments.save, directory, attachment, data)
        except AttachmentError as error:
            return Failed(str(error))
        except OSError as error:
            return Failed(f"cannot write in {directory}: {error.strerror or error}")

    async def preview_data(self, attachment: Attachment) -> bytes | None:
        """Image bytes for a preview: the thumbnail if the event has one
        (or the server makes one, for unencrypted images), else the image
        itself when it is small enough. None when there is nothing."""
        if not attachment.is_image or attachment.url is None:
            return None
        try:
            repository = self._repository()
            if attachment.thumbnail_url is not None:
                data = await repository.download(
                    attachment.thumbnail_url, max_bytes=PREVIEW_MAX_BYTES
                )
                if attachment.thumbnail_file is not None:
                    data = attachments.decrypt(data, attachment.thumbnail_file)
                return data
            if attachment.file is None:
                return await repository.thumbnail(attachment.url, *THUMBNAIL_SIZE)
            if attachment.size is not None and attachment.size > PREVIEW_MAX_BYTES:
                return None
            return await self._fetch(attachment, PREVIEW_MAX_BYTES)
        except (MediaError, AttachmentError, *NETWORK_ERRORS) as error:
            log.info("no preview: %s", error)
            return None
