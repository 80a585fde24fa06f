"""Drive the matrix-js-sdk peer (tests/js/peer.mjs) from Python tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"


def js_peer_available() -> bool:
    return shutil.which("node") is not None and (JS_DIR / "node_modules" / "matrix-js-sdk").is_dir()


# Locally, without Node or `npm ci`, these tests are skipped; in CI (where
# `make test` installs them) a missing peer is a failure, never a skip.
requires_js_peer = pytest.mark.skipif(
    not js_peer_available() and not os.environ.get("CI"),
    reason="node or tests/js/node_modules missing (make test runs npm ci)",
)


class JsPeerError(RuntimeError):
    pass


class JsPeer:
    """One matrix-js-sdk client (one device) in a Node process."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.process: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.user_id = ""
        self.device_id = ""
        self.ed25519 = ""
        self.curve25519 = ""

    async def start(self) -> None:
        self._log = open(self.log_file, "ab")  # noqa: SIM115, ASYNC230
        self.process = await asyncio.create_subprocess_exec(
            "node",
            str(JS_DIR / "peer.mjs"),
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            limit=16 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), 30)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                break
            message = json.loads(line)
            if "id" in message:
                future = self._pending.pop(message["id"], None)
                if future is None or future.done():
                    continue
                if message["ok"]:
                    future.set_result(message.get("result"))
                else:
                    future.set_exception(JsPeerError(message.get("error", "failed")))
            elif message.get("event") == "ready":
                self._ready.set()
            else:
                self.events.append(message)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(JsPeerError(f"js peer exited; see {self.log_file}"))

    async def call(self, cmd: str, timeout: float = 60.0, **args: Any) -> Any:
        assert self.process is not None and self.process.stdin is not None
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.process.stdin.write(
            (json.dumps({"id": request_id, "cmd": cmd, "args": args}) + "\n").encode()
        )
        await self.process.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    async def login(
        self, homeserver: str, user: str, password: str, device_name: str = "js-peer"
    ) -> None:
        keys = await self.call(
            "login", homeserver=homeserver, user=user, password=password, deviceName=device_name
        )
        self.user_id = keys["user_id"]
        self.device_id = keys["device_id"]
        self.ed25519 = keys["ed25519"]
        self.curve25519 = keys["curve25519"]

    async def create_room(
        self,
        invite: list[str],
        encrypted: bool = True,
        name: str | None = None,
        is_direct: bool = False,
        preset: str | None = None,
    ) -> str:
        return str(
            await self.call(
                "createRoom",
                invite=invite,
                encrypted=encrypted,
                name=name,
                isDirect=is_direct,
                preset=preset,
            )
        )

    async def create_space(self, name: str, invite: list[str] | None = None) -> str:
        return str(await self.call("createSpace", name=name, invite=invite or []))

    async def add_space_child(
        self, space_id: str, child_id: str, order: str | None = None, suggested: bool = False
    ) -> None:
        await self.call(
            "addSpaceChild", spaceId=space_id, childId=child_id, order=order, suggested=suggested
        )

    async def join(self, room_id: str) -> None:
        await self.call("join", roomId=room_id)

    async def wait_for_member(self, room_id: str, user_id: str) -> None:
        await self.call("waitForMember", roomId=room_id, userId=user_id)

    async def send(self, room_id: str, body: str) -> str:
        return str(await self.call("send", roomId=room_id, body=body))

    async def wait_for_message(
        self, room_id: str, body: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        return dict(
            await self.call(
                "waitForMessage",
                timeout=timeout + 5,
                roomId=room_id,
                body=body,
                timeoutMs=int(timeout * 1000),
            )
        )

    async def send_thread_reply(
        self,
        room_id: str,
        root: str,
        body: str,
        latest: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        """A reply in thread `root`, as Element sends it."""
        return str(
            await self.call(
                "sendThreadReply",
                roomId=room_id,
                rootId=root,
                body=body,
                latest=latest,
                replyTo=reply_to,
            )
        )

    async def wait_for_thread_event(
        self, room_id: str, root: str, body: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The first message the SDK places in thread `root` (by its own
        `threadRootId`): type, content, relation."""
        return dict(
            await self.call(
                "waitForThreadEvent",
                timeout=timeout + 5,
                roomId=room_id,
                rootId=root,
                body=body,
                timeoutMs=int(timeout * 1000),
            )
        )

    async def send_threaded_receipt(self, room_id: str, event_id: str, thread_id: str) -> None:
        await self.call("sendThreadedReceipt", roomId=room_id, eventId=event_id, threadId=thread_id)

    async def server_receipts(self, room_id: str) -> list[dict[str, Any]]:
        """The room's read receipts a fresh sync brings: event_id, user_id,
        thread_id."""
        return list(await self.call("serverReceipts", roomId=room_id))

    async def discard_room_key(self, room_id: str) -> None:
        """Start a new Megolm session for the next message (sent to every
        device over Olm)."""
        await self.call("discardRoomKey", roomId=room_id)

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], encrypted: bool = True
    ) -> str:
        """`encrypted`: the room is, and the peer waits until it knows so."""
        return str(
            await self.call(
                "sendEvent", roomId=room_id, type=event_type, content=content, encrypted=encrypted
            )
        )

    async def send_poll(
        self, room_id: str, question: str, answers: list[str], disclosed: bool = True
    ) -> tuple[str, dict[str, Any]]:
        """A poll as Element starts one: (its event id, its content)."""
        sent = await self.call(
            "sendPoll", roomId=room_id, question=question, answers=answers, disclosed=disclosed
        )
        return str(sent["eventId"]), dict(sent["content"])

    async def vote_poll(self, room_id: str, poll_event_id: str, answer_ids: list[str]) -> str:
        return str(
            await self.call(
                "votePoll", roomId=room_id, pollEventId=poll_event_id, answerIds=answer_ids
            )
        )

    async def end_poll(self, room_id: str, poll_event_id: str) -> str:
        return str(await self.call("endPoll", roomId=room_id, pollEventId=poll_event_id))

    async def wait_for_event(
        self,
        room_id: str,
        event_type: str,
        rel_type: str | None = None,
        sender: str | None = None,
        timeout: float = 30.0,
        nth: int = 0,
    ) -> dict[str, Any]:
        """The first (or `nth`, from 0) event of `event_type` (with that
        relation, from that sender) the peer received, decrypted: type,
        content, relation."""
        return dict(
            await self.call(
                "waitForEvent",
                timeout=timeout + 5,
                roomId=room_id,
                type=event_type,
                relType=rel_type,
                sender=sender,
                timeoutMs=int(timeout * 1000),
                nth=nth,
            )
        )

    async def send_file(self, room_id: str, data: bytes, name: str, mimetype: str) -> str:
        """Upload (encrypted with WebCrypto in an encrypted room) and send."""
        return str(
            await self.call(
                "sendFile",
                roomId=room_id,
                dataB64=base64.b64encode(data).decode(),
                name=name,
                mimetype=mimetype,
            )
        )

    async def download_file(self, content: dict[str, Any]) -> bytes:
        """The bytes of an attachment event's file, decrypted and checked."""
        return base64.b64decode(await self.call("downloadFile", content=content))

    async def export_keys(self, passphrase: str, rounds: int = 500_000) -> str:
        return str(await self.call("exportKeys", passphrase=passphrase, rounds=rounds))

    async def import_keys(self, text: str, passphrase: str) -> int:
        return int(await self.call("importKeys", text=text, passphrase=passphrase))

    async def device_keys(self, user_id: str) -> list[dict[str, Any]]:
        return list(await self.call("deviceKeys", userId=user_id))

    # -- verification ---------------------------------------------------------------

    async def request_verification(self, user_id: str, device_id: str) -> str:
        return str(await self.call("requestVerification", userId=user_id, deviceId=device_id))

    async def accept_verification(self) -> dict[str, Any]:
        return dict(await self.call("acceptVerification"))

    async def start_sas(self, txn: str) -> None:
        await self.call("startSas", txn=txn)

    async def set_verification_methods(self, methods: list[str]) -> None:
        await self.call("setVerificationMethods", methods=methods)

    async def verification_methods(self, txn: str) -> dict[str, Any]:
        return await self.call("verificationMethods", txn=txn)

    async def scan_qr_code(self, txn: str, data: bytes) -> None:
        await self.call("scanQrCode", txn=txn, data=base64.b64encode(data).decode())

    async def wait_sas(self, txn: str) -> dict[str, Any]:
        return dict(await self.call("waitSas", txn=txn))

    async def confirm_sas(self, txn: str) -> None:
        await self.call("confirmSas", txn=txn)

    async def mismatch_sas(self, txn: str) -> None:
        await self.call("mismatchSas", txn=txn)

    async def verification_state(self, txn: str, wait_for: str | None = None) -> dict[str, Any]:
        return dict(await self.call("verificationState", txn=txn, waitFor=wait_for))

    async def is_verified(self, user_id: str, device_id: str) -> bool:
        return bool(await self.call("isVerified", userId=user_id, deviceId=device_id))

    # -- recovery ---------------------------------------------------------------------

    async def bootstrap_recovery(self, passphrase: str | None = None) -> dict[str, Any]:
        """Cross-signing, secret storage and a new key backup, as Element sets
        them up; returns the recovery key and the backup version."""
        return dict(await self.call("bootstrapRecovery", timeout=120, passphrase=passphrase))

    async def bootstrap_cross_signing(self) -> dict[str, Any]:
        """Cross-signing keys only, no secret storage or key backup (an
        Element account before it sets up recovery)."""
        return dict(await self.call("bootstrapCrossSigning", timeout=120))

    async def restore_from_backup(self, recovery_key: str) -> dict[str, Any]:
        return dict(await self.call("restoreFromBackup", timeout=120, recoveryKey=recovery_key))

    # -- cross-signing ------------------------------------------------------------------

    async def set_isolation(self, mode: str) -> None:
        """ "onlySigned" (Element's "exclude insecure devices") or "all"."""
        await self.call("setIsolation", mode=mode)

    async def device_status(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        result = await self.call("deviceStatus", userId=user_id, deviceId=device_id)
        return dict(result) if result else None

    async def user_status(self, user_id: str) -> dict[str, Any]:
        return dict(await self.call("userStatus", userId=user_id))

    async def request_verification_dm(self, user_id: str, room_id: str) -> str:
        return str(await self.call("requestVerificationDM", userId=user_id, roomId=room_id))

    async def reset_cross_signing(self) -> None:
        await self.call("resetCrossSigning", timeout=120)

    # -- notifications (issue 23) ---------------------------------------------------------

    async def set_room_notif_state(self, room_id: str, state: str) -> None:
        """Write a room's setting as Element does ("all", "all_loud",
        "mentions", "mute")."""
        await self.call("setRoomNotifState", roomId=room_id, state=state)

    async def room_notif_state(self, room_id: str, wait_for: str | None = None) -> str:
        """The room's setting as Element reads it from the synced rules."""
        return str(await self.call("roomNotifState", roomId=room_id, waitFor=wait_for))

    async def push_actions(self, room_id: str, event_id: str) -> dict[str, bool]:
        return dict(await self.call("pushActions", roomId=room_id, eventId=event_id))

    async def rule_notifies(self, kind: str, rule_id: str, wait_for: bool | None = None) -> bool:
        return bool(await self.call("ruleNotifies", kind=kind, ruleId=rule_id, waitFor=wait_for))

    async def set_marked_unread(self, room_id: str, unread: bool) -> None:
        await self.call("setMarkedUnread", roomId=room_id, unread=unread)

    async def marked_unread(self, room_id: str, wait_for: bool | None = None) -> bool:
        return bool(await self.call("markedUnread", roomId=room_id, waitFor=wait_for))

    async def set_power_level(self, room_id: str, user_id: str, level: int) -> None:
        await self.call("setPowerLevel", roomId=room_id, userId=user_id, level=level)

    # -- dehydrated devices (MSC3814, issue 26) -----------------------------------------

    async def start_dehydration(
        self, recovery_key: str | None = None, rehydrate: bool = True, create_new_key: bool = False
    ) -> dict[str, Any]:
        """Element's `startDehydration` (with the recovery key first, as on a
        new login): {rehydrated, error, room_keys, to_device}."""
        return dict(
            await self.call(
                "startDehydration",
                timeout=120,
                recoveryKey=recovery_key,
                rehydrate=rehydrate,
                createNewKey=create_new_key,
            )
        )

    async def dehydrated_device(self) -> dict[str, Any] | None:
        result = await self.call("dehydratedDevice")
        return dict(result) if result else None

    async def logout(self) -> None:
        await self.call("logout")

    async def close(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(JsPeerError, TimeoutError, ConnectionError):
                await self.call("stop", timeout=10)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
        self._log.close()
