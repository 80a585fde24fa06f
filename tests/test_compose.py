"""What the composer's text becomes on the wire."""

from __future__ import annotations

from tuichat.matrix.content.compose import edit_content, message_content, reaction_content
from tuichat.matrix.content.convert import Viewer, to_item
from tuichat.matrix.content.room_state import RoomState
from tuichat.model.items import RelationKind
from tuichat.model.rooms import Membership


def test_plain_text_has_no_formatted_body_but_says_it_mentions_nobody() -> None:
    content = message_content('he said "hi" & left <quietly>\nsecond line')
    assert content == {
        "msgtype": "m.text",
        "body": 'he said "hi" & left <quietly>\nsecond line',
        "m.mentions": {},
    }


def test_markdown_becomes_a_sanitised_formatted_body() -> None:
    content = message_content("**bold**, ~~old~~ and `code` <script>x</script>")
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == (
        "<strong>bold</strong>, <s>old</s> and <code>code</code> &lt;script&gt;x&lt;/script&gt;"
    )
    assert content["body"] == "**bold**, ~~old~~ and `code` <script>x</script>"


def test_code_blocks_keep_their_language() -> None:
    content = message_content("```python\ndef f():\n    return 1\n```")
    assert content["formatted_body"] == (
        '<pre><code class="language-python">def f():\n    return 1\n</code></pre>'
    )


def test_plain_sends_markdown_as_typed() -> None:
    content = message_content("**not bold**", markdown=False)
    assert "formatted_body" not in content


def test_mentions_become_pills_and_m_mentions() -> None:
    content = message_content("thanks Bob Smith!", mentions={"Bob Smith": "@bob:example.org"})
    assert content["formatted_body"] == (
        'thanks <a href="https://matrix.to/#/@bob:example.org">Bob Smith</a>!'
    )
    assert content["m.mentions"] == {"user_ids": ["@bob:example.org"]}
    # A name completed but deleted again mentions nobody.
    assert message_content("thanks", mentions={"Bob": "@bob:x"})["m.mentions"] == {}


def test_a_reply_points_at_its_parent_and_mentions_its_sender() -> None:
    content = message_content("yes", reply_to="$parent", reply_sender="@bob:x", own_user_id="@a:x")
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$parent"}}
    assert content["m.mentions"] == {"user_ids": ["@bob:x"]}
    own = message_content("me too", reply_to="$p", reply_sender="@a:x", own_user_id="@a:x")
    assert own["m.mentions"] == {}


def test_an_edit_carries_new_content_and_a_fallback() -> None:
    content = edit_content("$original", "fixed **typo**")
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$original"}
    assert content["body"] == "* fixed **typo**"
    assert content["formatted_body"] == "* fixed <strong>typo</strong>"
    assert content["m.new_content"]["body"] == "fixed **typo**"
    assert content["m.new_content"]["formatted_body"] == "fixed <strong>typo</strong>"


def test_what_we_send_reads_back_as_we_meant_it() -> None:
    state = RoomState("!r:x", Membership.JOIN)
    viewer = Viewer("@a:x")

    def event(content: dict[str, object], event_type: str = "m.room.message") -> dict[str, object]:
        return {"type": event_type, "event_id": "$e", "sender": "@a:x", "content": content}

    item = to_item(
        event(message_content("*hi*", reply_to="$p", reply_sender="@b:x")), state, viewer
    )
    assert item is not None and item.reply_to == "$p" and item.formatted is not None
    edit = to_item(event(edit_content("$p", "new")), state, viewer)
    assert edit is not None and edit.relation is not None
    assert edit.relation.kind is RelationKind.EDIT and edit.body == "new"
    reaction = to_item(event(reaction_content("$p", "👍"), "m.reaction"), state, viewer)
    assert reaction is not None and reaction.relation is not None
    assert (reaction.relation.kind, reaction.relation.target, reaction.relation.key) == (
        RelationKind.REACTION,
        "$p",
        "👍",
    )
