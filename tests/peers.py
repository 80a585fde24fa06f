"""A nio-based peer for tests: a second client whose timing the test controls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    Event,
    InviteMemberEvent,
    LoginResponse,
    MatrixRoom,
    MegolmEvent,
    ReceiptEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    TypingNoticeEvent,
)
from nio.api import RoomPreset
from nio.event_builders import ToDeviceMessage

from tuichat.demo.synapse import RegisteredUser


async def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class HeldKey:
    """A Megolm session key the peer has not shared yet."""

    room_id: str
    session_id: str
    session_key: str  # the m.room_key session key, valid from its message index


class NioPeer:
    def __init__(self, homeserver: str, user: RegisteredUser, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.client = AsyncClient(
            homeserver,
            user.user_id,
            store_path=str(store_dir),
            config=AsyncClientConfig(
                encryption_enabled=True, store_sync_tokens=False, max_timeouts=3
            ),
        )
        self.messages: list[tuple[str, str, str]] = []  # (room_id, sender, body)
        # Every room event as received (decrypted when it was encrypted).
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.undecryptable: list[MegolmEvent] = []
        self.invites: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self.client.add_event_callback(self._on_text, RoomMessageText)
        self.client.add_event_callback(self._on_megolm, MegolmEvent)
        self.client.add_event_callback(self._on_invite, InviteMemberEvent)
        self.client.add_event_callback(self._on_event, Event)
        self.ephemeral: list[tuple[str, Any]] = []
        self.client.add_ephemeral_callback(self._on_ephemeral, (TypingNoticeEvent, ReceiptEvent))

    @property
    def user_id(self) -> str:
        return self.user.user_id

    async def _on_text(self, room: MatrixRoom, event: RoomMessageText) -> None:
        self.messages.append((room.room_id, event.sender, event.body))

    async def _on_event(self, room: MatrixRoom, event: Event) -> None:
        # For a decrypted event nio's `source` is the decrypted payload.
        self.events.append((room.room_id, dict(event.source)))

    async def _on_ephemeral(self, room: MatrixRoom, event: Any) -> None:
        self.ephemeral.append((room.room_id, event))

    def find_event(
        self, room_id: str, predicate: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        for room, source in reversed(self.events):
            if room == room_id and predicate(source):
                return source
        return None

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        await wait_until(lambda: room_id in self.client.rooms)
        response = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    async def _on_megolm(self, room: MatrixRoom, event: MegolmEvent) -> None:
        self.undecryptable.append(event)

    async def _on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key == self.user_id and event.membership == "invite":
            self.invites.append(room.room_id)

    async def start(self) -> None:
        response = await self.client.login(self.user.password, device_name="nio-peer")
        assert isinstance(response, LoginResponse), response
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        await self.client.sync(timeout=0, full_state=True)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=1000))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.client.close()

    async def create_room(
        self,
        *,
        invite: list[str] | None = None,
        encrypted: bool = True,
        name: str | None = None,
        direct: bool = False,
    ) -> str:
        initial_state = []
        if encrypted:
            initial_state.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        response = await self.client.room_create(
            name=name,
            invite=invite or [],
            is_direct=direct,
            preset=RoomPreset.trusted_private_chat if direct else RoomPreset.private_chat,
            initial_state=initial_state,
        )
        assert isinstance(response, RoomCreateResponse), response
        await wait_until(lambda: response.room_id in self.client.rooms)
        return response.room_id

    async def join(self, room_id: str) -> None:
        await wait_until(
            lambda: room_id in self.client.invited_rooms or room_id in self.client.rooms
        )
        await self.client.join(room_id)
        await wait_until(lambda: room_id in self.client.rooms)

    async def wait_for_member(self, room_id: str, user_id: str, timeout: float = 20.0) -> None:
        await wait_until(
            lambda: room_id in self.client.rooms and user_id in self.client.rooms[room_id].users,
            timeout,
        )

    async def send_text(self, room_id: str, body: str) -> str:
        await wait_until(lambda: room_id in self.client.rooms)
        response = await self.client.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": body},
            ignore_unverified_devices=True,
        )
        assert isinstance(response, RoomSendResponse), response
        return response.event_id

    async def wait_for_text(self, room_id: str, body: str, timeout: float = 20.0) -> str:
        """Wait until a message with `body` arrived (decrypted); return its sender."""

        def found() -> str | None:
            for room, sender, text in self.messages:
                if room == room_id and text == body:
                    return sender
            return None

        return await wait_until(found, timeout)

    # -- holding keys back (the "late key" scenario) ---------------------------------

    async def send_withholding_key(self, room_id: str, body: str) -> HeldKey:
        """Encrypt `body` with a fresh outbound session whose key nobody got."""
        await wait_until(lambda: room_id in self.client.rooms)
        olm = self.client.olm
        assert olm is not None
        olm.create_outbound_group_session(room_id)
        session = olm.outbound_group_sessions[room_id]
        held = HeldKey(room_id, session.id, session.session_key)
        session.shared = True  # pretend it was shared: no m.room_key goes out
        await self.send_text(room_id, body)
        return held

    def current_key(self, room_id: str) -> HeldKey:
        """The outbound session's key from its *current* index."""
        olm = self.client.olm
        assert olm is not None
        session = olm.outbound_group_sessions[room_id]
        return HeldKey(room_id, session.id, session.session_key)

    async def deliver_key(self, held: HeldKey, user_id: str, device_id: str) -> None:
        """Send the held m.room_key, Olm-encrypted, to one device."""
        olm = self.client.olm
        assert olm is not None
        olm.users_for_key_query.add(user_id)
        await self.client.keys_query()
        device = olm.device_store[user_id][device_id]
        if olm.session_store.get(device.curve25519) is None:
            await self.client.keys_claim({user_id: [device_id]})
        session = olm.session_store.get(device.curve25519)
        assert session is not None, "could not establish an Olm session"
        content = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": held.room_id,
            "session_id": held.session_id,
            "session_key": held.session_key,
        }
        payload = olm._olm_encrypt(session, device, "m.room_key", content)
        response = await self.client.to_device(
            ToDeviceMessage("m.room.encrypted", user_id, device_id, payload)
        )
        assert not hasattr(response, "status_code") or response.status_code is None, response

    # -- the older verification flow, as nio does it ------------------------------------

    async def answer_verification(self, timeout: float = 20.0) -> str:
        """Accept the first start we see; returns its transaction id."""
        txn = await wait_until(lambda: next(iter(self.client.key_verifications), None), timeout)
        await self.client.accept_key_verification(txn)
        return str(txn)

    async def decimals(self, txn: str, timeout: float = 20.0) -> tuple[int, ...]:
        sas = self.client.key_verifications[txn]
        await wait_until(lambda: getattr(sas, "their_sas_key", None), timeout)
        return tuple(sas.get_decimals())

    async def confirm_verification(self, txn: str) -> None:
        await self.client.confirm_short_auth_string(txn)

    def verified(self, txn: str) -> bool:
        sas = self.client.key_verifications.get(txn)
        return bool(sas and sas.verified)
