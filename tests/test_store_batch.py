"""Olm sessions created inside `store_batch` are written once, at its end,
and read back by nio exactly as if nio had saved each one itself."""

from __future__ import annotations

from pathlib import Path

import vodozemac

from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.transport.client import build_client


def _client(root: Path):
    profile = Profile(root)
    profile.ensure()
    profile.create_pickle_key()
    session = Session("http://127.0.0.1:9", "@me:x", "DEVICE", "token")
    profile.save_session(session)
    client = build_client(profile, session)
    client.restore_login(session.user_id, session.device_id, session.access_token)
    return client


def test_sessions_saved_in_a_batch_are_read_back_by_nio(tmp_path: Path) -> None:
    client = _client(tmp_path / "p")
    olm = client.tuichat_olm
    created = {}
    with olm.store_batch():
        for _ in range(5):
            peer = vodozemac.Account()
            peer.generate_one_time_keys(1)
            otk = next(iter(peer.one_time_keys.values())).to_base64()
            curve = peer.curve25519_key.to_base64()
            created[curve] = olm.create_session(otk, curve).id
        # Nothing is written before the batch ends.
        assert not list(olm.store.load_sessions())
    loaded = olm.store.load_sessions()
    assert {curve: [s.id for s in loaded[curve]] for curve in created} == {
        curve: [session_id] for curve, session_id in created.items()
    }
    # nio's own method is back once the batch is over.
    assert "save_session" not in vars(olm.store)
    assert "save_account" not in vars(olm)


def test_room_keys_are_saved_as_nio_reads_them_and_improved_in_place(tmp_path: Path) -> None:
    from nio.crypto.sessions import InboundGroupSession

    client = _client(tmp_path / "p")
    olm = client.tuichat_olm
    sender = vodozemac.Account()
    outbound = vodozemac.GroupSession()
    first_key = outbound.session_key.to_base64()
    session = InboundGroupSession(
        first_key, sender.ed25519_key.to_base64(), sender.curve25519_key.to_base64(), "!r:x"
    )
    olm.save_inbound_group_session(session)
    olm.save_inbound_group_session(session)  # saved twice: still one row
    loaded = olm.store.load_inbound_group_sessions()
    copy = loaded.get("!r:x", session.sender_key, session.id)
    assert copy is not None and copy.first_known_index == 0
    assert copy.forwarding_chain == []
    # The same session again, forwarded from a later index: the pickle is
    # replaced, the chain recorded, nothing else duplicated.
    outbound.encrypt(b"one")
    forwarded = InboundGroupSession(
        outbound.session_key.to_base64(), session.ed25519, session.sender_key, "!r:x"
    )
    forwarded.forwarding_chain = ["curve-of-forwarder"]
    olm.save_inbound_group_session(forwarded)
    loaded = olm.store.load_inbound_group_sessions()
    copy = loaded.get("!r:x", session.sender_key, session.id)
    assert copy is not None and copy.first_known_index == 1
    assert copy.forwarding_chain == ["curve-of-forwarder"]
    rows = olm.store.database.execute_sql('SELECT count(*) FROM "megolminboundsessions"').fetchone()
    assert rows == (1,)


def test_the_crypto_store_commits_through_a_write_ahead_log(tmp_path: Path) -> None:
    client = _client(tmp_path / "p")
    mode = client.tuichat_olm.store.database.execute_sql("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_the_crypto_store_and_its_log_are_created_private(tmp_path: Path) -> None:
    import stat

    client = _client(tmp_path / "p")
    client.tuichat_olm.save_account()  # a write: the log files exist now
    store_dir = tmp_path / "p" / "crypto"
    files = [path for path in store_dir.iterdir() if path.name.startswith("@me:x_DEVICE.db")]
    assert {path.name.removeprefix("@me:x_DEVICE.db") for path in files} >= {"", "-wal"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
