"""Files as messages: what goes into an attachment event, its encryption,
and where a downloaded file may be written.

Encryption is the spec's "encrypted attachments" (AES-256-CTR, a random
key and IV per file, SHA-256 of the ciphertext), done by nio's
`nio.crypto.attachments`; the event then carries `file` (url, key, iv,
hashes, v2) instead of `url`.

File names in events are remote and hostile. `safe_filename` keeps only a
plain name (no directory parts, no `..`, no control or bidi characters, no
leading dot, a bounded length), and `unique_path` never overwrites: an
existing name gets a number, and the file is created exclusively.
"""

from __future__ import annotations

import io
import mimetypes
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nio.crypto.attachments import decrypt_attachment, encrypt_attachment
from nio.exceptions import EncryptionError

from tuichat.model.items import Attachment

MSGTYPES = {"image": "m.image", "video": "m.video", "audio": "m.audio"}
MAX_NAME = 120


class AttachmentError(Exception):
    """An attachment cannot be sent or saved; the message says why."""


@dataclass(frozen=True)
class PreparedFile:
    name: str
    data: bytes
    mimetype: str
    msgtype: str
    info: dict[str, Any]


def msgtype_for(mimetype: str) -> str:
    return MSGTYPES.get(mimetype.split("/", 1)[0], "m.file")


def prepare(path: Path) -> PreparedFile:
    """Read a file to send and describe it (type, size, image dimensions)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AttachmentError(f"cannot read {path}: {error.strerror or error}") from None
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    msgtype = msgtype_for(mimetype)
    info: dict[str, Any] = {"mimetype": mimetype, "size": len(data)}
    if msgtype == "m.image":
        size = image_size(data)
        if size is not None:
            info["w"], info["h"] = size
    return PreparedFile(path.name, data, mimetype, msgtype, info)


def image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def encrypt(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """The ciphertext and the `file` fields except `url`."""
    ciphertext, keys = encrypt_attachment(data)
    return ciphertext, {
        "key": keys["key"],
        "iv": keys["iv"],
        "hashes": keys["hashes"],
        "v": "v2",
    }


def decrypt(ciphertext: bytes, file: dict[str, Any]) -> bytes:
    """Check the SHA-256 of the ciphertext and decrypt; AttachmentError if
    the file was altered or its keys are malformed."""
    try:
        key = file["key"]["k"]
        sha256 = file["hashes"]["sha256"]
        iv = file["iv"]
        if not all(isinstance(v, str) for v in (key, sha256, iv)):
            raise TypeError
    except (KeyError, TypeError):
        raise AttachmentError("the event's encryption details are incomplete") from None
    try:
        return decrypt_attachment(ciphertext, key, sha256, iv)
    except EncryptionError:
        raise AttachmentError(
            "the file does not match its checksum: it was altered, not saved"
        ) from None
    except (ValueError, TypeError) as error:
        raise AttachmentError(f"the file cannot be decrypted: {error}") from None


def content_for(
    prepared: PreparedFile, uri: str, file_keys: dict[str, Any] | None
) -> dict[str, Any]:
    """The message content for an uploaded file."""
    content: dict[str, Any] = {
        "msgtype": prepared.msgtype,
        "body": prepared.name,
        "filename": prepared.name,
        "info": dict(prepared.info),
    }
    if file_keys is None:
        content["url"] = uri
    else:
        content["file"] = {"url": uri, **file_keys, "mimetype": prepared.mimetype}
    return content


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def safe_filename(name: object) -> str:
    """A plain file name from a remote one."""
    text = unicodedata.normalize("NFC", name) if isinstance(name, str) else ""
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text)
    text = text.strip().lstrip(".").strip()
    if not text or set(text) <= {".", "_", " "}:
        text = "attachment"
    if len(text) > MAX_NAME:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            text = stem[: MAX_NAME - len(extension) - 1] + "." + extension
        else:
            text = text[:MAX_NAME]
    return text


def unique_path(directory: Path, name: str) -> Path:
    """A new file in `directory` for `name` (already safe), created empty
    and exclusively: "report.pdf", then "report (1).pdf", …"""
    directory.mkdir(parents=True, exist_ok=True)
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    for number in range(10_000):
        candidate = (
            name if number == 0 else f"{stem} ({number}){'.' + extension if extension else ''}"
        )
        path = directory / candidate
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(descriptor)
        return path
    raise AttachmentError(f"no free file name for {name} in {directory}")


def save(directory: Path, attachment: Attachment, data: bytes) -> Path:
    path = unique_path(directory, safe_filename(attachment.name))
    try:
        path.write_bytes(data)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    return path
