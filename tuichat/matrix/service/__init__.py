"""The Matrix service: the one thing the UI imports from `tuichat.matrix`.

Data flows one way. The service turns sync responses into domain events
(`tuichat.model.events`) and hands them to its sink; user actions come back
as calls on `MatrixService` (typed for the UI as `ChatService`), which
passes each to the part that does the job:

- `facade.py`: `MatrixService`, the public surface; `api.py`: `ChatService`;
- `account_context.py`: what the parts share (account, rooms, connections);
- `wiring.py`: builds the parts and connects them;
- `opening.py`: opening the crypto store, priming nio with the cached rooms;
- `sync_loop.py`: the sync loop and how each response is handled;
- `send_queue.py`: messages out, with local echo, in order, via the outbox;
- `history.py`: older history, from the cache and /messages; reply parents;
- `read_state.py`: read receipts, the fully-read marker, typing;
- `transfers.py`: files in and out, encrypted in encrypted rooms;
- `room_admin.py`: joining, leaving, creating rooms and DMs, invites;
- `room_views.py`: room summaries, DM flags, in-place replacements;
- `trust.py`: devices, trust decisions, emoji verification;
- `room_keys.py`: recovery, key backup, key export and import, upkeep;
- `key_files.py`: key export files checked before a passphrase is asked;
- `token_recovery.py`: an expired access token refreshed, or a logout;
- `message_search.py`: search: the encrypted local index of encrypted
  rooms (fed by every item emitted), the server's /search, /context;
- `account_page.py`: the account management page of OAuth 2.0 API servers;
- `outcome.py`: `Failed`, what a call that failed in an expected way
  returns instead of raising (`Outcome[T]` is `T | Failed`).

Importing this package imports neither nio nor aiohttp. `Profile` (and the
`ProfileError` of a damaged profile, met at start-up) is available here
too; the names defined beside nio are imported when first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tuichat.matrix.account.session import Profile, ProfileError
from tuichat.matrix.service.api import PAGE_SIZE, SYNC_TIMEOUT_MS, ChatService
from tuichat.matrix.service.facade import MatrixService
from tuichat.matrix.service.outcome import Failed, Outcome

if TYPE_CHECKING:
    from tuichat.matrix.content.direct_messages import ProfileLookup
    from tuichat.matrix.service.sync_loop import SyncHTTPError, sync_filter
    from tuichat.matrix.storage.startup_reader import StartupReader

# Name here -> (the module that defines it, its name there); imported on
# first access.
_LAZY = {
    "ProfileLookup": ("tuichat.matrix.content.direct_messages", "ProfileLookup"),
    "StartupReader": ("tuichat.matrix.storage.startup_reader", "StartupReader"),
    "SyncHTTPError": ("tuichat.matrix.service.sync_loop", "SyncHTTPError"),
    "sync_filter": ("tuichat.matrix.service.sync_loop", "sync_filter"),
}


def __getattr__(name: str) -> Any:
    source = _LAZY.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = source
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


__all__ = [
    "PAGE_SIZE",
    "SYNC_TIMEOUT_MS",
    "ChatService",
    "Failed",
    "MatrixService",
    "Outcome",
    "Profile",
    "ProfileError",
    "ProfileLookup",
    "StartupReader",
    "SyncHTTPError",
    "sync_filter",
]
