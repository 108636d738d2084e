"""Formatted text as Telegram parses it: HTML, MarkdownV2 and Markdown into text plus entities.

Offsets and lengths of entities are counted in UTF-16 code units, as the Bot API does. Error
messages follow tdlib's wording, prefixed by the caller with "can't parse entities: ".
"""

from __future__ import annotations

import re
from typing import Any

Entity = dict[str, Any]


class EntityParseError(ValueError):
    """Formatted text that Telegram refuses: the message says where and why."""


def utf16_len(text: str) -> int:
    """Return the length of `text` in UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def sort_entities(entities: list[Entity]) -> list[Entity]:
    """Order entities as Telegram does: by offset, then longer (outer) first."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


class _Builder:
    """Accumulates plain text and tracks the UTF-16 position for entity offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[Entity] = []

    def add(self, piece: str) -> None:
        """Append plain text."""
        self.parts.append(piece)
        self.pos += utf16_len(piece)

    def entity(self, kind: str, start: int, **extra: Any) -> None:
        """Record an entity from `start` to the current position (empty ones are dropped)."""
        length = self.pos - start
        if length > 0:
            self.entities.append({"type": kind, "offset": start, "length": length, **extra})

    def result(self) -> tuple[str, list[Entity]]:
        """Return the plain text and the sorted entities."""
        return "".join(self.parts), sort_entities(self.entities)


# ---------------------------------------------------------------------------------------- HTML

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'", "nbsp": "\u00a0"}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")


def _decode_entity(text: str, i: int) -> tuple[str, int] | None:
    match = _ENTITY_RE.match(text, i)
    if not match:
        return None
    name = match.group(1)
    if name.startswith("#"):
        code = int(name[2:], 16) if name[1] in "xX" else int(name[1:])
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), match.end()
    if name in _HTML_NAMED:
        return _HTML_NAMED[name], match.end()
    return None


def _read_html_attrs(text: str, i: int, tag: str, tag_start: int) -> tuple[dict[str, str], int]:
    """Read attributes after a tag name up to '>'; return them and the index after '>'."""
    attrs: dict[str, str] = {}
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
            )
        if text[i] == ">":
            return attrs, i + 1
        if text[i] == "/" and i + 1 < n and text[i + 1] == ">":
            return attrs, i + 2
        name_match = _ATTR_NAME_RE.match(text, i)
        name = name_match.group(0).lower() if name_match else ""
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset '
                f"{_byte_offset(text, tag_start)}"
            )
        i += len(name)
        while i < n and text[i].isspace():
            i += 1
        if i < n and text[i] != "=":
            attrs[name] = ""  # a bare attribute such as <blockquote expandable>
            continue
        if i >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
            )
        i += 1
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
            )
        quote = text[i]
        if quote in "'\"":
            end = text.find(quote, i + 1)
            if end < 0:
                raise EntityParseError(
                    f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
                )
            raw = text[i + 1 : end]
            i = end + 1
        else:
            end = i
            while end < n and not text[end].isspace() and text[end] != ">":
                end += 1
            raw = text[i:end]
            i = end
        attrs[name] = _unescape_attr(raw)


def _unescape_attr(raw: str) -> str:
    if "&" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&" and (decoded := _decode_entity(raw, i)):
            out.append(decoded[0])
            i = decoded[1]
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Parse Telegram-flavoured HTML into plain text and entities."""
    out = _Builder()
    stack: list[tuple[str, int, dict[str, str]]] = []
    n = len(text)
    i = 0
    while i < n:
        lt = text.find("<", i)
        amp = text.find("&", i)
        stop = min(x for x in (lt, amp, n) if x >= 0)
        if stop > i:
            out.add(text[i:stop])
            i = stop
            continue
        if text[i] == "&":
            decoded = _decode_entity(text, i)
            if decoded:
                out.add(decoded[0])
                i = decoded[1]
            else:
                out.add("&")
                i += 1
            continue
        tag_start = i
        if i + 1 < n and text[i + 1] == "/":
            end = text.find(">", i + 2)
            if end < 0:
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(text, i)}")
            name = text[i + 2 : end].strip().lower()
            if not stack:
                raise EntityParseError(
                    f"Unexpected end tag at byte offset {_byte_offset(text, tag_start)}"
                )
            open_name, start, attrs = stack.pop()
            if name != open_name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(text, tag_start)}, "
                    f'expected "</{open_name}>", found "</{name}>"'
                )
            _close_html_tag(out, stack, open_name, start, attrs)
            i = end + 1
            continue
        name_match = _TAG_NAME_RE.match(text, i + 1)
        name = name_match.group(0).lower() if name_match else ""
        if i + 1 + len(name) >= n:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(text, tag_start)}"
            )
        if name not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, tag_start)}'
            )
        attrs, i = _read_html_attrs(text, i + 1 + len(name), name, tag_start)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(text, tag_start)}"
            )
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(
                f'Custom emoji entity must contain a tag "emoji-id" at byte offset '
                f"{_byte_offset(text, tag_start)}"
            )
        stack.append((name, out.pos, attrs))
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return out.result()


