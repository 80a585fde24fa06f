"""Files through the real Synapse: tuichat and a nio peer each send, the
other downloads and compares bytes, in a plain and an encrypted room; a
tampered encrypted file and a hostile file name; the TUI's upload, preview
and download."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nio import UploadResponse
from nio.crypto.attachments import decrypt_attachment
from textual.widgets import Static

from tests.conftest import UserFactory, log_in, service_and_peer_in_room
from tests.js_peer import JsPeer, requires_js_peer
from tests.peers import NioPeer, wait_until
from tests.recorder import Recorder, ServiceFactory, expect_failed
from tests.test_attachments import png
from tests.test_ui_chat import join_in_ui, type_text, wait_ui
from tuichat.config import Config
from tuichat.demo.synapse import LocalSynapse
from tuichat.matrix.account.session import Profile
from tuichat.model.events import ConnectionState
from tuichat.model.items import TimelineItem
from tuichat.ui.app import TuichatApp
from tuichat.ui.screens.confirm import ConfirmDialog
from tuichat.ui.screens.image_viewer import ImageViewer
from tuichat.ui.widgets.timeline_view import TimelineView
from tuichat.ui.widgets.upload_bar import UploadBar


async def peer_upload(
    peer: NioPeer, room_id: str, data: bytes, name: str, mimetype: str, encrypted: bool
) -> str:
    """The peer uploads `data` (encrypted by nio if asked) and sends it."""
    response, keys = await peer.client.upload(
        io.BytesIO(data), mimetype, name, encrypt=encrypted, filesize=len(data)
    )
    assert isinstance(response, UploadResponse), response
    content: dict[str, Any] = {
        "msgtype": "m.file",
        "body": name,
        "info": {"mimetype": mimetype, "size": len(data)},
    }
    if encrypted:
        assert keys is not None
        content["file"] = {
            "url": response.content_uri,
            "key": keys["key"],
            "iv": keys["iv"],
            "hashes": keys["hashes"],
            "v": "v2",
        }
    else:
        content["url"] = response.content_uri
    return await peer.send_event(room_id, "m.room.message", content)


async def peer_download(peer: NioPeer, content: dict[str, Any]) -> bytes:
    """What the peer gets for tuichat's attachment event."""
    file = content.get("file")
    url = file["url"] if file else content["url"]
    response = await peer.client.download(mxc=url)
    body = response.body
    if file:
        body = decrypt_attachment(body, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
    return body


def _attachment_item(recorder: Recorder, room_id: str, event_id: str) -> Callable[[], Any]:
    def find() -> TimelineItem | None:
        item = recorder.item(room_id, event_id)
        return item if item is not None and item.attachment is not None else None

    return find


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_files_both_ways_with_a_nio_peer(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    tmp_path: Path,
    encrypted: bool,
) -> None:
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=encrypted
    )

    # tuichat sends an image: the peer downloads the same bytes.
    image = tmp_path / "sunset.png"
    image.write_bytes(png(64, 48))
    progress: list[tuple[int, int]] = []
    await service.send_file(room_id, image, lambda done, total: progress.append((done, total)))
    assert progress and progress[-1][0] == progress[-1][1]
    sent = await wait_until(
        lambda: peer.find_event(room_id, lambda e: e.get("content", {}).get("body") == "sunset.png")
    )
    content = sent["content"]
    assert content["msgtype"] == "m.image"
    assert content["info"] == {
        "mimetype": "image/png",
        "size": len(image.read_bytes()),
        "w": 64,
        "h": 48,
    }
    if encrypted:
        assert "url" not in content and content["file"]["v"] == "v2"
        # The server holds ciphertext only.
        stored = (await peer.client.download(mxc=content["file"]["url"])).body
        assert stored != image.read_bytes()
    else:
        assert "file" not in content
    assert await peer_download(peer, content) == image.read_bytes()

    # A large image in an encrypted room carries an encrypted thumbnail (the
    # server cannot make one); a plain room leaves thumbnails to the server.
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(1600, 1200))
    await service.send_file(room_id, photo)
    photo_event = await wait_until(
        lambda: peer.find_event(room_id, lambda e: e.get("content", {}).get("body") == "photo.png")
    )
    info = photo_event["content"]["info"]
    if encrypted:
        assert info["thumbnail_info"]["mimetype"] == "image/jpeg"
        assert (info["thumbnail_info"]["w"], info["thumbnail_info"]["h"]) == (800, 600)
        thumbnail = await peer_download(peer, {"file": info["thumbnail_file"]})
        assert thumbnail[:3] == b"\xff\xd8\xff"  # a JPEG
        assert len(thumbnail) == info["thumbnail_info"]["size"]
    else:
        assert "thumbnail_file" not in info and "thumbnail_info" not in info

    # The peer sends a file with a hostile name: tuichat saves it safely.
    data = bytes(range(256)) * 40
    hostile = "../../.bashrc\x1b]0;x\x07"
    event_id = await peer_upload(
        peer, room_id, data, hostile, "application/octet-stream", encrypted
    )
    item = await wait_until(_attachment_item(recorder, room_id, event_id), 30)
    assert item.attachment.encrypted is encrypted
    downloads = tmp_path / "downloads"
    path = await service.download(item.attachment, downloads)
    # No directory part, no leading dot, the control characters shown as
    # pictures (as on screen) rather than kept.
    assert path.parent == downloads and path.name == "bashrc␛]0;x␇"
    assert path.read_bytes() == data
    again = await service.download(item.attachment, downloads)
    assert again.name == "bashrc␛]0;x␇ (1)" and path.read_bytes() == data


