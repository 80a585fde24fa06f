"""Key export files checked before anything is asked: whether a file can be
written (export) or is a key file (import), and whether a passphrase is
strong enough. Each problem is a `Failed` sentence naming the file.

Importing this module imports neither nio nor aiohttp (the file format's
crypto is imported when first used, about 40 ms)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tuichat.matrix.service.outcome import Failed, Outcome


def check_key_file(path: Path, *, export: bool, force: bool = False) -> Failed | None:
    """Why a key file cannot be exported to (`export`) or imported from
    `path`, or None: told before the passphrase is asked, so a typo does
    not cost a passphrase and a minute of key derivation."""
    from tuichat.matrix.crypto import key_export

    try:
        if export:
            key_export.check_export_target(path, force=force)
        else:
            key_export.read_key_file(path, key_export.HEAD_BYTES)
    except key_export.KeyFileError as error:
        return Failed(str(error))
    return None


async def read_key_file(path: Path) -> Outcome[str]:
    """The whole text of a key file to import, checked."""
    from tuichat.matrix.crypto import key_export

    try:
        return await asyncio.to_thread(key_export.key_file_text, path)
    except key_export.KeyFileError as error:
        return Failed(str(error))


def passphrase_problem(passphrase: str) -> str | None:
    """Why `passphrase` is too weak to protect a key export, or None."""
    from tuichat.matrix.crypto import key_export

    return key_export.passphrase_problem(passphrase)
