"""Vocabularies: the addition alphabet and char-level vocabularies from a text."""
from __future__ import annotations

from dataclasses import dataclass

DIGITS = "0123456789"
PLUS, EQUALS, END, PAD = "+", "=", "$", "."


@dataclass(frozen=True)
class Vocab:
    """An ordered alphabet of single characters; `pad` is never a training target."""

    chars: str
    pad: str = PAD

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("vocabulary characters must be unique")
        if self.pad not in self.chars:
            raise ValueError(f"pad {self.pad!r} is not in the vocabulary")

    def __len__(self) -> int:
        return len(self.chars)

    def id(self, ch: str) -> int:
        return self.chars.index(ch)

    def encode(self, text: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return [index[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    @property
    def pad_id(self) -> int:
        return self.id(self.pad)

    @property
    def is_addition(self) -> bool:
        return self.chars == ADDITION.chars


# digits take ids 0-9, so "is a digit" is `id < 10` everywhere
ADDITION = Vocab(DIGITS + PLUS + EQUALS + END + PAD)


def char_vocab(text: str) -> Vocab:
    """All characters of `text`, sorted, plus a pad character that the text does not use."""
    chars = "".join(sorted(set(text)))
    pad = next(c for c in ("\x00", "\x01", "\uffff") if c not in chars)
    return Vocab(chars + pad, pad=pad)