async def test_a_tampered_encrypted_file_is_not_saved(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    tmp_path: Path,
) -> None:
    service, recorder, peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=True
    )
    original = b"the real contract"
    response, keys = await peer.client.upload(
        io.BytesIO(original), "text/plain", "contract.txt", encrypt=True, filesize=len(original)
    )
    assert keys is not None
    forged = hashlib.sha256(b"something else").digest()
    import base64

    keys["hashes"]["sha256"] = base64.b64encode(forged).decode().rstrip("=")
    event_id = await peer.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.file",
            "body": "contract.txt",
            "file": {"url": response.content_uri, "v": "v2", **keys},
        },
    )
    item = await wait_until(_attachment_item(recorder, room_id, event_id), 30)
    downloads = tmp_path / "downloads"
    expect_failed(await service.download(item.attachment, downloads), "checksum")
    assert not downloads.exists() or not any(downloads.iterdir())


async def test_files_over_the_servers_limit_are_refused_up_front(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    tmp_path: Path,
) -> None:
    service, _recorder, _peer, room_id = await service_and_peer_in_room(
        synapse, new_user, profile, peer_factory, start_service, encrypted=True
    )
    assert await service.upload_limit() == 50 * 1024 * 1024  # the test Synapse's max_upload_size
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024 + 1)
    expect_failed(
        await service.send_file(room_id, big),
        r"big.bin is 50.0 MB; this server accepts files up to 50.0 MB",
    )


async def test_the_tui_uploads_with_progress_previews_and_saves(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=True, name="Files")
    downloads = tmp_path / "downloads"
    config = Config(download_dir=downloads, path=tmp_path / "config.toml")
    app = TuichatApp(profile, sync_timeout_ms=1000, config=config)
    opened: list[Path] = []
    import tuichat.ui.controllers.attachments as app_module

    app_module.open_with_system = opened.append  # type: ignore[assignment]
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
        await join_in_ui(pilot, app, peer, room_id, alice.user_id)

        image = tmp_path / "chart.png"
        image.write_bytes(png(120, 80))
        bar = app.query_one(UploadBar)
        shown: list[str] = []
        original_start = bar.start
        bar.start = lambda name, total: (shown.append(name), original_start(name, total))[1]  # type: ignore[method-assign]
        await type_text(pilot, f"/upload {image}")
        sent = await wait_until(
            lambda: peer.find_event(
                room_id, lambda e: e.get("content", {}).get("body") == "chart.png"
            ),
            30,
        )
        assert shown == ["chart.png"] and not bar.has_class("-visible")
        assert await peer_download(peer, sent["content"]) == image.read_bytes()
        view = app.query_one(TimelineView)
        # The image's preview (half blocks) fills in under it.
        await wait_ui(
            pilot, lambda: any("▄" in line or "▀" in line for line in view.line_texts()), 30
        )
        line = next(t for t in view.line_texts() if "chart.png" in t)
        assert "[image] chart.png (image/png" in line

        # v shows it large (half blocks: no graphics protocol here).
        await pilot.press("ctrl+s", "v")
        viewer = await wait_ui(
            pilot, lambda: isinstance(app.screen, ImageViewer) and app.screen, 30
        )
        # Decoded in a worker: "Loading…" first, then the half blocks.
        await wait_ui(pilot, lambda: "▄" in str(viewer.query_one("#image", Static).render()))
        await pilot.press("escape")
        await wait_ui(pilot, lambda: not isinstance(app.screen, ImageViewer))

        # Enter on the selected file saves it and offers to open it.
        await pilot.press("ctrl+s")
        await pilot.press("enter")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog), 30)
        saved = downloads / "chart.png"
        assert saved.read_bytes() == image.read_bytes()
        await pilot.press("y")
        await pilot.pause()
        assert opened == [saved]

        # Saving from the viewer keeps what the viewer fetched: one more copy.
        await pilot.press("ctrl+s", "v")
        await wait_ui(pilot, lambda: isinstance(app.screen, ImageViewer), 30)
        await pilot.press("s")
        await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog), 30)
        assert (downloads / "chart (1).png").read_bytes() == image.read_bytes()
        await pilot.press("n")


