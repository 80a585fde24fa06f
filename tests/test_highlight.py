"""Code blocks are highlighted off the UI thread, only by measured lexers,
drawn plain until ready, then in place; reopening or resizing reuses it."""

from __future__ import annotations

import random
import string
import time
from typing import Any

import pytest
from textual.app import App, ComposeResult

from tests.test_timeline_rendering import event, item
from tuichat.model.timeline import Timeline
from tuichat.ui.widgets import highlight
from tuichat.ui.widgets.timeline_view import TimelineView


def code_item(n: int, language: str, code: str) -> Any:
    html = f'<pre><code class="language-{language}">{code}</code></pre>'
    return item(
        event(
            n,
            {
                "msgtype": "m.text",
                "body": code,
                "format": "org.matrix.custom.html",
                "formatted_body": html,
            },
        )
    )


class ViewApp(App[None]):
    def compose(self) -> ComposeResult:
        yield TimelineView()


def coloured(view: TimelineView, needle: str) -> bool:
    """Whether the line showing `needle` is highlighted: its code is drawn
    in more than one colour (plain code is all in the text's colour)."""
    for index in range(len(view.items)):
        for strip in view._render_at(index):
            if needle in strip.text:
                colours = {
                    segment.style.color
                    for segment in strip
                    if segment.style is not None and segment.text.strip() not in ("│", "")
                }
                return len(colours) > 1
    raise AssertionError(f"{needle!r} not shown")


async def test_a_hostile_language_is_shown_plain_without_freezing_the_ui() -> None:
    # Pygments' Chapel lexer takes exponential time on a quote and a run of
    # backslashes (about 10 s for these 38); it must never run at all.
    code = "'" + "\\" * 38
    highlight.clear_cache()
    app = ViewApp()
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r", "@me:x")
        timeline.append([code_item(1, "chapel", code), code_item(2, "tcsh", '"' + "\\" * 300)])
        started = time.monotonic()
        view.set_items(timeline)
        await pilot.pause()
        text = "\n".join(view.line_texts())
        took = time.monotonic() - started
        assert took < 2, f"drawing took {took:.1f} s"
        assert code in text and "chapel" in text
        done = highlight.cached("chapel", code, app.current_theme.dark)
        assert done is not None and done.text is None


async def test_code_is_drawn_plain_then_highlighted_in_place_and_kept_on_resize() -> None:
    code = "def twice(x):\n    return 2 * x  # unique-marker-one"
    highlight.clear_cache()
    app = ViewApp()
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(TimelineView)
        timeline = Timeline("!r", "@me:x")
        timeline.append([code_item(1, "python", code)])
        runs = highlight.runs
        view.set_items(timeline)
        # The first frame draws it plain: nothing was highlighted yet.
        assert not coloured(view, "def twice")
        for _ in range(100):
            await pilot.pause(0.05)
            if coloured(view, "def twice"):
                break
        assert coloured(view, "def twice"), "never highlighted"
        assert highlight.runs == runs + 1
        # A resize, and the room opened again: drawn highlighted at once,
        # from the cache, without highlighting again.
        await pilot.resize_terminal(70, 30)
        await pilot.pause()
        assert coloured(view, "def twice")
        view.set_items(timeline)
        assert coloured(view, "def twice")
        assert highlight.runs == runs + 1


def test_only_listed_languages_are_highlighted_and_others_are_plain() -> None:
    highlight.clear_cache()
    assert highlight.lexer_name("py") == "Python"
    for name in ("chapel", "tcsh", "c", "markdown", "no-such-language"):
        assert highlight.lexer_name(name) is None
        done = highlight.highlight_now(name, "x = 1", True)
        assert done.text is None and done.language == name
    huge = "x = 1\n" * (highlight.MAX_HIGHLIGHT // 6 + 1)
    assert highlight.highlight_now("python", huge, True).text is None


def test_code_without_a_language_is_guessed_among_common_languages() -> None:
    assert highlight.guess("def f(x):\n    return x\n") == "Python"
    assert highlight.guess("fn main() {\n    let mut x = 1;\n}") == "Rust"
    assert highlight.guess('{"a": [1, 2]}') == "JSON"
    assert highlight.guess("just some words") is None
    done = highlight.highlight_now("", "def f(x):\n    return x\n", True)
    assert done.text is not None and done.language == "python"


def adversarial_inputs(size: int = 4000) -> dict[str, str]:
    """Inputs that make backtracking regular expressions blow up: long
    runs of escapes, quotes, brackets and blanks, alone or after an opening
    quote, and random punctuation. (A wider set, 238 inputs, was measured
    once for the list; these are the families that found slow lexers.)"""
    inputs: dict[str, str] = {}
    for unit in ("\\", '"', "'", " ", "\t", "\n", "(", "{", '\\"', "/*"):
        for opener in ("", '"', "'", "$"):
            inputs[f"{opener!r}+{unit!r}*"] = opener + (unit * size)[: size - len(opener)]
    inputs["'<'+' '*"] = "<" + " " * (size - 1)
    rng = random.Random(18)
    for number in range(2):
        alphabet = string.punctuation + " \n\\\"'ab"
        inputs[f"random {number}"] = "".join(rng.choice(alphabet) for _ in range(size))
    return inputs


# The longest a single token may take, in CPU seconds of the lexing
# thread: one regular expression call holds the GIL, so this is the
# longest the UI can be held up by highlighting. A backtracking lexer
# (C, C++) takes seconds on 4,000 spaces.
MAX_TOKEN_SECONDS = 0.05


@pytest.mark.parametrize("name", sorted(highlight.LEXERS))
def test_every_listed_lexer_stays_fast_on_adversarial_input(name: str) -> None:
    lexer = highlight._lexer(name)
    worst, worst_input = 0.0, ""
    for label, text in adversarial_inputs().items():
        last = time.thread_time()
        for _ in lexer.get_tokens(text):
            now = time.thread_time()
            if now - last > worst:
                worst, worst_input = now - last, label
            last = now
    assert worst < MAX_TOKEN_SECONDS, f"{name}: {worst * 1000:.1f} ms on {worst_input}"
