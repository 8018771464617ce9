from __future__ import annotations

from django.template.loader import render_to_string
from hypothesis import given
from hypothesis import strategies as st

from console.diff import diff_texts


def test_identical_texts_have_no_changes():
    diff = diff_texts("a\nb\n", "a\nb\n")
    assert diff.identical
    assert "No differences" in render_to_string("console/diff.html", {"diff": diff})


def test_a_one_word_edit_marks_only_that_word():
    diff = diff_texts("The risk service was down.\n", "The risk service was degraded.\n")
    (row,) = diff.rows
    assert row.kind == "replace"
    assert [p.text for p in row.old if p.changed] == ["down"]
    assert [p.text for p in row.new if p.changed] == ["degraded"]
    assert (diff.added, diff.removed) == (1, 1)


def test_inserted_and_deleted_lines_carry_their_own_line_numbers():
    diff = diff_texts("one\ntwo\nthree\n", "one\nthree\nfour\n")
    changed = [(r.kind, r.old_no, r.new_no) for r in diff.rows if r.kind != "equal"]
    assert changed == [("delete", 2, None), ("insert", None, 3)]


def test_long_unchanged_runs_fold_into_a_gap_keeping_context():
    old = "\n".join(f"line {i}" for i in range(100))
    new = old.replace("line 50", "line fifty")
    diff = diff_texts(old, new, context=3)
    kinds = [r.kind for r in diff.rows]
    assert kinds.count("replace") == 1
    assert kinds.count("gap") == 2
    assert sum(r.folded for r in diff.rows) == 100 - 1 - 6
    assert len(diff.rows) == 1 + 6 + 2


def test_the_rendered_diff_escapes_the_text():
    diff = diff_texts("<b>x</b>\n", "<b>x</b>\n<script>alert(1)</script>\n")
    html = render_to_string("console/diff.html", {"diff": diff})
    assert "<script" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@given(st.text(), st.text())
def test_each_side_of_the_rows_rebuilds_its_text(old, new):
    diff = diff_texts(old, new, context=10**6)
    left = [("".join(p.text for p in r.old)) for r in diff.rows if r.old_no is not None]
    right = [("".join(p.text for p in r.new)) for r in diff.rows if r.new_no is not None]
    assert left == old.splitlines() and right == new.splitlines()