@requires_js_peer
async def test_files_both_ways_with_the_matrix_js_sdk_peer(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    js_peer_factory: Callable[..., Any],
    start_service: ServiceFactory,
    tmp_path: Path,
) -> None:
    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    await log_in(synapse, profile, alice)
    recorder = Recorder()
    service = await start_service(profile, recorder)
    js: JsPeer = await js_peer_factory(bob)
    room_id = await js.create_room(invite=[alice.user_id], name="Files with Element's stack")
    await wait_until(lambda: room_id in recorder.rooms(), 30)
    await service.join(room_id)
    await wait_until(lambda: service.states.get(room_id) and service.states[room_id].encrypted, 30)
    await js.wait_for_member(room_id, alice.user_id)

    data = b"%PDF-1.7 not really\n" * 300
    event_id = await js.send_file(room_id, data, "minutes.pdf", "application/pdf")
    item = await wait_until(_attachment_item(recorder, room_id, event_id), 30)
    assert item.attachment.encrypted
    path = await service.download(item.attachment, tmp_path / "downloads")
    assert path.name == "minutes.pdf" and path.read_bytes() == data

    image = tmp_path / "diagram.png"
    image.write_bytes(png(30, 20))
    await service.send_file(room_id, image)
    received = await js.wait_for_event(room_id, "m.room.message", sender=alice.user_id)
    assert received["encrypted"] and received["content"]["msgtype"] == "m.image"
    assert "url" not in received["content"]
    assert await js.download_file(received["content"]) == image.read_bytes()


async def test_a_failed_upload_is_retried_with_ctrl_r_and_download_saves_the_latest(
    synapse: LocalSynapse,
    new_user: UserFactory,
    profile: Profile,
    peer_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """The server fails the upload (a proxy answers 504): Ctrl+R sends it
    again. (A missing file is not retried: there is nothing to try again.)"""
    from tests.fault_proxy import FaultProxy
    from tuichat.matrix.account.login import login

    alice, bob = new_user("alice", "Alice"), new_user("bob", "Bob")
    proxy = FaultProxy(synapse.url)
    url = await proxy.start()
    await login(profile, homeserver=url, user=alice.user_id, password=alice.password)
    peer: NioPeer = await peer_factory(bob)
    room_id = await peer.create_room(invite=[alice.user_id], encrypted=False, name="Retry")
    downloads = tmp_path / "downloads"
    config = Config(download_dir=downloads, path=tmp_path / "config.toml")
    app = TuichatApp(profile, sync_timeout_ms=1000, config=config)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await _retry_then_download(pilot, app, proxy, peer, room_id, tmp_path, downloads)
    finally:
        await proxy.close()


async def _retry_then_download(
    pilot: Any,
    app: TuichatApp,
    proxy: Any,
    peer: NioPeer,
    room_id: str,
    tmp_path: Path,
    downloads: Path,
) -> None:
    await wait_ui(pilot, lambda: app.state.connection is ConnectionState.SYNCED)
    await wait_ui(pilot, lambda: app.state.rooms.get(room_id))
    await type_text(pilot, f"/join {room_id}")
    await wait_ui(pilot, lambda: app.state.current_room_id == room_id)
    notes = tmp_path / "notes.txt"
    notes.write_text("written after all")
    rule = proxy.fail("/media/v3/upload", 100)
    await type_text(pilot, f"/upload {notes}")
    feedback = app.main.feedback
    await wait_ui(pilot, lambda: "Upload failed" in str(feedback.render()))
    assert "Ctrl+R" in str(feedback.render()) and rule.served
    rule.remaining = 0
    await pilot.press("ctrl+r")
    await wait_until(
        lambda: peer.find_event(room_id, lambda e: e.get("content", {}).get("body") == "notes.txt"),
        30,
    )
    await wait_ui(
        pilot,
        lambda: any(i.attachment is not None and i.event_id for i in app.state.timelines[room_id]),
    )
    await type_text(pilot, "/download")
    await wait_ui(pilot, lambda: isinstance(app.screen, ConfirmDialog), 30)
    assert (downloads / "notes.txt").read_text() == "written after all"
