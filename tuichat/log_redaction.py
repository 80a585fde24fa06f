"""Keeping secrets out of the log file.

tuichat itself never logs a token or key, but libraries may: a URL with an
`access_token` query parameter, an Authorization header, an exception that
quotes a request. Every record that reaches the log file passes through
`RedactingFilter`, which removes the secrets registered by the process
(the session's access token, the profile's pickle key) and anything shaped
like a bearer token or an access-token parameter.
"""

from __future__ import annotations

import logging
import re
import threading

_PATTERNS = (
    re.compile(r"((?:access|refresh)_token=)[^&\s'\"]+"),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"),
    # JSON and Python reprs of a login answer: "access_token": "…"
    re.compile(r"([\"'](?:access|refresh)_token[\"']\s*:\s*[\"'])[^\"']+"),
)
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """A string that must never appear in the log (ignored if very short)."""
    if len(value) >= 8:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1<redacted>", text)
    with _lock:
        secrets = list(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "<redacted>")
    return text


class RedactingFilter(logging.Filter):
    """Formats the record's message (and traceback) once, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