def _close_html_tag(
    out: _Builder,
    stack: list[tuple[str, int, dict[str, str]]],
    name: str,
    start: int,
    attrs: dict[str, str],
) -> None:
    kind = _HTML_TAGS[name]
    if name == "code" and stack and stack[-1][0] == "pre":
        language = attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1][2]["language"] = language.removeprefix("language-")
            return
    if kind == "text_link":
        href = attrs.get("href", "")
        if not href:
            return
        user = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if user:
            out.entity(
                "text_mention",
                start,
                user={"id": int(user.group(1)), "is_bot": False, "first_name": ""},
            )
            return
        out.entity("text_link", start, url=href)
    elif kind == "pre" and attrs.get("language"):
        out.entity("pre", start, language=attrs["language"])
    elif kind == "blockquote" and "expandable" in attrs:
        out.entity("expandable_blockquote", start)
    elif kind == "custom_emoji":
        out.entity("custom_emoji", start, custom_emoji_id=attrs["emoji-id"])
    elif kind == "date_time":
        extra: dict[str, Any] = {}
        if attrs.get("unix", "").isdigit():
            extra["unix_time"] = int(attrs["unix"])
        if attrs.get("format"):
            extra["date_time_format"] = attrs["format"]
        out.entity("date_time", start, **extra)
    else:
        out.entity(kind, start)


# ---------------------------------------------------------------------------------- MarkdownV2

_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _reserved_error(char: str) -> EntityParseError:
    return EntityParseError(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2 into plain text and entities, refusing unescaped reserved characters."""
    out = _Builder()
    stack: list[dict[str, Any]] = []
    quote_start: int | None = None
    quote_expandable = False
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        at_line_start = i == 0 or text[i - 1] == "\n"
        top = stack[-1]["type"] if stack else None
        if at_line_start and top not in ("code", "pre"):
            if c == ">" or (text.startswith("**>", i)):
                if quote_start is None:
                    quote_start = out.pos
                    quote_expandable = text.startswith("**>", i)
                i += 3 if text.startswith("**>", i) else 1
                continue
            if quote_start is not None:
                _close_quote(out, quote_start, quote_expandable)
                quote_start = None
        if c == "\\" and i + 1 < n and 0 < ord(text[i + 1]) <= 126:
            out.add(text[i + 1])
            i += 2
            continue
        if top in ("code", "pre"):
            if c != "`":
                out.add(c)
                i += 1
                continue
        elif c not in _MDV2_RESERVED:
            if c == "\n":
                out.add(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] not in _MDV2_RESERVED and text[j] not in "\\\n":
                j += 1
            out.add(text[i:j])
            i = j
            continue
        if top is not None and _mdv2_closes(top, text, i):
            entity = stack.pop()
            i = _mdv2_close(out, entity, text, i)
            continue
        if (
            quote_start is not None
            and quote_expandable
            and text.startswith("||", i)
            and (i + 2 == n or text[i + 2] == "\n")
        ):
            _close_quote(out, quote_start, expandable=True)
            quote_start = None
            i += 2
            continue
        byte = _byte_offset(text, i)
        kind, i = _mdv2_open(text, i)
        entry: dict[str, Any] = {"type": kind, "start": out.pos, "byte": byte}
        if kind == "pre":
            newline = text.find("\n", i)
            language = text[i:newline] if newline >= 0 else ""
            if newline >= 0 and language and " " not in language and "`" not in language:
                entry["language"] = language
                i = newline + 1
            elif newline >= 0 and not language:
                i = newline + 1
        stack.append(entry)
    if stack:
        entity = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_MDV2_NAMES[entity['type']]} entity at byte offset "
            f"{entity['byte']}"
        )
    if quote_start is not None:
        _close_quote(out, quote_start, quote_expandable)
    return out.result()


def _close_quote(out: _Builder, start: int, expandable: bool) -> None:
    if out.parts and out.parts[-1].endswith("\n"):
        out.parts[-1] = out.parts[-1][:-1]
        out.pos -= 1
        out.entity("expandable_blockquote" if expandable else "blockquote", start)
        out.add("\n")
    else:
        out.entity("expandable_blockquote" if expandable else "blockquote", start)


def _mdv2_closes(kind: str, text: str, i: int) -> bool:
    c = text[i]
    nxt = text[i + 1] if i + 1 < len(text) else ""
    match kind:
        case "bold":
            return c == "*"
        case "italic":
            return c == "_" and nxt != "_"
        case "underline":
            return c == "_" and nxt == "_"
        case "strikethrough":
            return c == "~"
        case "spoiler":
            return c == "|" and nxt == "|"
        case "code":
            return c == "`"
        case "pre":
            return text.startswith("```", i)
        case "text_link" | "custom_emoji":
            return c == "]"
    return False


def _mdv2_open(text: str, i: int) -> tuple[str, int]:
    c = text[i]
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if c == "_":
        return ("underline", i + 2) if nxt == "_" else ("italic", i + 1)
    if c == "*":
        return "bold", i + 1
    if c == "~":
        return "strikethrough", i + 1
    if c == "|" and nxt == "|":
        return "spoiler", i + 2
    if c == "[":
        return "text_link", i + 1
    if c == "!" and nxt == "[":
        return "custom_emoji", i + 2
    if c == "`":
        return ("pre", i + 3) if text.startswith("```", i) else ("code", i + 1)
    raise _reserved_error(c)


def _mdv2_close(out: _Builder, entity: dict[str, Any], text: str, i: int) -> int:
    kind = entity["type"]
    if kind in ("underline", "spoiler"):
        out.entity(kind, entity["start"])
        return i + 2
    if kind == "pre":
        if entity.get("language"):
            out.entity("pre", entity["start"], language=entity["language"])
        else:
            out.entity("pre", entity["start"])
        return i + 3
    if kind in ("text_link", "custom_emoji"):
        i += 1
        if i < len(text) and text[i] == "(":
            url_chars: list[str] = []
            j = i + 1
            while j < len(text) and text[j] != ")":
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                url_chars.append(text[j])
                j += 1
            if j >= len(text):
                raise EntityParseError(
                    f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}"
                )
            url = "".join(url_chars)
            i = j + 1
        else:
            url = ""
        if kind == "custom_emoji":
            emoji = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
            if not emoji:
                raise EntityParseError("Custom emoji URL must have an emoji identifier")
            out.entity("custom_emoji", entity["start"], custom_emoji_id=emoji.group(1))
        elif url:
            out.entity("text_link", entity["start"], url=url)
        return i
    out.entity(kind, entity["start"])
    return i + 1


# ------------------------------------------------------------------------------------ Markdown

_MD_OPEN = {"*": "bold", "_": "italic", "`": "code", "[": "text_link"}


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Parse legacy Markdown (bold, italic, code, pre, links) into plain text and entities."""
    out = _Builder()
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if c not in _MD_OPEN:
            out.add(c)
            i += 1
            continue
        begin = i
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                )
            body = text[i + 3 : end]
            language = ""
            if "\n" in body:
                first, rest = body.split("\n", 1)
                if first and " " not in first:
                    language, body = first, rest
            start = out.pos
            out.add(body)
            if language:
                out.entity("pre", start, language=language)
            else:
                out.entity("pre", start)
            i = end + 3
            continue
        closer = "]" if c == "[" else c
        end = text.find(closer, i + 1)
        if end < 0:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, begin)}"
            )
        start = out.pos
        out.add(text[i + 1 : end])
        i = end + 1
        if c == "[":
            if i < n and text[i] == "(":
                close = text.find(")", i)
                if close < 0:
                    raise EntityParseError(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, i)}"
                    )
                out.entity("text_link", start, url=text[i + 1 : close])
                i = close + 1
        else:
            out.entity(_MD_OPEN[c], start)
    return out.result()


