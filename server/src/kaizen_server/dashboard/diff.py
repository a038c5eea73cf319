"""Side-by-side line diff of two prompt templates, with difflib's SequenceMatcher.

The result is a list of rows for a two-column table; the template escapes the text, so the
rows hold plain strings.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffRow:
    kind: str  # "equal", "replace", "delete" or "insert"
    left_number: int | None
    left: str | None
    right_number: int | None
    right: str | None


def side_by_side(old: str, new: str) -> list[DiffRow]:
    """Pair the lines of `old` and `new`; changed lines sit side by side, added or removed ones face a blank."""
    old_lines = old.splitlines()
    new_lines = new.splitlines()
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            for offset in range(old_end - old_start):
                rows.append(DiffRow("equal", old_start + offset + 1, old_lines[old_start + offset], new_start + offset + 1, new_lines[new_start + offset]))
            continue

        length = max(old_end - old_start, new_end - new_start)
        for offset in range(length):
            old_index = old_start + offset
            new_index = new_start + offset
            has_old = old_index < old_end
            has_new = new_index < new_end
            kind = "replace"
            if not has_new:
                kind = "delete"
            elif not has_old:
                kind = "insert"
            rows.append(
                DiffRow(
                    kind,
                    old_index + 1 if has_old else None,
                    old_lines[old_index] if has_old else None,
                    new_index + 1 if has_new else None,
                    new_lines[new_index] if has_new else None,
                )
            )

    return rows
