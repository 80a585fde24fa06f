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
# File systems limit a name to 255 bytes (ext4, btrfs, APFS…), not
# characters: a name of 120 CJK characters is 360 bytes (ENAMETOOLONG).
MAX_NAME_BYTES = 255


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


THUMBNAIL_BOX = (800, 600)


def make_thumbnail(data: bytes) -> tuple[bytes, dict[str, Any]] | None:
    """A smaller copy of an image to send beside it (as Element does): for
    encrypted images the server cannot make one. JPEG, or PNG when the
    image has transparency; None when it is small already or undecodable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > 40_000_000:
                return None
            if image.width <= THUMBNAIL_BOX[0] and image.height <= THUMBNAIL_BOX[1]:
                return None
            alpha = "A" in image.getbands() or "transparency" in image.info
            picture = image.convert("RGBA" if alpha else "RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    picture.thumbnail(THUMBNAIL_BOX)
    out = io.BytesIO()
    mimetype = "image/png" if alpha else "image/jpeg"
    picture.save(out, "PNG" if alpha else "JPEG", quality=80)
    thumbnail = out.getvalue()
    info = {"mimetype": mimetype, "size": len(thumbnail), "w": picture.width, "h": picture.height}
    return thumbnail, info


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
    prepared: PreparedFile,
    uri: str,
    file_keys: dict[str, Any] | None,
    thumbnail: tuple[str, dict[str, Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The message content for an uploaded file; `thumbnail` is (its URI,
    its encryption details, its info) for an encrypted image's thumbnail."""
    content: dict[str, Any] = {
        "msgtype": prepared.msgtype,
        "body": prepared.name,
        "filename": prepared.name,
        "info": dict(prepared.info),
    }
    if thumbnail is not None:
        thumbnail_uri, thumbnail_keys, thumbnail_info = thumbnail
        content["info"]["thumbnail_file"] = {"url": thumbnail_uri, **thumbnail_keys}
        content["info"]["thumbnail_info"] = thumbnail_info
    if file_keys is None:
        content["url"] = uri
    else:
        content["file"] = {"url": uri, **file_keys, "mimetype": prepared.mimetype}
    return content


# Controls, separators, bidi overrides, and lone surrogates (which cannot
# be encoded as a file name at all).
_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|\u202a-\u202e\u2066-\u2069\u200e\u200f\ud800-\udfff]"
)


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
    return fit_name(text)


def _cut_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, between characters."""
    return text.encode("utf-8")[: max(0, limit)].decode("utf-8", "ignore")


def fit_name(name: str, suffix: str = "") -> str:
    """`name` with `suffix` (" (2)") before its extension, within
    MAX_NAME_BYTES of UTF-8: the stem is cut, the extension kept."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) > 16:
        stem, extension = name, ""
    tail = suffix + ("." + extension if extension else "")
    room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    return _cut_utf8(stem, room) + tail


def unique_path(directory: Path, name: str) -> Path:
    """A new file in `directory` for `name` (already safe), created empty
    and exclusively: "report.pdf", then "report (1).pdf", …"""
    directory.mkdir(parents=True, exist_ok=True)
    for number in range(10_000):
        candidate = name if number == 0 else fit_name(name, f" ({number})")
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
