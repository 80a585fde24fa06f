"""JSON for the hot paths (sync bodies, cached events, decrypted payloads).

orjson parses about 1.4x and encodes about 10x faster than the standard
library, which matters at tens of thousands of events per sync. It is
stricter, though: it refuses lone surrogates (a hostile sender can put
"\\ud800" in a body) and integers beyond 64 bits, which the standard
library accepts. Those rare inputs fall back to `json`, so remote input
never fails here that would have parsed before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """Compact JSON text."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except (orjson.JSONEncodeError, UnicodeDecodeError):
        return _ENCODER.encode(value)
