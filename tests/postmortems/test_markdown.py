"""The renderer cuts a document at its top-level headings and caches each piece: the pieces must
render exactly as the whole document would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from console import markdown

LINES = st.sampled_from(
    [
        "# Title", "## Summary", "### Sub", "#not a heading", "  # indented heading", "", "", "text line",
        "- item", "  - nested", "1. first", "2) second", "> quote", ">", "```", "~~~", "````", "    code",
        "| a | b |", "|---|---|", "| 1 | 2 |", "---", "===", "**bold** [l](https://x.y)", "<b>raw</b>",
        "- HH:MM - Event", "* star", "+ plus", "\\# escaped", "  continued text", "\ttabbed", "10. ten",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, max_size=40).map("\n".join))
def test_rendering_by_pieces_equals_rendering_the_whole(text: str) -> None:
    assert markdown.render(text) == markdown.sanitize(markdown._parser().render(text))


def test_a_document_with_reference_links_is_rendered_whole():
    text = "# A\n[x][r]\n\n# B\n[r]: https://example.com\n"
    assert 'href="https://example.com"' in markdown.render(text)
