"""Formatted text parsing: HTML, MarkdownV2 and Markdown into text and UTF-16 entities."""

from __future__ import annotations

import html

import pytest
from aiogram.utils.text_decorations import html_decoration, markdown_decoration
from hypothesis import given
from hypothesis import strategies as st

from bot.sandbox.markup import (
    EntityParseError,
    detect_entities,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)


def spans(entities: list[dict]) -> list[tuple]:
    """Return (type, offset, length) of each entity."""
    return [(e["type"], e["offset"], e["length"]) for e in entities]


def test_html_nested_tags_links_and_escapes() -> None:
    text, entities = parse_html(
        '<b>Sale <i>-20%</i></b> on <a href="https://shop.example/?a=1&amp;b=2">boots</a> &lt;3'
    )
    assert text == "Sale -20% on boots <3"
    assert spans(entities) == [("bold", 0, 9), ("italic", 5, 4), ("text_link", 13, 5)]
    assert entities[2]["url"] == "https://shop.example/?a=1&b=2"


def test_html_offsets_are_utf16() -> None:
    text, entities = parse_html("👟 <b>Кросівки</b>")
    assert text == "👟 Кросівки"
    assert spans(entities) == [("bold", 3, 8)]
    assert utf16_len("👟") == 2


def test_html_pre_with_language_spoiler_and_quote() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        '<span class="tg-spoiler">s</span><blockquote expandable>q</blockquote>'
    )
    assert text == "x = 1sq"
    assert entities[0] == {"type": "pre", "offset": 0, "length": 5, "language": "python"}
    assert spans(entities[1:]) == [("spoiler", 5, 1), ("expandable_blockquote", 6, 1)]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('<span class="x">a</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("a</b", "Unclosed end tag at byte offset 1"),
        ("ї<u>x", 'Can\'t find end tag corresponding to start tag "u"'),
        ("ї<img>", 'Unsupported start tag "img" at byte offset 2'),
    ],
)
def test_html_errors(source: str, message: str) -> None:
    with pytest.raises(EntityParseError) as caught:
        parse_html(source)
    assert str(caught.value) == message


def test_markdown_v2_entities() -> None:
    text, entities = parse_markdown_v2(
        "*bold* _it_ __under__ ~strike~ ||spoiler|| `code` [link](https://x.example/a\\)b) 10\\.5"
    )
    assert text == "bold it under strike spoiler code link 10.5"
    assert spans(entities) == [
        ("bold", 0, 4),
        ("italic", 5, 2),
        ("underline", 8, 5),
        ("strikethrough", 14, 6),
        ("spoiler", 21, 7),
        ("code", 29, 4),
        ("text_link", 34, 4),
    ]
    assert entities[-1]["url"] == "https://x.example/a)b"


def test_markdown_v2_pre_and_blockquote() -> None:
    text, entities = parse_markdown_v2("```python\nprint(1)\n```\n>quoted\n>more\nafter")
    assert text == "print(1)\n\nquoted\nmore\nafter"
    assert entities[0] == {"type": "pre", "offset": 0, "length": 9, "language": "python"}
    assert spans(entities[1:]) == [("blockquote", 10, 11)]


def test_markdown_v2_code_keeps_reserved_characters() -> None:
    assert parse_markdown_v2("`a.b!c`")[0] == "a.b!c"


def test_legacy_markdown() -> None:
    text, entities = parse_markdown("*bold* _it_ [link](https://x.example) `c`")
    assert text == "bold it link c"
    assert spans(entities) == [
        ("bold", 0, 4),
        ("italic", 5, 2),
        ("text_link", 8, 4),
        ("code", 13, 1),
    ]
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte"):
        parse_markdown("*open")


def test_detected_entities() -> None:
    found = detect_entities("/start now, mail me@shop.example or see https://shop.example.")
    assert spans(found) == [("bot_command", 0, 6), ("email", 17, 15), ("url", 40, 20)]


texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)


@given(texts)
def test_escaped_html_round_trips(raw: str) -> None:
    assert parse_html(html.escape(raw, quote=False)) == (raw, [])


@given(texts)
def test_aiogram_quoted_markdown_v2_round_trips(raw: str) -> None:
    assert parse_markdown_v2(markdown_decoration.quote(raw))[0] == raw


@given(texts, texts)
def test_aiogram_bold_html_gives_one_bold_entity(before: str, inner: str) -> None:
    source = html_decoration.quote(before) + html_decoration.bold(html_decoration.quote(inner))
    text, entities = parse_html(source)
    assert text == before + inner
    assert spans(entities) == [("bold", utf16_len(before), utf16_len(inner))]
