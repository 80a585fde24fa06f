"""Stands in for the web browser in the single sign-on tests: tuichat's
`webbrowser.open` runs `$BROWSER`, which is this script; it only appends the
address it was given to the file named by TUICHAT_TEST_BROWSER_LOG, then,
like a browser started in the foreground, stays for
TUICHAT_TEST_BROWSER_STAYS seconds (0 by default)."""

from __future__ import annotations

import os
import sys
import time

# Let go of tuichat's output pipes, which a real browser would not hold.
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1)
os.dup2(null, 2)
with open(os.environ["TUICHAT_TEST_BROWSER_LOG"], "a", encoding="utf-8") as log:
    log.write(sys.argv[1] + "\n")
time.sleep(float(os.environ.get("TUICHAT_TEST_BROWSER_STAYS", "0")))