# ------------------------------------------------------------------------------- auto entities

_AUTO_RE = re.compile(
    r"(?P<bot_command>(?<![\w/])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/]))"
    r"|(?P<email>\b[\w.+-]+@[\w-]+\.[\w.-]*\w)"
    r"|(?P<url>\bhttps?://[^\s<>\"]+[^\s<>\"\.,;:!?\)\]'])"
    r"|(?P<mention>(?<![\w@])@[a-zA-Z][a-zA-Z0-9_]{3,31}\b)"
    r"|(?P<hashtag>(?<![\w#])#\w*[^\W\d_]\w*)"
)


def detect_entities(text: str) -> list[Entity]:
    """Find the entities Telegram marks on its own: commands, URLs, mentions, hashtags, emails."""
    if not any(ch in text for ch in "/@#:"):
        return []
    found: list[Entity] = []
    for match in _AUTO_RE.finditer(text):
        kind = match.lastgroup or "url"
        found.append(
            {
                "type": kind,
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group(0)),
            }
        )
    return found


def merge_detected(text: str, entities: list[Entity]) -> list[Entity]:
    """Add automatically detected entities that do not overlap the given ones."""
    detected = detect_entities(text)
    if not detected:
        return entities
    taken = [(e["offset"], e["offset"] + e["length"]) for e in entities]
    extra = [
        d
        for d in detected
        if all(d["offset"] + d["length"] <= a or d["offset"] >= b for a, b in taken)
    ]
    return sort_entities([*entities, *extra]) if extra else entities


PARSERS = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}


def parse_formatted(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Parse `text` under `parse_mode` (None or "" means plain text)."""
    if not parse_mode:
        return text, []
    parser = PARSERS.get(parse_mode.lower())
    if parser is None:
        raise KeyError(parse_mode)
    return parser(text)
