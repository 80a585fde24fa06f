"""Syntax highlighting of code blocks, off the UI thread and bounded.

The language of a code block is chosen by its sender, and some Pygments
lexers take exponential time on small crafted inputs (`chapel` on a quote
and 40 backslashes: 24 s; `tcsh`: minutes). So only the lexers in
`LEXERS`, common and measured to stay linear-ish on adversarial input (see
tests/test_highlight.py), are ever run; any other language is plain text.
Highlighting runs in one background thread, at most `MAX_HIGHLIGHT`
characters and `BUDGET` seconds per block (checked between tokens; a
lexer's single regular expression cannot be interrupted, which is why the
list is measured). Until a block is ready it is drawn plain; the widget is
told when it is (`when_ready`, called in the worker thread). Results, and
refusals, are cached by (language, code, theme), so reopening a room or
resizing the terminal does not highlight again.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from tuichat.model.sanitize import safe_text

if TYPE_CHECKING:
    from pygments.lexer import Lexer
    from rich.console import Console

log = logging.getLogger(__name__)

# Longer code is never highlighted (shown plain in its box).
MAX_HIGHLIGHT = 4_000
# Wall-clock seconds one block may take; beyond, it is shown plain.
BUDGET = 0.5
# Highlighted blocks kept (each at most MAX_HIGHLIGHT characters).
CACHE_SIZE = 512

# The lexers that may run, by Pygments lexer name, with the names a sender
# may give them (`language-…` classes; Pygments' aliases are not used, so
# no other lexer can be reached through an alias).
LEXERS: dict[str, tuple[str, ...]] = {
    "Python": ("python", "py", "python3", "py3"),
    "Bash": ("bash", "sh", "shell", "zsh", "console"),
    "Diff": ("diff", "patch", "udiff"),
    "Rust": ("rust", "rs"),
    "Go": ("go", "golang"),
    "JavaScript": ("javascript", "js", "mjs", "cjs", "jsx"),
    "TypeScript": ("typescript", "ts", "tsx"),
    "Java": ("java",),
    "SQL": ("sql",),
    "HTML": ("html", "htm"),
    "XML": ("xml", "svg"),
    "CSS": ("css",),
    "YAML": ("yaml", "yml"),
    "TOML": ("toml",),
    "JSON": ("json", "jsonc"),
    "Ruby": ("ruby", "rb"),
    "Kotlin": ("kotlin", "kt"),
    "C#": ("csharp", "cs", "c#"),
    "Lua": ("lua",),
    "Docker": ("dockerfile", "docker"),
    "Makefile": ("makefile", "make", "mk"),
}
_BY_ALIAS = {alias: name for name, aliases in LEXERS.items() for alias in aliases}

# Languages tried when a code block names none (guessing runs in the
# worker too). Pygments' own `guess_lexer` tries every lexer it has.
GUESSABLE = (
    "Python",
    "Bash",
    "Diff",
    "Rust",
    "Go",
    "JavaScript",
    "TypeScript",
    "Java",
    "SQL",
    "HTML",
    "YAML",
    "TOML",
)
# Signatures for languages whose Pygments lexer cannot recognise them (its
# `analyse_text` says 0.0 for most): checked in order.
_SIGNATURES = (
    ("Python", re.compile(r"^\s*(def \w+\(|class \w+[(:]|from \w+ import |import \w+$)", re.M)),
    ("Rust", re.compile(r"\b(fn \w+\(|let mut |impl\b|println!\()")),
    ("Go", re.compile(r"^package \w+|\bfunc (\(\w+ \*?\w+\) )?\w+\(", re.M)),
    ("SQL", re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE TABLE)\b", re.M | re.I)),
    ("JavaScript", re.compile(r"\b(const|let|var) \w+ = |=> \{|\bconsole\.log\(|\bfunction \w*\(")),
    ("Bash", re.compile(r"^\s*(\$ |sudo |apt |pip |npm |cd |export \w+=)", re.M)),
)


@dataclass(frozen=True, slots=True)
class Highlighted:
    """A highlighted block: `text` (None: shown plain) and the language
    it was highlighted as (guessed when the sender named none)."""

    text: Text | None
    language: str


def wrapped_lines(done: Highlighted, console: Console, width: int) -> list[Text]:
    """A highlighted block wrapped to `width`, from a copy (the cache keeps
    the original). Its text is the block's code, already clean."""
    assert done.text is not None
    return list(done.text.copy().wrap(console, width, overflow="fold"))


