"""Attachments without a network: names, paths, mxc URIs, encryption."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tuichat.matrix.content import file_messages as attachments
from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.file_messages import AttachmentError, safe_filename, unique_path
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.transport.media import parse_mxc
from tuichat.model.rooms import Membership
from tuichat.ui.widgets.composer import path_matches
from tuichat.ui.widgets.image_preview import preview_lines


def png(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 220)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("remote", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("/absolute/path.txt", "path.txt"),
        ("..", "attachment"),
        (".bashrc", "bashrc"),
        ("evil\x1b]52;c;x\x07.txt", "evil_]52;c;x_.txt"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),
        ("", "attachment"),
        (None, "attachment"),
        ("a" * 300 + ".jpeg", "a" * 115 + ".jpeg"),
        ('con:"<>|?*.txt', "con_______.txt"),
    ],
)
def test_hostile_file_names_become_plain_names(remote: object, safe: str) -> None:
    assert safe_filename(remote) == safe


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    first = unique_path(tmp_path, "photo.jpg")
    first.write_bytes(b"mine")
    second = unique_path(tmp_path, "photo.jpg")
    third = unique_path(tmp_path, "photo.jpg")
    assert [p.name for p in (first, second, third)] == [
        "photo.jpg",
        "photo (1).jpg",
        "photo (2).jpg",
    ]
    assert first.read_bytes() == b"mine"
    assert unique_path(tmp_path, "README").name == "README"
    assert unique_path(tmp_path, "README").name == "README (1)"


@pytest.mark.parametrize(
    "remote",
    [
        "報告書" * 50 + ".pdf",  # 150 CJK characters: 450 bytes
        "😀" * 200 + ".png",  # four bytes each
        "é" * 300,  # no extension
        "a\ud800b.txt",  # a lone surrogate cannot be a file name
    ],
)
def test_long_names_fit_in_255_bytes_and_can_be_saved_twice(remote: str, tmp_path: Path) -> None:
    name = safe_filename(remote)
    assert len(name.encode("utf-8")) <= 255
    extension = remote.rpartition(".")[2] if "." in remote else ""
    assert name.endswith("." + extension if extension else name[-1])
    first = unique_path(tmp_path, name)
    second = unique_path(tmp_path, name)
    assert first.exists() and second.exists() and first != second
    assert len(second.name.encode("utf-8")) <= 255
    assert second.name.endswith(" (1)." + extension if extension else " (1)")


@pytest.mark.parametrize(
    ("uri", "valid"),
    [
        ("mxc://example.org/AbC_12-x", True),
        ("mxc://127.0.0.1:8448/abc", True),
        ("mxc://[::1]:8448/abc", True),
        ("mxc://example.org/../../_matrix/client/v3/logout", False),
        ("mxc://example.org/abc?access_token=x", False),
        ("mxc://exa mple.org/abc", False),
        ("mxc://example.org/", False),
        ("https://example.org/abc", False),
        ("mxc://example.org/abc/def", False),
        (42, False),
    ],
)
def test_mxc_uris_are_validated(uri: object, valid: bool) -> None:
    assert (parse_mxc(uri) is not None) is valid


def test_encrypted_files_round_trip_and_a_tampered_one_is_refused() -> None:
    data = b"the plans" * 1000
    ciphertext, keys = attachments.encrypt(data)
    assert ciphertext != data and keys["v"] == "v2" and keys["key"]["alg"] == "A256CTR"
    assert attachments.decrypt(ciphertext, keys) == data
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(AttachmentError, match="checksum"):
        attachments.decrypt(tampered, keys)
    with pytest.raises(AttachmentError, match="incomplete"):
        attachments.decrypt(ciphertext, {"url": "mxc://x/y"})


def test_files_are_described_by_type_and_size(tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(png(64, 48))
    prepared = attachments.prepare(image)
    assert (prepared.msgtype, prepared.mimetype) == ("m.image", "image/png")
    assert prepared.info == {
        "mimetype": "image/png",
        "size": len(image.read_bytes()),
        "w": 64,
        "h": 48,
    }
    for name, msgtype in (
        ("a.mp3", "m.audio"),
        ("a.mp4", "m.video"),
        ("a.pdf", "m.file"),
        ("a", "m.file"),
    ):
        (tmp_path / name).write_bytes(b"x")
        assert attachments.prepare(tmp_path / name).msgtype == msgtype


def test_attachment_events_become_items_only_with_valid_uris() -> None:
    state = RoomState("!r", Membership.JOIN)

    def item(content: dict[str, object]):  # type: ignore[no-untyped-def]
        event = {"type": "m.room.message", "event_id": "$e", "sender": "@b:x", "content": content}
        return to_item(event, state, Viewer("@me:x"))

    good = item(
        {
            "msgtype": "m.image",
            "body": "cat.png",
            "url": "mxc://x.org/cat",
            "info": {"mimetype": "image/png", "size": 2048, "w": 10, "h": 5},
        }
    )
    assert good.attachment.url == "mxc://x.org/cat" and good.attachment.is_image
    assert good.body == "[image] cat.png (image/png, 2.0 KB)"
    bad = item({"msgtype": "m.file", "body": "x", "url": "mxc://x.org/../../logout"})
    assert bad.attachment.url is None and bad.body.endswith("unavailable")
    encrypted = item(
        {"msgtype": "m.file", "body": "f", "file": {"url": "mxc://x.org/f", "key": {}, "iv": ""}}
    )
    assert encrypted.attachment.encrypted and encrypted.attachment.url == "mxc://x.org/f"


def test_previews_are_half_blocks_within_bounds() -> None:
    lines = preview_lines(png(400, 300))
    assert lines is not None and 0 < len(lines) <= 10
    assert all(sum(len(s.text) for s in line) <= 40 for line in lines)
    assert preview_lines(b"not an image") is None


def test_upload_paths_complete(tmp_path: Path) -> None:
    (tmp_path / "report-2026.pdf").write_bytes(b"x")
    (tmp_path / "report-2025.pdf").write_bytes(b"x")
    assert path_matches(str(tmp_path / "rep")) == [
        str(tmp_path / "report-2025.pdf"),
        str(tmp_path / "report-2026.pdf"),
    ]


def test_only_terminals_that_may_show_images_are_asked() -> None:
    from tuichat.ui.graphics import may_show_images

    assert may_show_images({"TERM": "xterm-kitty"})
    assert may_show_images({"TERM_PROGRAM": "WezTerm"})
    assert may_show_images({"TERM": "foot"})
    assert not may_show_images({"TERM": "xterm-256color"})
    assert not may_show_images({})


def test_kitty_previews_are_placeholder_cells_for_an_image_sent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import textual_image.renderable.tgp as tgp

    sent: list[dict[str, object]] = []
    monkeypatch.setattr(tgp, "_send_tgp_message", lambda **fields: sent.append(fields))
    lines = preview_lines(png(200, 100), kitty=True)
    assert lines is not None and len(lines) == 10
    # Each cell: U+10EEEE with row/column diacritics, coloured by image id.
    first = "".join(segment.text for segment in lines[0])
    assert first.count("\U0010eeee") == 40
    from rich.cells import cell_len

    assert all(cell_len("".join(s.text for s in line)) == 40 for line in lines)
    # The image data went out once, then a virtual placement (U=1).
    assert [message.get("a") for message in sent] == [None, "p"]
    assert sent[1]["U"] == 1 and sent[1]["c"] == 40 and sent[1]["r"] == 10


def test_thumbnails_are_made_only_for_large_images() -> None:
    assert attachments.make_thumbnail(png(640, 480)) is None  # small enough already
    made = attachments.make_thumbnail(png(2000, 1000))
    assert made is not None
    data, info = made
    assert info == {"mimetype": "image/jpeg", "size": len(data), "w": 800, "h": 400}
    buffer = io.BytesIO()
    Image.new("RGBA", (1000, 1000), (0, 0, 0, 0)).save(buffer, "PNG")
    transparent = attachments.make_thumbnail(buffer.getvalue())
    assert transparent is not None and transparent[1]["mimetype"] == "image/png"
    assert attachments.make_thumbnail(b"not an image") is None
