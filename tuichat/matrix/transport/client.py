"""Building nio's client for a profile."""

from __future__ import annotations

from nio import AsyncClientConfig

from tuichat.matrix.account.session import Profile, Session
from tuichat.matrix.crypto.extras_store import CryptoExtrasStore
from tuichat.matrix.crypto.nio_extensions import TuichatClient


def build_client(
    profile: Profile, session: Session, *, max_timeouts: int | None = 2
) -> TuichatClient:
    """A client whose crypto store lives in the profile, under the profile's
    random pickle key (nio's default key is a public constant)."""
    config = AsyncClientConfig(
        store_sync_tokens=False,
        encryption_enabled=True,
        pickle_key=profile.pickle_key(),
        max_timeouts=max_timeouts,
        request_timeout=45,
    )
    return TuichatClient(
        session.homeserver,
        session.user_id,
        device_id=session.device_id or None,
        store_path=str(profile.store_dir),
        config=config,
        extras=CryptoExtrasStore(profile.store_dir),
    )
