"""Background tasks that fail: reported in one place, never lost.

The App's workers run with `exit_on_error=False` (a failed download must not
end the program), and Textual then keeps the exception to itself. Each one
the App starts reports its end to the App, which hands the failed ones here:
the failure is logged with its traceback and shown, as a notification on
whatever screen is up and on the main screen's feedback line. The exception's
text may quote the server or another client, so it is sanitised and placed
as plain text, never as markup.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tuichat.model.sanitize import SafeText, safe_line

if TYPE_CHECKING:
    from textual.worker import Worker

    from tuichat.ui.app import TuichatApp

log = logging.getLogger(__name__)

# What a worker group does, as the message names it.
WHAT_FAILED = {
    "cache": "Reading the cache",
    "commands": "The last command",
    "devices": "Loading the devices",
    "downloads": "The download",
    "history": "Loading older messages",
    "keys": "The key file",
    "previews": "An image preview",
    "recovery": "Recovery",
    "service": "Connecting",
    "uploads": "The upload",
    "verification": "Verification",
}

DETAIL_MAX = 200


def failure_text(group: str, error: BaseException | None) -> SafeText:
    """One line for the user: what failed, and why as far as known."""
    what = WHAT_FAILED.get(group, "A background task")
    if error is None:
        return safe_line(f"{what} failed.")
    kind = type(error).__name__
    detail = safe_line(str(error), max_length=DETAIL_MAX)
    return safe_line(f"{what} failed: {kind}: {detail}" if detail else f"{what} failed: {kind}")


def report_failure(app: TuichatApp, worker: Worker[object]) -> None:
    """Log a failed worker's exception and show it."""
    error = worker.error
    log.error(
        "background task %s (%s) failed",
        worker.name or "?",
        worker.group,
        exc_info=(type(error), error, error.__traceback__) if error is not None else None,
    )
    text = failure_text(worker.group, error)
    app.notify(text, title="Error", severity="error", timeout=20, markup=False)
    app.main.feedback.show(text, error=True)
