"""Olm sessions created inside `store_batch` are written once, at its end,
and read back by nio exactly as if nio had saved each one itself."""

from __future__ import annotations

from pathlib import Path

import vodozemac

from tuichat.matrix.client import build_client
from tuichat.matrix.session import Profile, Session


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
