"""A readable diff of two texts (post-mortem revisions, playbook versions), side by side.

Lines are matched with difflib; a changed line pair also marks the words that changed, so a one-word
edit in a long paragraph is visible. Unchanged runs longer than the context fold into a gap row.
Nothing here is HTML: templates/console/diff.html renders the rows, escaping every piece of text.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from itertools import zip_longest

# A word, a run of spaces, or one punctuation character: the units a changed line is compared in.
_TOKENS = re.compile(r"\w+|\s+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool = False


@dataclass(frozen=True)
class Row:
    kind: str  # "equal", "delete", "insert", "replace" or "gap" (folded unchanged lines)
    old_no: int | None = None
    new_no: int | None = None
    old: tuple[Piece, ...] = ()
    new: tuple[Piece, ...] = ()
    folded: int = 0  # for a gap: how many unchanged lines it hides


@dataclass
class Diff:
    rows: list[Row] = field(default_factory=list)
    added: int = 0
    removed: int = 0

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed)


def _words(old: str, new: str) -> tuple[tuple[Piece, ...], tuple[Piece, ...]]:
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    left: list[Piece] = []
    right: list[Piece] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(Piece("".join(a[i1:i2]), tag != "equal"))
        if j2 > j1:
            right.append(Piece("".join(b[j1:j2]), tag != "equal"))
    return tuple(left), tuple(right)


def diff_texts(old: str, new: str, *, context: int = 3) -> Diff:
    """Side-by-side rows turning `old` into `new`, unchanged runs folded beyond `context` lines."""
    a, b = old.splitlines(), new.splitlines()
    result = Diff()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    opcodes = matcher.get_opcodes()
    for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            lines = list(range(i2 - i1))
            keep_head = context if index > 0 or len(opcodes) == 1 else 0
            keep_tail = context if index < len(opcodes) - 1 else 0
            if len(lines) > keep_head + keep_tail + 1:
                shown = [*lines[:keep_head], -1, *lines[len(lines) - keep_tail :]]
            else:
                shown = lines
            for k in shown:
                if k == -1:
                    result.rows.append(Row("gap", folded=len(lines) - keep_head - keep_tail))
                else:
                    piece = (Piece(a[i1 + k]),)
                    result.rows.append(Row("equal", i1 + k + 1, j1 + k + 1, piece, (Piece(b[j1 + k]),)))
            continue
        result.removed += i2 - i1
        result.added += j2 - j1
        for k, (left, right) in enumerate(zip_longest(a[i1:i2], b[j1:j2])):
            old_no = i1 + k + 1 if left is not None else None
            new_no = j1 + k + 1 if right is not None else None
            if left is not None and right is not None:
                result.rows.append(Row("replace", old_no, new_no, *_words(left, right)))
            elif left is not None:
                result.rows.append(Row("delete", old_no, None, (Piece(left, True),)))
            else:
                result.rows.append(Row("insert", None, new_no, (), (Piece(right or "", True),)))
    return result
