"""The SAS state machine: both roles, mismatch, commitment, the spec's
emoji table, and the older flow against nio's own SAS object."""

from __future__ import annotations

import hashlib
from typing import Any

import vodozemac

from tuichat.matrix.crypto.sas import (
    SasVerification,
    canonical_json,
    commitment,
    emoji_for,
)
from tuichat.matrix.crypto.sas_emoji import SAS_EMOJI
from tuichat.model.verification import Phase


class Link:
    """Two verifications wired to each other in memory."""

    def __init__(self) -> None:
        self.alice_key = vodozemac.Account().ed25519_key.to_base64()
        self.bob_key = vodozemac.Account().ed25519_key.to_base64()
        self.wire: list[tuple[str, str, dict[str, Any]]] = []
        self.alice = self._make("@alice:x", "ALICEDEV", self.alice_key, "@bob:x", None, True)
        self.bob = self._make("@bob:x", "BOBDEV", self.bob_key, "@alice:x", "ALICEDEV", False)

    def _make(
        self,
        user: str,
        device: str,
        key: str,
        other: str,
        other_device: str | None,
        requested: bool,
    ) -> SasVerification:
        async def send(event_type: str, content: dict[str, Any]) -> bool:
            self.wire.append((user, event_type, content))
            return True

        keys = {("@alice:x", "ALICEDEV"): self.alice_key, ("@bob:x", "BOBDEV"): self.bob_key}
        return SasVerification(
            transaction_id="txn1",
            own_user=user,
            own_device=device,
            own_ed25519=key,
            other_user=other,
            other_device=other_device,
            we_requested=requested,
            send=send,
            device_key=lambda u, d: keys.get((u, d)),
        )

    async def pump(self, until: str | None = None) -> None:
        """Deliver queued messages in order (stopping before `until`)."""
        while self.wire and self.wire[0][1] != until:
            sender, event_type, content = self.wire.pop(0)
            target = self.bob if sender == "@alice:x" else self.alice
            device = "ALICEDEV" if sender == "@alice:x" else "BOBDEV"
            await target.handle(event_type, content, device)


async def test_request_flow_completes_with_the_same_emoji_on_both_sides() -> None:
    link = Link()
    await link.alice.request()
    assert link.wire[0][1] == "m.key.verification.request"
    link.wire.clear()
    await link.bob.accept_request()
    await link.pump()
    assert link.alice.phase is Phase.SHOW_SAS and link.bob.phase is Phase.SHOW_SAS
    assert link.alice.emoji == link.bob.emoji and len(link.alice.emoji) == 7
    assert link.alice.decimals == link.bob.decimals
    await link.alice.confirm()
    await link.pump()
    assert link.alice.phase is Phase.CONFIRMED  # waiting for Bob's person
    await link.bob.confirm()
    await link.pump()
    assert link.alice.phase is Phase.DONE and link.bob.phase is Phase.DONE


async def test_mismatch_cancels_on_both_sides() -> None:
    link = Link()
    await link.alice.request()
    link.wire.clear()
    await link.bob.accept_request()
    await link.pump()
    await link.bob.mismatch()
    await link.pump()
    for side in (link.alice, link.bob):
        assert side.phase is Phase.CANCELLED and side.cancel_code == "m.mismatched_sas"
    assert link.bob.cancelled_by_us and not link.alice.cancelled_by_us


async def test_a_wrong_commitment_is_caught() -> None:
    link = Link()
    await link.alice.request()
    link.wire.clear()
    await link.bob.accept_request()
    await link.pump(until="m.key.verification.accept")
    link.wire[0][2]["commitment"] = "A" * 43  # Bob's accept, tampered with
    await link.pump()
    assert link.alice.phase is Phase.CANCELLED
    assert link.alice.cancel_code == "m.mismatched_commitment"


def test_commitment_is_unpadded_base64_of_sha256() -> None:
    start = {"b": 1, "a": "x", "transaction_id": "t"}
    expected = hashlib.sha256(("KEY" + '{"a":"x","b":1,"transaction_id":"t"}').encode()).digest()
    import base64

    assert commitment("KEY", start) == base64.b64encode(expected).decode().rstrip("=")
    assert canonical_json({"é": 1}) == '{"é":1}'


def test_emoji_table_is_the_specs() -> None:
    assert len(SAS_EMOJI) == 64 and len({e for e, _ in SAS_EMOJI}) == 64
    assert SAS_EMOJI[0] == ("🐶", "Dog") and SAS_EMOJI[63] == ("📌", "Pin")
    assert SAS_EMOJI[41][1] == "Light Bulb" and SAS_EMOJI[36][1] == "Thumbs Up"
    # Where nio's table differs from the spec (people compare with Element):
    assert (SAS_EMOJI[34][1], SAS_EMOJI[53][1]) == ("Spanner", "Aeroplane")
    # vodozemac hands out indices (0-63), not raw bytes; nio re-splits them.
    assert emoji_for([0, 63, 46]) == [("🐶", "Dog"), ("📌", "Pin"), ("🔒", "Lock")]


async def test_older_flow_against_nios_sas_as_responder() -> None:
    from nio.crypto.device import OlmDevice
    from nio.crypto.sas import Sas as NioSas
    from nio.events.to_device import KeyVerificationEvent

    ours_key = vodozemac.Account()
    their_account = vodozemac.Account()
    our_device = OlmDevice(
        "@alice:x",
        "ALICEDEV",
        {
            "ed25519": ours_key.ed25519_key.to_base64(),
            "curve25519": ours_key.curve25519_key.to_base64(),
        },
    )
    wire: list[dict[str, Any]] = []

    async def send(event_type: str, content: dict[str, Any]) -> bool:
        wire.append({"type": event_type, "sender": "@alice:x", "content": content})
        return True

    ours = SasVerification(
        transaction_id="legacy1",
        own_user="@alice:x",
        own_device="ALICEDEV",
        own_ed25519=ours_key.ed25519_key.to_base64(),
        other_user="@bob:x",
        other_device="BOBDEV",
        we_requested=True,
        send=send,
        device_key=lambda u, d: their_account.ed25519_key.to_base64(),
    )
    ours.legacy = True
    await ours.start()
    start_event = KeyVerificationEvent.parse_event(wire.pop(0))
    theirs = NioSas.from_key_verification_start(
        "@bob:x", "BOBDEV", their_account.ed25519_key.to_base64(), our_device, start_event
    )
    assert not theirs.canceled
    accept = theirs.accept_verification()
    await ours.handle("m.key.verification.accept", accept.content, "BOBDEV")
    key_event = KeyVerificationEvent.parse_event(wire.pop(0))
    theirs.receive_key_event(key_event)
    share = theirs.share_key()
    await ours.handle("m.key.verification.key", share.content, "BOBDEV")
    assert ours.phase is Phase.SHOW_SAS
    assert ours.decimals == theirs.get_decimals()
    theirs.accept_sas()
    await ours.handle("m.key.verification.mac", theirs.get_mac().content, "BOBDEV")
    await ours.confirm()
    mac_event = KeyVerificationEvent.parse_event(next(e for e in wire if e["type"].endswith("mac")))
    theirs.receive_mac_event(mac_event)
    assert theirs.verified, "nio must accept our MAC"
    assert ours.phase is Phase.DONE