_lock = threading.Lock()
_cache: OrderedDict[tuple[str, str, bool], Highlighted] = OrderedDict()
# Waiting or running: the callbacks to call when done.
_waiting: dict[tuple[str, str, bool], list[Callable[[], None]]] = {}
_jobs: queue.SimpleQueue[tuple[str, str, bool]] = queue.SimpleQueue()
_worker: threading.Thread | None = None
_lexers: dict[str, Lexer] = {}
runs = 0  # blocks highlighted so far (tests check the cache is used)


def lexer_name(language: str) -> str | None:
    """The whitelisted lexer for a sender's language name, if any."""
    return _BY_ALIAS.get(language.lower())


def _lexer(name: str) -> Lexer:
    lexer = _lexers.get(name)
    if lexer is None:
        from pygments.lexers import find_lexer_class

        found = find_lexer_class(name)
        if found is None:  # not in this Pygments: plain text
            from pygments.lexers.special import TextLexer

            found = TextLexer
        lexer = _lexers[name] = found()
    return lexer


def guess(code: str) -> str | None:
    """The whitelisted lexer that best fits `code`, if any fits."""
    sample = code[:MAX_HIGHLIGHT]
    best, best_score = None, 0.0
    for name in GUESSABLE:
        score = _lexer(name).analyse_text(sample)
        if score > best_score:
            best, best_score = name, score
    if best is not None and best_score >= 0.3:
        return best
    if sample.strip()[:1] in ("{", "["):
        try:
            json.loads(code)
        except ValueError:
            pass
        else:
            return "JSON"
    for name, pattern in _SIGNATURES:
        if pattern.search(sample):
            return name
    return best if best_score > 0 else None


def cached(language: str, code: str, dark: bool) -> Highlighted | None:
    """The block's highlighting if it is done (plain text for a block that
    is too long or in a language not on the list)."""
    if len(code) > MAX_HIGHLIGHT or (language and lexer_name(language) is None):
        return Highlighted(None, language)
    key = (language, code, dark)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
        return found


def request(language: str, code: str, dark: bool, when_ready: Callable[[], None]) -> None:
    """Highlight the block in the background; `when_ready` is called (in
    the worker thread) when `cached` has it."""
    global _worker
    key = (language, code, dark)
    with _lock:
        if key in _cache:
            ready = True
        else:
            ready = False
            callbacks = _waiting.get(key)
            if callbacks is None:
                _waiting[key] = [when_ready]
                _jobs.put(key)
            elif when_ready not in callbacks:
                callbacks.append(when_ready)
            if _worker is None or not _worker.is_alive():
                # A daemon: a block being highlighted never delays exit.
                _worker = threading.Thread(target=_work, name="highlight", daemon=True)
                _worker.start()
    if ready:
        when_ready()


def highlight_now(language: str, code: str, dark: bool) -> Highlighted:
    """Highlight in this thread, within the budget (the worker's job)."""
    found = cached(language, code, dark)
    if found is not None:
        return found
    result = _highlight(language, code, dark)
    _store((language, code, dark), result)
    return result


def _work() -> None:
    while True:
        key = _jobs.get()
        try:
            result = _highlight(*key)
        except Exception:  # a lexer bug: the block stays plain, said in the log
            log.exception("highlighting a %r code block failed", key[0] or "guessed")
            result = Highlighted(None, key[0])
        _store(key, result)
        with _lock:
            callbacks = _waiting.pop(key, [])
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a highlighted code block could not be redrawn")


def _store(key: tuple[str, str, bool], result: Highlighted) -> None:
    with _lock:
        _cache[key] = result
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def _highlight(language: str, code: str, dark: bool) -> Highlighted:
    from rich.syntax import Syntax

    global runs
    runs += 1
    deadline = time.monotonic() + BUDGET
    name = lexer_name(language) if language else guess(code)
    title = language or (name or "").lower()
    if name is None:
        return Highlighted(None, language)
    theme = Syntax.get_theme("monokai" if dark else "default")
    text = Text()
    for count, (token_type, value) in enumerate(_lexer(name).get_tokens(code)):
        if count % 64 == 0 and time.monotonic() > deadline:
            log.info("a %s code block took too long to highlight: shown plain", name)
            return Highlighted(None, title)
        text.append(safe_text(value), theme.get_style_for_token(token_type))
    # The theme's own background would be a block of another colour (black
    # in a light theme): the timeline's shows through instead.
    text.style = Style()
    text.rstrip()
    return Highlighted(text, title)


def clear_cache() -> None:
    """Forget every highlighted block (for tests)."""
    with _lock:
        _cache.clear()
