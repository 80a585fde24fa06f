"""The Matrix service: owns nio's AsyncClient, the sync loop and sending.

Data flows one way. The service turns sync responses into domain events
(`tuichat.model.events`) and hands them to its sink; user actions come back
as method calls (`send_text`, `join`, `create_dm`, `verify_device`, …). It
never touches the model or the UI.

The service is one class assembled from parts, one module each:

- `base.py`: shared state and helpers;
- `lifecycle.py`: opening the crypto store, replaying the cache, stopping;
- `syncing.py`: the sync loop and how each response is handled;
- `sending.py`: messages out, with local echo, in order;
- `history.py`: older history, from the cache and /messages; reply parents;
- `read_state.py`: read receipts, the fully-read marker, typing;
- `attachments.py`: files in and out, encrypted in encrypted rooms;
- `rooms.py`: joining, leaving, creating rooms and DMs, invites;
- `trust.py`: devices, trust decisions, emoji verification;
- `keys.py`: recovery, key backup, key export and import.

End-to-end encryption beyond nio lives in `tuichat/matrix/crypto/`; the
service talks to it through `CryptoEngine`.
"""

from __future__ import annotations

from tuichat.matrix.service.attachments import AttachmentsMixin
from tuichat.matrix.service.base import SYNC_TIMEOUT_MS, ServiceBase
from tuichat.matrix.service.history import HistoryMixin
from tuichat.matrix.service.keys import KeysMixin
from tuichat.matrix.service.lifecycle import LifecycleMixin
from tuichat.matrix.service.read_state import ReadStateMixin
from tuichat.matrix.service.rooms import RoomsMixin
from tuichat.matrix.service.sending import SendingMixin
from tuichat.matrix.service.syncing import SyncHTTPError, SyncMixin, sync_filter
from tuichat.matrix.service.trust import TrustMixin


class MatrixService(
    LifecycleMixin,
    SyncMixin,
    HistoryMixin,
    SendingMixin,
    ReadStateMixin,
    AttachmentsMixin,
    RoomsMixin,
    TrustMixin,
    KeysMixin,
    ServiceBase,
):
    """One logged-in account: sync, decrypt, send, rooms, devices, keys."""


__all__ = ["SYNC_TIMEOUT_MS", "MatrixService", "SyncHTTPError", "sync_filter"]
