"""Markdown written by people (post-mortems, playbook revisions) rendered to safe HTML.

Two layers, each enough on its own for the common cases: markdown-it-py with raw HTML off (HTML in
the text is shown as text), then nh3 (ammonia) with an allowlist of tags and attributes: links only
http, https and mailto (relative links and anchors too; no javascript:, data:, vbscript:), no `on*`,
`hx-*`, `style` or `class` attribute survives, since none is on the allowlist. Templates still place
the result inside an element with `hx-disable`, so htmx never processes anything in it.

A live preview re-renders the whole document on every pause in typing, and markdown-it-py takes
about 3 ms per KB: a 50 KB post-mortem would take 150 ms. So a document is cut into top-level blocks
and each piece is rendered and sanitized on its own, through a cache keyed by its text: typing
changes one block, and only that one is rendered again. A cut is made, outside fenced code, before
an ATX heading at the start of a line (it ends any list, quote or paragraph before it), and after a
blank line before a line that starts at column 0 and cannot continue a list (no list marker, no
indentation): there a block ends, so the pieces render exactly as the whole would (a property test
checks it). A document with reference-style link definitions (usable from any other block) is
rendered whole.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache

import nh3
from markdown_it import MarkdownIt

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr",
    "ul", "img",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags={"script", "style", "iframe", "object", "embed", "noscript", "template"},
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
_FENCE = re.compile(r" *(`{3,}|~{3,})")
# A line that may continue the list or code before a blank line: indented, or a list marker.
_CONTINUES = re.compile(r"[ \t]|[-+*]|\d{1,9}[.)]")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:", re.MULTILINE)


def pieces(text: str) -> list[str]:
    """`text` cut into top-level blocks, outside fenced code (each piece keeps its lines)."""
    out: list[str] = []
    current: list[str] = []
    fence = ""
    after_blank = False
    for line in text.splitlines(keepends=True):
        blank = not line.strip()
        # Cheap tests first: most lines are prose, neither a fence, a heading nor after a blank line.
        opened = _FENCE.match(line) if line.lstrip(" ")[:3] in ("```", "~~~") else None
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
        elif opened:
            fence = opened.group(1)
        elif current and (
            (line[:1] == "#" and _HEADING.match(line))
            or (after_blank and not blank and not _CONTINUES.match(line))
        ):
            out.append("".join(current))
            current = []
        current.append(line)
        after_blank = blank
    if current:
        out.append("".join(current))
    return out


@lru_cache(maxsize=8192)
def _render_piece(text: str) -> str:
    return sanitize(_parser().render(text))


def render(text: str) -> str:
    """Safe HTML of `text` (mark it safe in the template, inside an `hx-disable` element)."""
    text = text.replace("\r\n", "\n")
    if _REFERENCE.search(text):
        return sanitize(_parser().render(text))
    return "".join(_render_piece(piece) for piece in pieces(text))
