"""Markdown written by people (post-mortems, playbook revisions) rendered to safe HTML.

Two layers, each enough on its own for the common cases: markdown-it-py with raw HTML off (HTML in
the text is shown as text), then nh3 (ammonia) with an allowlist of tags and attributes: links only
http, https and mailto (relative links and anchors too; no javascript:, data:, vbscript:), no `on*`,
`hx-*`, `style` or `class` attribute survives, since none is on the allowlist. Templates still place
the result inside an element with `hx-disable`, so htmx never processes anything in it.
"""

from __future__ import annotations

from functools import cache

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


def render(text: str) -> str:
    """Safe HTML of `text` (mark it safe in the template, inside an `hx-disable` element)."""
    return sanitize(_parser().render(text))
