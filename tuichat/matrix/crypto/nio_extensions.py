"""Where tuichat extends nio's Olm machine and client, and why.

Each override names the gap in nio 0.26 it closes (the spec's End-to-End
Encryption module is the reference):

- Fallback keys: nio never publishes one. `share_keys` adds a signed
  fallback key whenever the server reports none unused.
- Kill-safe uploads: nio saves new one-time keys only after the server
  confirmed them, so a crash in between leaves keys on the server whose
  private halves are gone. `share_keys` saves the account first.
- A known Megolm session is never downgraded: nio's store replaces a
  session with any newer copy, even one that starts at a later message
  index or came by forwarding. `_add_inbound_session` keeps the better one.
- Forwarded keys are also accepted from the device that created the
  session (nio only takes them from our own verified devices).
- Where keys came from (direct, forwarded, imported) is recorded, and every
  key that arrives is reported so waiting events can be retried; nio never
  retries decryption.
- Outbound sessions are not dropped on every membership change, device
  change or trust change: tuichat rotates on leaves, bans, removed or
  blacklisted devices and history visibility changes itself
  (`group_sessions.py`).
- Key verification is tuichat's (`sas.py`, `verification.py`): nio's own
  handling would answer Element's messages with cancellations.
- Olm-encrypted to-device messages nio does not understand (verification
  steps, secrets) are kept for tuichat instead of being dropped.
- A known device whose identity keys change is flagged and keeps its old
  keys; nio silently accepts a new Curve25519 key. A new device is
  reported, unless it is a dehydrated device (MSC3814).
- An error answer to /keys/claim is a KeysClaimError, not a TypeError.
- /keys/query answers are also handed over raw, for cross-signing
  (`cross_signing.py`): nio drops the cross-signing keys and signatures.
- Store writes in batches: nio commits (and syncs to disk) once per Olm
  session it creates or uses; `store_batch()` groups a whole key share
  into one transaction (200 devices: 1.4 s before, tens of ms after).

This is the one module that touches nio's private names (`_send`,
`_algorithms`, a session's `_session`, the store's tables): the rest of
tuichat goes through the named methods and functions here
(`signed_device_keys`, `update_key_counts`, `store_transaction`,
`send_parsed`, `group_session_cipher`, `olm_encrypt_for`), so a nio
upgrade is checked in one file.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nio import (
    AsyncClient,
    ErrorResponse,
    KeysClaimResponse,
    KeysQueryResponse,
    LocalProtocolError,
)
from nio.api import Api
from nio.crypto import Olm
from nio.crypto.sessions import InboundGroupSession
from nio.events import ForwardedRoomKeyEvent
from nio.events.misc import BadEvent, UnknownBadEvent
from nio.exceptions import EncryptionError

from tuichat.matrix.account.session import private_umask
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore

log = logging.getLogger(__name__)

MEGOLM = "m.megolm.v1.aes-sha2"
FALLBACK_KEY_TYPE = "signed_curve25519"


class TuichatOlm(Olm):
    def __init__(self, user_id: str, device_id: str, store: Any, extras: CryptoExtrasStore) -> None:
        self.extras = extras
        # Set from the sync's device_unused_fallback_key_types.
        self.fallback_key_needed = False
        # (room id, session id) of every inbound session added or improved
        # since the service last drained this list.
        self.arrived_sessions: list[tuple[str, str]] = []
        # Olm-decrypted to-device events nio has no use for, for tuichat.
        self.decrypted_to_device: list[dict[str, Any]] = []
        # Devices of users we already knew that appeared in the last queries.
        self.new_devices: list[tuple[str, str]] = []
        self._deferred_sessions: dict[str, tuple[str, Any]] | None = None
        self._account_row: int | None = None  # the account's row id in nio's store
        self.identity_changed: set[tuple[str, str]] = {
            (user, device) for user, device in json.loads(extras.get("identity_changed") or "[]")
        }
        super().__init__(user_id, device_id, store)  # loads or creates and saves the account
        with store.database.bind_ctx(store.models):
            account = store._get_account()
        self._account_row = None if account is None else account.id

    @contextmanager
    def store_batch(self, *, account_unchanged: bool = False) -> Iterator[None]:
        """Olm sessions nio saves inside this context are written once, at
        its end, in one statement, and the account once: nio binds its models
        and commits per call (about 1.5 ms each, twice per device).

        `account_unchanged`: the work inside only creates and uses *outbound*
        Olm sessions, which read the account without changing it, so nio's
        save after each one is dropped instead of deferred (one pickle and
        write of the account saved per key share)."""
        if self._deferred_sessions is not None:
            yield  # nested: the outer batch writes
            return
        store = self.store
        deferred: dict[str, tuple[str, Any]] = {}
        account_changed: list[bool] = []
        self._deferred_sessions = deferred
        store.save_session = lambda curve_key, session: deferred.__setitem__(
            session.id, (curve_key, session)
        )
        # nio saves the (unchanged) account after each new outbound session.
        self.save_account = lambda account=None: account_changed.append(True)  # type: ignore[method-assign]
        try:
            yield
        finally:
            del store.save_session  # the class's methods again
            del self.save_account
            self._deferred_sessions = None
            if account_changed and not account_unchanged:
                self.save_account()
            if deferred:
                self._save_sessions(list(deferred.values()))

    def _account_id(self) -> int:
        """The account's row id in nio's store, which its sessions refer to."""
        if self._account_row is None:
            raise RuntimeError("nio's store holds no account to save sessions under")
        return self._account_row

    def _save_sessions(self, entries: list[tuple[str, Any]]) -> None:
        """One executemany into nio's Olm session table, with each value
        encoded by nio's own model fields (peewee's `replace_many` spends
        longer building the statement than SQLite spends running it, and
        binding nio's models for a query costs as much again: the account's
        row id is looked up once, at start)."""
        from nio.store.models import OlmSessions

        store = self.store
        meta = OlmSessions._meta
        fields = [
            meta.fields[name]
            for name in (
                "account",
                "sender_key",
                "session",
                "session_id",
                "creation_time",
                "last_usage_date",
            )
        ]
        columns = ", ".join(field.column_name for field in fields)
        marks = ", ".join("?" for _ in fields)
        sql = f'INSERT OR REPLACE INTO "{meta.table_name}" ({columns}) VALUES ({marks})'
        account_row = self._account_id()
        key_field, pickle_field, id_field, date_field = fields[1:5]
        pickle_key = store.pickle_key
        rows = [
            (
                account_row,
                key_field.db_value(curve_key),
                pickle_field.db_value(session.pickle(pickle_key)),
                id_field.db_value(session.id),
                date_field.db_value(session.creation_time),
                date_field.db_value(session.use_time),
            )
            for curve_key, session in entries
        ]
        with store.database.atomic():
            store.database.cursor().executemany(sql, rows)

    def save_inbound_group_session(self, session: InboundGroupSession) -> None:
        """As nio's store does (insert, or replace only the pickle of a session
        already there; record its forwarding chain), in one transaction with
        one pickle: nio binds its models and commits per statement, three
        times per room key (about 2.5 ms each; thousands in a key import)."""
        from nio.store.models import ForwardedChains, MegolmInboundSessions

        account_row = self._account_id()
        store = self.store
        meta = MegolmInboundSessions._meta
        fields = [
            meta.fields[name]
            for name in ("sender_key", "account", "fp_key", "room_id", "session", "session_id")
        ]
        columns = ", ".join(field.column_name for field in fields)
        pickle_column = meta.fields["session"].column_name
        id_column = meta.fields["session_id"].column_name
        chains = ForwardedChains._meta
        chain_columns = ", ".join(
            chains.fields[name].column_name for name in ("sender_key", "session")
        )
        values = (
            session.sender_key,
            account_row,
            session.ed25519,
            session.room_id,
            session.pickle(store.pickle_key),
            session.id,
        )
        with store.database.atomic():
            cursor = store.database.cursor()
            cursor.execute(
                f'INSERT INTO "{meta.table_name}" ({columns}) VALUES (?, ?, ?, ?, ?, ?) '
                f'ON CONFLICT ("{id_column}") '
                f'DO UPDATE SET "{pickle_column}" = excluded."{pickle_column}"',
                tuple(field.db_value(value) for field, value in zip(fields, values, strict=True)),
            )
            cursor.executemany(
                f'INSERT OR REPLACE INTO "{chains.table_name}" ({chain_columns}) VALUES (?, ?)',
                [(chain, session.id) for chain in session.forwarding_chain],
            )

    def _handle_key_claiming(self, response: Any) -> None:
        with self.store_batch(account_unchanged=True):
            super()._handle_key_claiming(response)

    # -- uploading keys ------------------------------------------------------------

    @property
    def should_upload_keys(self) -> bool:
        if not self.account.shared:
            return True
        if self.fallback_key_needed:
            return True
        if self.uploaded_key_count is None:
            return False
        # Top up when fewer than half the maximum remain on the server.
        return self.uploaded_key_count < self.account.max_one_time_keys // 2

    def _signed_key(self, key: str, *, fallback: bool = False) -> dict[str, Any]:
        key_dict: dict[str, Any] = {"key": key}
        if fallback:
            key_dict["fallback"] = True
        signature = self.sign_json(key_dict)
        key_dict["signatures"] = {self.user_id: {f"ed25519:{self.device_id}": signature}}
        return key_dict

    def signed_device_keys(self) -> dict[str, Any]:
        """This device's keys, self-signed, as /keys/upload takes them."""
        identity = self.account.identity_keys
        keys: dict[str, Any] = {
            "algorithms": self._algorithms,
            "device_id": self.device_id,
            "user_id": self.user_id,
            "keys": {
                f"curve25519:{self.device_id}": identity["curve25519"],
                f"ed25519:{self.device_id}": identity["ed25519"],
            },
        }
        keys["signatures"] = {self.user_id: {f"ed25519:{self.device_id}": self.sign_json(keys)}}
        return keys

    def update_key_counts(self, raw: dict[str, Any]) -> None:
        """Take the one-time and fallback key state from a raw sync body."""
        counts = raw.get("device_one_time_keys_count")
        if isinstance(counts, dict):
            # nio ignores a count of 0 (falsy), so an exhausted server was
            # never refilled.
            value = counts.get("signed_curve25519", 0)
            self.uploaded_key_count = value if isinstance(value, int) else 0
        unused = raw.get("device_unused_fallback_key_types")
        if isinstance(unused, list) and self.account.shared:
            self.fallback_key_needed = FALLBACK_KEY_TYPE not in unused

    def store_transaction(self) -> Any:
        """A transaction on nio's store (a context manager): the inbound
        sessions saved inside it are committed together."""
        return self.store.database.atomic()

    def share_keys(self) -> dict[str, Any]:
        account = self.account
        content: dict[str, Any] = {}
        if not account.shared:
            content["device_keys"] = self.signed_device_keys()
        on_server = self.uploaded_key_count if account.shared else 0
        wanted = account.max_one_time_keys - (on_server or 0)
        unpublished = len(account.one_time_keys["curve25519"])
        if on_server is not None and wanted - unpublished > 0:
            account._account.generate_one_time_keys(wanted - unpublished)
        one_time = account.one_time_keys["curve25519"]
        if one_time:
            content["one_time_keys"] = {
                f"signed_curve25519:{key_id}": self._signed_key(key)
                for key_id, key in one_time.items()
            }
        if self.fallback_key_needed or not account.shared:
            fallback = account._account.fallback_key
            if not fallback:
                account._account.generate_fallback_key()
                fallback = account._account.fallback_key
            content["fallback_keys"] = {
                f"{FALLBACK_KEY_TYPE}:{key_id}": self._signed_key(key.to_base64(), fallback=True)
                for key_id, key in fallback.items()
            }
        # Persist the keys before they leave: if we die before the server's
        # answer, the same keys are uploaded again on the next start.
        self.save_account()
        return content

    def handle_response(self, response: Any) -> None:
        from nio import KeysUploadResponse

        if isinstance(response, KeysUploadResponse):
            self.fallback_key_needed = False
        super().handle_response(response)

    # -- inbound sessions ------------------------------------------------------------

    def _add_inbound_session(self, session: InboundGroupSession, source: str) -> bool:
        """Store `session` unless we hold a copy that is at least as good."""
        existing = self.inbound_group_store.get(session.room_id, session.sender_key, session.id)
        if existing is not None:
            existing_source = (
                self.extras.key_source(session.room_id, session.sender_key, session.id) or "direct"
            )
            better_index = session.first_known_index < existing.first_known_index
            more_trusted = source == "direct" and existing_source != "direct"
            if not better_index and not (
                more_trusted and session.first_known_index <= existing.first_known_index
            ):
                return False
            self.inbound_group_store._entries[session.room_id][session.sender_key][session.id] = (
                session
            )
        else:
            self.inbound_group_store.add(session)
        self.save_inbound_group_session(session)
        # Keyed as the session is: a key from another device that happens
        # to name the same session id touches only its own session's mark.
        if source == "direct":
            self.extras.clear_key_source(session.room_id, session.sender_key, session.id)
        else:
            self.extras.set_key_sources([(session.room_id, session.sender_key, session.id, source)])
        self.arrived_sessions.append((session.room_id, session.id))
        return True

    def create_group_session(
        self,
        sender_key: str,
        sender_fp_key: str,
        room_id: str,
        session_id: str,
        session_key: str,
    ) -> None:
        try:
            session = InboundGroupSession(session_key, sender_fp_key, sender_key, room_id)
        except Exception as error:  # noqa: BLE001 - a malformed key from a peer
            log.warning("invalid room key for %s: %s", room_id, error)
            return
        if session.id != session_id:
            log.warning("room key for %s has a mismatched session id", room_id)
            return
        self._add_inbound_session(session, "direct")

    def import_inbound_session(self, session: InboundGroupSession, source: str) -> bool:
        """Add a session from a key export or a key backup."""
        return self._add_inbound_session(session, source)

    def _should_accept_forward(
        self, sender: str, sender_key: str, event: ForwardedRoomKeyEvent
    ) -> bool:
        if event.algorithm != MEGOLM:
            return False
        request = self.outgoing_key_requests.get(event.session_id)
        if request is None or request.room_id != event.room_id:
            log.info("ignoring a forwarded key we did not request")
            return False
        device = self.device_store.device_from_sender_key(sender, sender_key)
        if device is None:
            return False
        own_trusted = device.user_id == self.user_id and device.verified
        # The device that created the session may always re-send its key.
        creator = device.curve25519 == event.sender_key
        return own_trusted or creator

    def _handle_forwarded_room_key_event(
        self, sender: str, sender_key: str, payload: dict[Any, Any]
    ) -> ForwardedRoomKeyEvent | BadEvent | UnknownBadEvent | None:
        event = ForwardedRoomKeyEvent.from_dict(payload, sender, sender_key)
        if isinstance(event, (BadEvent, UnknownBadEvent)):
            return event
        if not self._should_accept_forward(sender, sender_key, event):
            return None
        content = payload["content"]
        chain = list(content.get("forwarding_curve25519_key_chain") or [])
        chain.append(sender_key)
        creator_forwarded = sender_key == content["sender_key"]
        try:
            session = InboundGroupSession.import_session(
                content["session_key"],
                content["sender_claimed_ed25519_key"],
                content["sender_key"],
                event.room_id,
                [] if creator_forwarded else chain,
            )
        except Exception as error:  # noqa: BLE001 - a malformed key from a peer
            log.warning("invalid forwarded key: %s", error)
            return None
        if session.id != event.session_id:
            return None
        self._add_inbound_session(session, "direct" if creator_forwarded else "forwarded")
        request = self.outgoing_key_requests.pop(event.session_id, None)
        if request is not None:
            self.store.remove_outgoing_key_request(request)
            self.outgoing_to_device_messages.append(
                request.as_cancellation(self.user_id, self.device_id)
            )
        return event

    # -- to-device events nio would mishandle -------------------------------------------

    def handle_key_verification(self, event: Any) -> None:
        return  # verification.py handles these

    def clear_verifications(self) -> list[Any]:
        return []

    def _handle_olm_event(self, sender: str, sender_key: str, payload: dict[Any, Any]) -> Any:
        if payload.get("type") in ("m.room_key", "m.forwarded_room_key", "m.dummy"):
            return super()._handle_olm_event(sender, sender_key, payload)
        self.decrypted_to_device.append(
            {
                "type": payload.get("type"),
                "sender": sender,
                "sender_key": sender_key,
                "content": payload.get("content")
                if isinstance(payload.get("content"), dict)
                else {},
            }
        )
        return None

    # -- device lists --------------------------------------------------------------------

    def _handle_key_query(self, response: Any) -> None:
        before: dict[str, dict[str, tuple[str, str]]] = {}
        for user_id in response.device_keys:
            if user_id in self.device_store.users:
                before[user_id] = {
                    device.id: (device.ed25519, device.curve25519)
                    for device in self.device_store.active_user_devices(user_id)
                }
        super()._handle_key_query(response)
        changed_identity = False
        for user_id, devices in response.device_keys.items():
            known = before.get(user_id)
            if not known:
                # First sight of this person's devices (nio lists a user
                # as soon as anything looks them up): none of them is "new".
                continue
            for device_id, payload in devices.items():
                keys = payload.get("keys") if isinstance(payload, dict) else None
                if not isinstance(keys, dict):
                    continue
                reported = (keys.get(f"ed25519:{device_id}"), keys.get(f"curve25519:{device_id}"))
                old = known.get(device_id)
                if old is None:
                    # A dehydrated device (MSC3814) is nobody signing in.
                    if (user_id, device_id) != (self.user_id, self.device_id) and (
                        payload.get("dehydrated") is not True
                    ):
                        self.new_devices.append((user_id, device_id))
                elif reported != old:
                    device = self.device_store[user_id].get(device_id)
                    if device is not None:
                        device.ed25519, device.curve25519 = old  # keep what we trusted
                        self.store.save_device_keys({user_id: {device_id: device}})
                    self.identity_changed.add((user_id, device_id))
                    changed_identity = True
        if changed_identity:
            self.extras.set("identity_changed", json.dumps(sorted(self.identity_changed)))


