"""The Markdown renderer against hostile input: the XSS filter-evasion corpus in data/, in several
Markdown contexts, and generated mixtures of the pieces such attacks are made of. Every output is
parsed (not searched as text) and must hold nothing executable."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console import markdown

CORPUS = Path(__file__).parent / "data" / "xss_vectors.txt"
ALLOWED_TAGS = markdown.TAGS
FORBIDDEN_TAGS = {"script", "iframe", "object", "embed", "style", "frame", "frameset", "meta", "link", "base"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "dynsrc", "lowsrc"}
BAD_SCHEMES = ("javascript:", "data:", "vbscript:")
# Whitespace and control characters a browser skips inside a URL's scheme.
_SKIPPED = re.compile(r"[\x00-\x20\x7f-\x9f]+")
WRAPPERS = (
    "{}",
    "[link]({})",
    "![image]({})",
    "[{}](https://example.com)",
    "> {}",
    "- item {}",
    "| a | {} |\n|---|---|\n| {} | b |",
)


class Executable(HTMLParser):
    """Collects every reason the parsed HTML could run code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS or tag not in ALLOWED_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            name = name.lower()
            if name.startswith(("on", "hx-", "data-hx")) or name == "style":
                self.problems.append(f"{tag}[{name}]")
            if name in URL_ATTRIBUTES and value is not None:
                url = _SKIPPED.sub("", html.unescape(value)).lower()
                if url.startswith(BAD_SCHEMES):
                    self.problems.append(f"{tag}[{name}={value!r}]")

    handle_startendtag = handle_starttag


def problems(text: str) -> list[str]:
    parser = Executable()
    parser.feed(markdown.render(text))
    parser.close()
    return parser.problems


def _vectors() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [line.replace("\\n", "\n") for line in lines if line and not line.startswith("# ")]


def test_the_checker_catches_what_it_looks_for():
    parser = Executable()
    parser.feed('<a href=" jav&#x61;script:x">a</a><img src=x onerror=y><script></script><p hx-get="/">')
    assert len(parser.problems) == 4


def test_no_vector_of_the_corpus_survives_in_any_markdown_context():
    vectors = _vectors()
    assert len(vectors) >= 100
    failures = {}
    cases = 0
    for vector in vectors:
        for wrapper in WRAPPERS:
            text = wrapper.format(vector, vector)
            cases += 1
            if found := problems(text):
                failures[text] = found
    assert cases >= 1000
    assert failures == {}


PIECES = st.sampled_from(
    [
        "<", ">", "/", "\"", "'", "`", "=", " ", "\t", "\n", "&#", "&#x", ";", ":", "(", ")", "[", "]", "!",
        "javascript", "JaVaScRiPt", "java\tscript", "vbscript", "data", "text/html", "base64,", "alert(1)",
        "script", "img", "svg", "iframe", "a", "href", "src", "onerror", "onload", "hx-get", "hx-on:click",
        "style", "<!--", "-->", "]( ", "](", "![", "<a ", "mailto:", "http://", "&colon;", "&Tab;", "&#58;",
        "&#106;", "%6A", "\x00", "|", "---", "```", "**", "\\",
    ]
)  # fmt: skip


@settings(max_examples=1100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES | st.text(max_size=6), min_size=1, max_size=40).map("".join))
def test_generated_mixtures_of_attack_pieces_render_nothing_executable(text: str) -> None:
    assert problems(text) == []
