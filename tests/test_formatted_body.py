"""`formatted_body` HTML through the spec's whitelist into display blocks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tuichat.matrix.content.formatted_body import parse_formatted_body
from tuichat.model.rich_body import BlockKind, Mark, plain_text


def names(user_id: str) -> str:
    return {"@bob:example.org": "Bob"}.get(user_id, user_id)


def test_inline_formatting_becomes_marked_spans() -> None:
    body = parse_formatted_body("plain <b>bold</b> <em>it</em> <del>gone</del> <code>x()</code>")
    assert body is not None
    marks = {span.text: span.marks for span in body[0].spans}
    assert marks["bold"] == Mark.BOLD
    assert marks["it"] == Mark.ITALIC
    assert marks["gone"] == Mark.STRIKE
    assert marks["x()"] == Mark.CODE
    assert plain_text(body) == "plain bold it gone x()"


def test_a_link_whose_text_differs_from_its_target_shows_the_target() -> None:
    body = parse_formatted_body('<a href="https://evil.example/login">https://bank.example</a>')
    assert body is not None
    assert plain_text(body) == "https://bank.example <https://evil.example/login>"
    same = parse_formatted_body('<a href="https://example.org/">https://example.org/</a>')
    assert same is not None and plain_text(same) == "https://example.org/"


def test_links_with_other_schemes_lose_their_target() -> None:
    for href in ("javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "vbscript:x"):
        body = parse_formatted_body(f'<a href="{href}">click</a>')
        assert body is not None
        assert plain_text(body) == "click"
        assert all(not span.marks & (Mark.LINK | Mark.LINK_TARGET) for span in body[0].spans)


def test_mention_pills_show_the_members_current_name_not_the_link_text() -> None:
    html = '<a href="https://matrix.to/#/%40bob%3Aexample.org">Admin</a>: hi'
    body = parse_formatted_body(html, names)
    assert body is not None
    assert plain_text(body) == "Bob: hi"
    assert body[0].spans[0].marks & Mark.MENTION


def test_reply_fallbacks_scripts_and_unknown_tags() -> None:
    html = (
        "<mx-reply><blockquote>quoted parent</blockquote></mx-reply>"
        "<script>alert(1)</script><style>p{}</style><marquee>kept text</marquee>"
    )
    body = parse_formatted_body(html)
    assert body is not None and plain_text(body) == "kept text"


def test_blocks_lists_quotes_headings_code_and_rules() -> None:
    html = (
        "<h2>Title</h2><p>para</p><ol start='3'><li>three</li><li>four<ul><li>sub</li></ul></li>"
        "</ol><blockquote><p>wise</p></blockquote><hr>"
        '<pre><code class="language-python">def f():\n    return 1\n</code></pre>'
    )
    body = parse_formatted_body(html)
    assert body is not None
    kinds = [block.kind for block in body]
    assert kinds == [
        BlockKind.HEADING,
        BlockKind.PARAGRAPH,
        BlockKind.PARAGRAPH,
        BlockKind.PARAGRAPH,
        BlockKind.PARAGRAPH,
        BlockKind.PARAGRAPH,
        BlockKind.RULE,
        BlockKind.CODE,
    ]
    assert body[0].level == 2
    assert [(b.bullet, b.indent) for b in body[2:5]] == [("3. ", 1), ("4. ", 1), ("• ", 2)]
    assert body[5].quote == 1
    assert body[7].language == "python" and body[7].code == "def f():\n    return 1"


def test_control_characters_and_character_references_cannot_reach_the_terminal() -> None:
    html = "a\x1b[31mred&#27;[0m &#x9b;2J &#x202e;evil <b>\x07bell</b><pre>\x1b]52;c;x\x07</pre>"
    body = parse_formatted_body(html)
    assert body is not None
    text = plain_text(body)
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0 for c in text)
    assert "\u202e" not in text
    assert "␛" in text  # shown, not obeyed


def test_nesting_beyond_one_hundred_levels_is_flattened() -> None:
    body = parse_formatted_body("<blockquote>" * 300 + "deep" + "</blockquote>" * 300)
    assert body is not None
    assert plain_text(body) == "deep"
    assert body[0].quote <= 100


def test_colours_only_as_hex() -> None:
    body = parse_formatted_body(
        '<font data-mx-color="#FF0000">red</font><font color="red;background:url(x)">no</font>'
    )
    assert body is not None
    colours = {span.text: span.colour for span in body[0].spans}
    assert colours == {"red": "#ff0000", "no": None}


def test_empty_or_non_string_formatted_bodies_fall_back_to_the_body() -> None:
    assert parse_formatted_body(None) is None
    assert parse_formatted_body(42) is None
    assert parse_formatted_body("<mx-reply>only a fallback</mx-reply>") is None


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "<b>",
                    "</b>",
                    "<a href='https://x.org'>",
                    "</a>",
                    "<pre>",
                    "</pre>",
                    "<ol>",
                    "<li>",
                    "</li>",
                    "</ol>",
                    "<blockquote>",
                    "<br>",
                    "<hr/>",
                    "<mx-reply>",
                    "</mx-reply>",
                    "<code class='language-rust'>",
                    "&#27;",
                    "&lt;",
                    "<img alt='x'>",
                    "<span data-mx-spoiler>",
                    "</span>",
                    "<table><tr><td>",
                    "</td><td>",
                    "<h1>",
                ]
            ),
            st.text(max_size=20),
        ),
        max_size=40,
    )
)
def test_any_html_soup_parses_without_error_and_without_controls(parts: list[str]) -> None:
    body = parse_formatted_body("".join(parts))
    if body is None:
        return
    text = plain_text(body)
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text


def test_a_body_of_thousands_of_tags_is_shown_as_its_plain_body() -> None:
    # Parsing is linear, but 64 KB of tiny tags would still hold the UI
    # loop up; nobody writes that by hand.
    assert parse_formatted_body('<a href="https://x.org">y</a>' * 2000) is None
    body = parse_formatted_body('<a href="https://x.org">y</a>' * 700)
    assert body is not None and plain_text(body).count("<https://x.org>") == 700


def test_long_paragraphs_and_many_links_keep_every_character() -> None:
    html = "".join(
        f'word{n} <a href="https://x.org/{n}">link {n}</a> <b>b{n}</b><br>' for n in range(300)
    )
    body = parse_formatted_body(html)
    assert body is not None
    text = plain_text(body)
    assert text.count("<https://x.org/") == 300
    assert "word299 link 299 <https://x.org/299> b299" in text