def group_session_cipher(session: InboundGroupSession) -> Any:
    """The vodozemac session inside nio's inbound group session: it
    decrypts, and exports at a message index (nio wraps neither)."""
    return session._session


class TuichatClient(AsyncClient):
    """nio's AsyncClient with tuichat's Olm machine (see module docstring)."""

    async def keys_claim(self, user_set: dict[str, Any]) -> Any:  # type: ignore[override]
        """nio 0.26 turns an error answer to /keys/claim into a TypeError
        (its KeysClaimError needs a room id nio does not pass); with one, an
        error is a KeysClaimError the caller can handle."""
        method, path, data = Api.keys_claim(self.access_token, user_set)
        return await self._send(KeysClaimResponse, method, path, data, ("",))

    def __init__(self, *args: Any, extras: CryptoExtrasStore, **kwargs: Any) -> None:
        self.extras = extras
        # Called with each raw /keys/query answer: nio keeps neither the
        # cross-signing keys nor the device keys' signatures.
        self.on_keys_query: Callable[[dict[str, Any]], None] | None = None
        # Told of the access token nio saw expire (tuichat/matrix/account/tokens.py).
        self.on_soft_logout: Callable[[str], None] | None = None
        super().__init__(*args, **kwargs)

    async def send_parsed(
        self,
        response_class: type[Any],
        method: str,
        path: str,
        data: Any,
        response_data: tuple[Any, ...] = (),
    ) -> Any:
        """Send a request built with nio's `Api` and parse the answer into
        `response_class` (nio's own requests go this way, through a private
        method; tuichat's requests nio has no method for use this)."""
        return await self._send(response_class, method, path, data, response_data)

    async def receive_response(self, response: Any) -> None:
        """nio forgets the access token after a soft logout (an expired
        token), and then refuses every request as "not logged in": tuichat
        keeps it until the refresh replaces it, and starts that refresh."""
        token = self.access_token
        await super().receive_response(response)
        if isinstance(response, ErrorResponse) and response.soft_logout and token:
            self.access_token = token
            if self.on_soft_logout is not None:
                self.on_soft_logout(token)

    async def keys_query(self) -> Any:
        """As nio's keys_query, also handing the raw answer to tuichat."""
        users = self.users_for_key_query
        if not users:
            raise LocalProtocolError("No key query required.")
        body = json.dumps({"device_keys": {user: [] for user in users}, "timeout": 10000})
        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "Content-Type": "application/json",
        }
        transport = await self.send("POST", "/_matrix/client/v3/keys/query", body, headers)
        raw = await self.parse_body(transport)
        response = KeysQueryResponse.from_dict(copy.deepcopy(raw))
        response.transport_response = transport
        await self.receive_response(response)
        if isinstance(response, KeysQueryResponse) and self.on_keys_query is not None:
            self.on_keys_query(raw)
        return response

    @property
    def tuichat_olm(self) -> TuichatOlm:
        assert isinstance(self.olm, TuichatOlm)
        return self.olm

    def load_store(self) -> None:
        # As nio's Client.load_store, constructing tuichat's Olm machine.
        if self.store:
            return
        if not self.user_id:
            raise LocalProtocolError("User id is not set")
        if not self.device_id:
            raise LocalProtocolError("Device id is not set")
        if not self.config.store or not self.store_path:
            raise LocalProtocolError("tuichat needs a store path")
        # The store and its log files are created private (0600) rather
        # than tightened afterwards.
        with private_umask():
            self.store = self.config.store(
                self.user_id,
                self.device_id,
                self.store_path,
                self.config.pickle_key,
                self.config.store_name,
            )
            # nio opens its store with a rollback journal: every commit
            # creates, syncs and deletes a journal file besides syncing the
            # database. In write-ahead-log mode (kept by the file) a commit
            # is one sync of the log, as durable (synchronous stays FULL),
            # in a fraction of the time.
            self.store.database.execute_sql("PRAGMA journal_mode=WAL")
            self.olm = TuichatOlm(self.user_id, self.device_id, self.store, self.extras)
        self.encrypted_rooms = self.store.load_encrypted_rooms()

    def invalidate_outbound_session(self, room_id: str) -> None:
        # nio drops the outbound session on *any* membership change (joins
        # included), after every key query that shows a changed device (a
        # new device included), and on every trust change. tuichat decides
        # rotation itself (group_sessions.py): on leaves, bans, removed or
        # blacklisted devices and history visibility changes; new members
        # and new devices get the current session from its current index.
        return

    def olm_encrypt_for(self, device: Any, event_type: str, content: dict[str, Any]) -> Any:
        """Olm-encrypt a to-device payload for `device` (it must have a session)."""
        olm = self.tuichat_olm
        session = olm.session_store.get(device.curve25519)
        if session is None:
            raise EncryptionError(f"no Olm session with {device.user_id} {device.id}")
        return olm._olm_encrypt(session, device, event_type, content)
