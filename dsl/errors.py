"""One error type for every malformed spec: where it is, what is wrong, what was expected.

A `SpecError` raised deep inside the typed model (a validator that finds a step needing an
undefined step, say) knows the node but not the text; `loads` then `locate`s it against the
source to fill in file, line, column and the caret context.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Iterable


class SpecError(Exception):
    """A spec that cannot be accepted. `str(err)` is `FILE:LINE:COL: message` + context."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 file: str | None = None, expected: Iterable[str] = (), hint: str | None = None,
                 node: Any = None, key: str | None = None, item: str | None = None,
                 on_key: bool = False):
        super().__init__(message)
        self.message = message
        self.line, self.column, self.file = line, column, file
        self.expected = sorted(set(expected))
        self.hint = hint
        self.context = ""
        # where a validator found the problem, resolved to line/column by `locate`
        self.node, self.key, self.item, self.on_key = node, key, item, on_key

    @property
    def location(self) -> str:
        return f"{self.file or '<spec>'}:{self.line or 1}:{self.column or 1}"

    def __str__(self) -> str:
        out = f"{self.location}: {self.message}"
        if self.hint:
            out += f" ({self.hint})"
        if self.context:
            out += "\n" + self.context.rstrip("\n")
        if self.expected:
            out += "\nexpected: " + ", ".join(self.expected)
        return out

    def locate(self, text: str, file: str | None) -> "SpecError":
        """Fill in file, position (from the node it names, if any) and the caret context."""
        self.file = self.file or file
        if self.line is None and self.node is not None:
            self.line, self.column = self.node.locate(text, self.key, self.item, self.on_key)
        self.line = max(1, self.line or 1)
        self.column = max(1, self.column or 1)
        self.context = caret_context(text, self.line, self.column)
        return self


def caret_context(text: str, line: int, column: int, width: int = 100) -> str:
    """The offending line (clipped around the column if long) and a caret under the column."""
    lines = text.split("\n")
    src = lines[line - 1] if 0 < line <= len(lines) else ""
    src = src.replace("\t", " ").replace("\r", "")
    start = max(0, column - 1 - width // 2) if len(src) > width else 0
    shown = src[start:start + width]
    prefix = "..." if start else ""
    return f"  {prefix}{shown}\n  {' ' * (len(prefix) + column - 1 - start)}^\n"


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest option, or None if nothing is close."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def find_word(text: str, start: int, end: int, word: str) -> int | None:
    """Offset of `word` as a whole word inside text[start:end], else None."""
    for m in _WORD.finditer(text, start, end):
        if m.group() == word:
            return m.start()
    idx = text.find(word, start, end)
    return idx if idx >= 0 else None
