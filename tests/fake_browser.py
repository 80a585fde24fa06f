"""Stands in for the web browser in the single sign-on tests: tuichat's
`webbrowser.open` runs `$BROWSER`, which is this script; it only appends the
address it was given to the file named by TUICHAT_TEST_BROWSER_LOG."""

from __future__ import annotations

import os
import sys

with open(os.environ["TUICHAT_TEST_BROWSER_LOG"], "a", encoding="utf-8") as log:
    log.write(sys.argv[1] + "\n")
