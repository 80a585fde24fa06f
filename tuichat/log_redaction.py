"""Keeping secrets out of the log file.

tuichat itself never logs a token or key, but libraries may: a URL with an
`access_token` query parameter, an Authorization header, an exception that
quotes a request. Every record that reaches the log file passes through
`RedactingFilter`, which removes the secrets registered by the process
(the session's access token, the profile's pickle key) and anything shaped
like a bearer token or an access-token parameter.

`SafeFormatter` then writes each record as one line: event ids, server
error strings and other remote text may hold newlines and terminal
escapes, which would otherwise forge log lines or reach the terminal of
whoever reads the file.
"""

from __future__ import annotations

import logging
import re
import threading

_PATTERNS = (
    # Query parameters and form fields: the access and refresh tokens, SSO's
    # login token, the OAuth 2.0 API's authorization and device codes, PKCE
    # verifier and client secret.
    re.compile(
        r"(\b(?:access_token|refresh_token|loginToken|code|device_code|code_verifier"
        r"|client_secret)=)[^&\s'\"]+"
    ),
    re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+"),
    # JSON and Python reprs of a login or token answer: "access_token": "…"
    re.compile(
        r"([\"'](?:access_token|refresh_token|device_code|client_secret)[\"']\s*:\s*[\"'])"
        r"[^\"']+"
    ),
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


# C0 and C1 controls, DEL and the Unicode line and paragraph separators:
# anything that could end a line or drive a terminal.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape."""
    return _CONTROLS.sub(_escape, text)


class SafeFormatter(logging.Formatter):
    """Every record on one line: newlines (tracebacks' too) and other control
    characters escaped, after the message was redacted by `RedactingFilter`."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))
