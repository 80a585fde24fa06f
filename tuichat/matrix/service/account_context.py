"""What every part of the service shares: who is logged in, the rooms as
known (the snapshot owns them), the connections once they are open, and the
sink the domain events go to. One object, handed to each part."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuichat.matrix.content.convert import Viewer
from tuichat.matrix.content.direct_messages import DirectMessages
from tuichat.model.events import ConnectionChanged, ConnectionState, Sink

if TYPE_CHECKING:
    from tuichat.matrix.account.session import Profile, Session
    from tuichat.matrix.account.tokens import TokenKeeper
    from tuichat.matrix.content.room_state import RoomState
    from tuichat.matrix.crypto.engine import CryptoEngine
    from tuichat.matrix.crypto.nio_extensions import TuichatClient
    from tuichat.matrix.storage.cache import Cache
    from tuichat.matrix.storage.snapshot import Snapshot

log = logging.getLogger(__name__)


class AccountContext:
    """The account's shared state. `client`, `crypto` and `tokens` are None
    until the crypto store is opened (`AccountOpener.open`)."""

    def __init__(
        self, profile: Profile, session: Session, sink: Sink, cache: Cache, snapshot: Snapshot
    ) -> None:
        self.profile = profile
        self.session = session
        self.user_id = session.user_id
        self.sink = sink
        self.cache = cache
        # Owns the rooms' states and their last activity: rooms loaded
        # later, and syncs, update it.
        self.snapshot = snapshot
        self.direct = DirectMessages(self.user_id, snapshot.m_direct)
        self.viewer: Viewer = snapshot.viewer()
        self.sync_token = snapshot.sync_token
        self.client: TuichatClient | None = None
        self.crypto: CryptoEngine | None = None
        # The access token in use and its refresh (tuichat/matrix/account/tokens.py).
        self.tokens: TokenKeeper | None = None
        self.state = ConnectionState.CONNECTING
        self.first_sync_done = asyncio.Event()
        self.synced_once = False
        # A room joined or created here, to switch to once a sync brings it.
        self.pending_switch: str | None = None
        # Parts that see every event emitted, before the sink (search, issue 24).
        self.observers: list[Callable[[Any], None]] = []

    @property
    def states(self) -> dict[str, RoomState]:
        return self.snapshot.states

    def activity(self, room_id: str) -> int:
        """When the room's newest shown event was sent (ms), 0 if unknown."""
        return self.snapshot.last_activity.get(room_id, 0)

    def emit(self, event: Any) -> None:
        for observer in self.observers:
            try:
                observer(event)
            except Exception:  # an observer's failure must not stop the sync loop
                log.exception("observer failed for %s", type(event).__name__)
        try:
            self.sink(event)
        except Exception:  # a broken sink must not stop the sync loop
            log.exception("sink failed for %s", type(event).__name__)

    def set_state(self, state: ConnectionState, detail: str = "") -> None:
        self.state = state
        self.emit(ConnectionChanged(state, detail))

    def use_session(self, session: Session) -> None:
        """A refreshed access token: the session every part reads."""
        self.session = session
