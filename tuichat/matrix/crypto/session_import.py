"""Room keys in and out in bulk: key export files, imports, backup restores.

An export writes every inbound Megolm session to a passphrase-protected
file (`key_export.py` has the format); an import, or a restore from the key
backup, adds sessions in chunks (one store transaction each, yielding to
the event loop in between) and then hands the events they unlock to
`Redecryption.keys_arrived`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from nio.crypto.sessions import InboundGroupSession

from tuichat.matrix.account.session import write_private
from tuichat.matrix.crypto.key_export import (
    EXPORT_ROUNDS,
    ExportedSession,
    sessions_from_file,
    sessions_to_file,
)
from tuichat.matrix.crypto.nio_extensions import TuichatOlm
from tuichat.matrix.crypto.types import ImportResult, Progress, Redecrypted


class SessionImport:
    def __init__(self, olm: TuichatOlm, keys_arrived: Callable[[], list[Redecrypted]]) -> None:
        self.olm = olm
        self.keys_arrived = keys_arrived

    def exportable_sessions(self) -> list[ExportedSession]:
        return [
            ExportedSession(
                room_id=session.room_id,
                sender_key=session.sender_key,
                session_id=session.id,
                session_key=session.export_session(session.first_known_index),
                sender_claimed_ed25519=session.ed25519,
                forwarding_chain=tuple(session.forwarding_chain),
            )
            for session in self.olm.inbound_group_store
        ]

    async def export_keys(self, path: Path, passphrase: str, rounds: int = EXPORT_ROUNDS) -> int:
        """Write every inbound session to `path` (mode 0600); returns how many.
        The key derivation runs in a thread so the UI keeps drawing."""
        sessions = self.exportable_sessions()
        text = await asyncio.to_thread(sessions_to_file, sessions, passphrase, rounds)
        write_private(path, text.encode())
        return len(sessions)

    async def import_keys(
        self, text: str, passphrase: str, progress: Progress | None = None
    ) -> tuple[ImportResult, list[Redecrypted]]:
        """Import an export file's text. A wrong passphrase or a damaged file
        raises KeyFileError before anything is changed."""
        sessions, invalid = await asyncio.to_thread(sessions_from_file, text, passphrase)
        return await self.import_sessions(sessions, "imported", invalid, progress)

    async def import_sessions(
        self,
        sessions: list[ExportedSession],
        source: str,
        invalid: int = 0,
        progress: Progress | None = None,
        chunk: int = 500,
    ) -> tuple[ImportResult, list[Redecrypted]]:
        """Add sessions in chunks (one store transaction each), yielding to
        the event loop in between; then retry the events they unlock."""
        imported = 0
        for start in range(0, len(sessions), chunk):
            with self.olm.store_transaction():
                for entry in sessions[start : start + chunk]:
                    session = _inbound_session(entry)
                    if session is None:
                        invalid += 1
                    elif self.olm.import_inbound_session(session, source):
                        imported += 1
            if progress is not None:
                progress(min(start + chunk, len(sessions)), len(sessions))
            await asyncio.sleep(0)
        result = ImportResult(total=len(sessions) + invalid, imported=imported, invalid=invalid)
        return result, self.keys_arrived()


def _inbound_session(entry: ExportedSession) -> InboundGroupSession | None:
    try:
        session = InboundGroupSession.import_session(
            entry.session_key,
            entry.sender_claimed_ed25519,
            entry.sender_key,
            entry.room_id,
            list(entry.forwarding_chain),
        )
    except Exception:  # noqa: BLE001 - one bad entry must not stop the rest
        return None
    return session if session.id == entry.session_id else None
