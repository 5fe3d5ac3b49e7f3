"""A spec as highlighted canonical text, for `looplm spec show`."""
from __future__ import annotations

import re

from rich.text import Text

from .model import Spec
from .printer import dumps

_STYLES = [
    (re.compile(r"\b(system|objective|architecture|training|data|halting|param|baseline|kernel"
                r"|protocol|step|knowledge|fact|rule|symptom|infrastructure|implementation)\b"),
     "bold magenta"),
    (re.compile(r"(?<![\w.])-?\d+(\.\d+)?([eE][-+]?\d+)?\b"), "cyan"),
    (re.compile(r"\"([^\"\\\n]|\\.)*\""), "green"),
    (re.compile(r"//[^\n]*|/\*(.|\n)*?\*/"), "dim"),
]


def render(spec: Spec) -> Text:
    """Canonical text with keywords, numbers, strings and comments styled (later wins)."""
    text = Text(dumps(spec))
    for pattern, style in _STYLES:
        for m in pattern.finditer(text.plain):
            text.stylize(style, m.start(), m.end())
    return text
