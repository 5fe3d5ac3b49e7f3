"""Values of the spec language and the base class of every typed node.

A value is a plain Python scalar (bool, int, float, str, datetime.date), a list, a map, or
one of the small nodes below: `Ref` (an identifier or dotted reference such as
`models.looplm.accuracy_by_digits.12`), `Range` (`1e-5..1e-2`) and the boolean expressions
used by knowledge-base rules and claims (`position == rope and reinject != none`).
"""
from __future__ import annotations

import datetime
import math
from typing import Annotated, Any, Literal, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr,
                      model_validator)
from typing_extensions import TypeAliasType

from .errors import SpecError, find_word

# Words the grammar owns: they can never be identifiers (see grammar.lark).
RESERVED = frozenset({"and", "or", "not", "in", "true", "false"})


class Bare:
    """Annotation marker: the printer writes this string field without quotes."""


BARE = Bare()


def is_ident(s: str) -> bool:
    return s.isidentifier() and s.isascii() and s not in RESERVED


class Node(BaseModel):
    """Base of every typed node: frozen, strict, closed; remembers where it was written.

    Positions and comments are private attributes, so two nodes are equal when their
    fields are equal, wherever they were written (that is what round trips compare).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    # char offsets into the source: the node's start and, per key, (key, value, value end)
    _start: int | None = PrivateAttr(None)
    _end: int | None = PrivateAttr(None)
    _keys: dict[str, tuple[int, int, int]] = PrivateAttr(default_factory=dict)
    # (start, end) of the header (`step x {`) and of the closing `}`, for comment placement
    _head: tuple[int, int] | None = PrivateAttr(None)
    _close: tuple[int, int] | None = PrivateAttr(None)
    # comments kept for the formatter: {(key or None or "}", "lead"|"trail"): [text, ...]}
    _notes: dict[tuple[str | None, str], list[str]] = PrivateAttr(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and canonical(self) == canonical(other)

    __hash__ = None  # type: ignore[assignment]

    def locate(self, text: str, key: str | None = None, item: str | None = None,
               on_key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of this node, of one of its keys (its value, or the key
        itself if `on_key`), or of an item inside that value."""
        offset = self._start
        if key is not None and key in self._keys:
            k, v, end = self._keys[key]
            offset = k if on_key else v
            if item is not None:
                hit = find_word(text, v, end, item)
                offset = v if hit is None else hit
        elif item is not None and self._start is not None:
            hit = find_word(text, self._start, self._end or len(text), item)
            offset = offset if hit is None else hit
        return line_col(text, offset or 0)

    def fail(self, message: str, key: str | None = None, item: str | None = None,
             hint: str | None = None, on_key: bool = False) -> SpecError:
        return SpecError(message, node=self, key=key, item=item, hint=hint, on_key=on_key)


def line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def canonical(x: Any) -> Any:
    """A type-tagged form for equality, so that True != 1 and 1 != 1.0 inside specs."""
    if isinstance(x, BaseModel):
        return (type(x).__name__, tuple((k, canonical(getattr(x, k))) for k in type(x).model_fields))
    if isinstance(x, (list, tuple)):
        return ("seq", tuple(canonical(v) for v in x))
    if isinstance(x, dict):
        return ("map", tuple((k, canonical(v)) for k, v in x.items()))
    return (type(x).__name__, x)


def _finite(x: float) -> float:
    if isinstance(x, float) and not math.isfinite(x):
        raise ValueError("numbers must be finite")
    return x


Number = Annotated[Union[int, float], AfterValidator(_finite)]


def _as_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


class Ref(Node):
    """An identifier (`rope`) or a dotted reference (`models.looplm.accuracy_by_digits.12`)."""

    parts: Annotated[tuple[Union[str, Annotated[int, Field(ge=0)]], ...],
                     BeforeValidator(_as_tuple), Field(min_length=1)]

    @model_validator(mode="after")
    def _names(self) -> "Ref":
        if not isinstance(self.parts[0], str):
            raise ValueError("a reference starts with a name")
        for p in self.parts:
            if isinstance(p, str) and not is_ident(p):
                raise ValueError(f"{p!r} is not an identifier")
        return self

    @property
    def dotted(self) -> str:
        return ".".join(str(p) for p in self.parts)


class Range(Node):
    """An inclusive numeric range `lo..hi`."""

    lo: Number
    hi: Number

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.lo > self.hi:
            raise ValueError(f"range {self.lo}..{self.hi} is empty (lo > hi)")
        return self

    def __contains__(self, x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and self.lo <= x <= self.hi


CompareOp = Literal["==", "!=", "<", "<=", ">", ">=", "in"]


class Compare(Node):
    left: "Value"
    op: CompareOp
    right: "Value"


class BoolOp(Node):
    op: Literal["and", "or"]
    operands: Annotated[tuple["Value", ...], BeforeValidator(_as_tuple), Field(min_length=2)]


class Not(Node):
    operand: "Value"


Value = TypeAliasType(
    "Value",
    Union[bool, int, float, str, datetime.date, Ref, Range, Compare, BoolOp, Not,
          list["Value"], dict[str, "Value"]],
)
Expr = Union[Compare, BoolOp, Not, Ref]
for _m in (Compare, BoolOp, Not):
    _m.model_rebuild()


def _ref_to_str(v: Any) -> Any:
    """Identifier fields accept what the parser yields for a bare word: a `Ref`."""
    return v.dotted if isinstance(v, Ref) else v


def _check_ident(s: str) -> str:
    if not is_ident(s):
        raise ValueError(f"{s!r} is not an identifier (letters, digits, _; not a reserved word)")
    return s


def _check_dotted(s: str) -> str:
    for part in s.split("."):
        _check_ident(part)
    return s


Ident = Annotated[str, BeforeValidator(_ref_to_str), AfterValidator(_check_ident), BARE]
Dotted = Annotated[str, BeforeValidator(_ref_to_str), AfterValidator(_check_dotted), BARE]
Text = str  # prose: must be a quoted string (a bare word is an error, usually a missing quote)


def Choice(*options: str) -> Any:
    """A closed set of identifiers, written bare: `severity: critical`."""
    return Annotated[Literal.__getitem__(options), BeforeValidator(_ref_to_str), BARE]


def Seq(item: Any) -> Any:
    """A list in the language, an immutable tuple in the model."""
    return Annotated[tuple[item, ...], BeforeValidator(_as_tuple)]
