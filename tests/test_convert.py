"""Raw events to timeline items: names, membership texts, placeholders."""

from __future__ import annotations

from typing import Any

from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.matrix.crypto.types import Decryption
from tuichat.model.items import ItemKind

ME = "@me:example.org"
BOB = "@bob:example.org"


def member(user: str, name: str | None, membership: str = "join", **extra: Any) -> dict[str, Any]:
    content: dict[str, Any] = {"membership": membership}
    if name is not None:
        content["displayname"] = name
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": user,
        "event_id": f"$m-{user}-{membership}",
        "content": content,
        **extra,
    }


def state_with(*events: dict[str, Any]) -> RoomState:
    state = RoomState("!room:example.org")
    for event in events:
        state.apply(event)
    return state


def message(body: object, sender: str = BOB, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": "$e1",
        "sender": sender,
        "origin_server_ts": 1700000000000,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def test_text_message_uses_the_member_display_name() -> None:
    state = state_with(member(BOB, "Bob"), member(ME, "Me"))
    item = to_item(message("hi"), state, Viewer(ME))
    assert item is not None
    assert (item.kind, item.body, item.sender_name, item.timestamp) == (
        ItemKind.TEXT,
        "hi",
        "Bob",
        1700000000000,
    )


def test_clashing_display_names_are_disambiguated() -> None:
    state = state_with(member(BOB, "Sam"), member("@sam:example.org", "Sam"), member(ME, None))
    assert state.member_name(BOB) == f"Sam ({BOB})"
    assert state.member_name(ME) == ME


def test_mentions_highlight() -> None:
    state = state_with(member(BOB, "Bob"), member(ME, "Me"))
    viewer = Viewer(ME, "Mia")
    assert to_item(message("hey Mia!"), state, viewer).highlight  # type: ignore[union-attr]
    assert to_item(message("hey me"), state, viewer).highlight  # type: ignore[union-attr]
    assert not to_item(message("hey Miami"), state, viewer).highlight  # type: ignore[union-attr]
    explicit = message("no name here", **{"m.mentions": {"user_ids": [ME]}})
    assert to_item(explicit, state, viewer).highlight  # type: ignore[union-attr]
    # With m.mentions present the body is not searched.
    silent = message("Mia", **{"m.mentions": {}})
    assert not to_item(silent, state, viewer).highlight  # type: ignore[union-attr]


def test_a_verification_request_reads_as_who_asked_whom_not_its_fallback_text() -> None:
    state = state_with(member(BOB, "Bob"), member(ME, "Me"), member("@cy:example.org", "Cy"))

    def request(sender: str, to: str) -> dict[str, Any]:
        fallback = "asking to verify (your client does not support in-room verification)."
        return message(
            fallback,
            sender,
            msgtype="m.key.verification.request",
            to=to,
            from_device="DEV",
            methods=["m.sas.v1"],
        )

    ours = to_item(request(ME, BOB), state, Viewer(ME))
    theirs = to_item(request(BOB, ME), state, Viewer(ME))
    others = to_item(request(BOB, "@cy:example.org"), state, Viewer(ME))
    assert ours is not None and theirs is not None and others is not None
    assert (ours.kind, ours.body) == (ItemKind.STATE, "You sent a verification request to Bob")
    assert (theirs.kind, theirs.body) == (ItemKind.STATE, "Bob wants to verify")
    assert (others.kind, others.body) == (ItemKind.STATE, "Bob asked Cy to verify")
    # Decrypted (requests in encrypted rooms are encrypted), the same.
    encrypted = {
        "type": "m.room.encrypted",
        "event_id": "$v",
        "sender": ME,
        "origin_server_ts": 5,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "S", "ciphertext": "c"},
    }
    payload = {"type": "m.room.message", "content": request(ME, BOB)["content"]}
    decrypted = to_item(encrypted, state, Viewer(ME), Decryption(payload))
    assert decrypted is not None and decrypted.body == "You sent a verification request to Bob"


def test_undecryptable_event_becomes_a_placeholder_with_its_session() -> None:
    event = {
        "type": "m.room.encrypted",
        "event_id": "$x",
        "sender": BOB,
        "origin_server_ts": 5,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "S1", "ciphertext": "c"},
    }
    item = to_item(event, state_with(), Viewer(ME))
    assert item is not None
    assert item.kind is ItemKind.UNDECRYPTABLE and item.session_id == "S1"
    assert item.utd_reason == "missing_key" and item.encrypted
    decrypted = to_item(
        event,
        state_with(),
        Viewer(ME),
        Decryption({"type": "m.room.message", "content": {"msgtype": "m.text", "body": "secret"}}),
    )
    assert decrypted is not None and decrypted.body == "secret" and decrypted.encrypted


def test_membership_changes_read_naturally() -> None:
    state = state_with(member(BOB, "Bob"))
    joined = to_item(member("@ann:x", "Ann"), state, Viewer(ME))
    renamed = to_item(
        member(
            BOB, "Robert", unsigned={"prev_content": {"membership": "join", "displayname": "Bob"}}
        ),
        state,
        Viewer(ME),
    )
    left = to_item(
        member(
            BOB,
            None,
            "leave",
            unsigned={"prev_content": {"membership": "join", "displayname": "Bob"}},
        ),
        state,
        Viewer(ME),
    )
    assert joined.body == "Ann joined"  # type: ignore[union-attr]
    assert renamed.body == "Bob changed their name to Robert"  # type: ignore[union-attr]
    assert left.body == "Bob left"  # type: ignore[union-attr]


def test_malformed_events_never_raise() -> None:
    state = state_with()
    for event in [
        {},
        {"type": 5},
        {"event_id": "$1"},
        {"event_id": "$1", "sender": BOB, "type": "m.room.message", "content": "x"},
        message(None),
        message(["list"]),
        message({"nested": {"deep": True}}),
        {
            "event_id": "$1",
            "sender": BOB,
            "type": "m.room.member",
            "state_key": 7,
            "content": {"membership": 3},
        },
        {"event_id": "$1", "sender": BOB, "type": "m.unknown", "content": {}},
    ]:
        to_item(event, state, Viewer(ME))  # must not raise


def test_remote_strings_are_sanitised() -> None:
    state = state_with(member(BOB, "B\x1b[2Job"))
    item = to_item(message("a\x1b]52;c;eA==\x07b"), state, Viewer(ME))
    assert item is not None and "\x1b" not in item.body and "\x1b" not in item.sender_name
