"""The recent messages kept so that their markers follow their sender's trust."""

from __future__ import annotations

from tuichat.matrix.crypto.trust_refresh import UntrustedRecent


def _event(n: int, sender: str) -> dict[str, object]:
    return {"event_id": f"$e{n}", "sender": sender, "content": {}}


def test_only_the_newest_messages_are_kept_and_taken_once_per_sender() -> None:
    recent = UntrustedRecent(kept=3)
    for n in range(5):
        recent.add("!r", _event(n, "@ada:x" if n % 2 else "@bob:x"))
    assert len(recent) == 3  # $e2, $e3, $e4
    taken = recent.take(["@ada:x"])
    assert [event["event_id"] for _, event in taken] == ["$e3"]
    assert recent.take(["@ada:x"]) == []
    assert [event["event_id"] for _, event in recent.take(["@bob:x"])] == ["$e2", "$e4"]


def test_events_without_an_id_or_sender_are_not_kept() -> None:
    recent = UntrustedRecent()
    recent.add("!r", {"sender": "@ada:x"})
    recent.add("!r", {"event_id": "$e", "sender": 5})
    assert len(recent) == 0
