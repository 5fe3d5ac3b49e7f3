"""Text -> typed `Spec`: the Lark parser (built once), the Transformer, comment attachment.

The Transformer has one small method per grammar rule. Blocks of `key: value` entries are
turned into typed nodes by `_build`, which also records where each key was written so that
semantic errors can point at the offending line.
"""
from __future__ import annotations

import contextvars
import datetime
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedInput, VisitError
from pydantic import ValidationError

from . import model as m
from .errors import SpecError, did_you_mean
from .messages import humanize_validation, lark_error
from .values import BoolOp, Compare, Node, Not, Range, Ref, is_ident

GRAMMAR = Path(__file__).with_name("grammar.lark")
MAX_DEPTH = 48  # brackets nested deeper than this are refused before they reach recursion
_comments: contextvars.ContextVar[list[Token]] = contextvars.ContextVar("comments")
_depth: contextvars.ContextVar[list[int]] = contextvars.ContextVar("depth")


def _on_comment(tok: Token) -> Token:
    _comments.get([]).append(tok)
    return tok


def _opening(tok: Token) -> Token:
    depth = _depth.get([0])
    depth[0] += 1
    if depth[0] > MAX_DEPTH:
        raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", line=tok.line, column=tok.column)
    return tok


def _closing(tok: Token) -> Token:
    _depth.get([0])[0] -= 1
    return tok


@functools.cache
def parser() -> Lark:
    return Lark(GRAMMAR.read_text(), parser="lalr", strict=True, propagate_positions=True,
                maybe_placeholders=True,
                lexer_callbacks={"COMMENT": _on_comment, "LBRACE": _opening, "LSQB": _opening,
                                 "LPAR": _opening, "RBRACE": _closing, "RSQB": _closing,
                                 "RPAR": _closing})


@dataclass
class Entry:
    key: str
    value: Any
    start: int        # offset of the key
    value_start: int
    end: int          # offset just past the value


def parse_tree(text: str, comments: list[Token] | None = None):
    """Lark parse with fresh per-parse state (comment list, bracket depth)."""
    tok_c, tok_d = _comments.set([] if comments is None else comments), _depth.set([0])
    try:
        return parser().parse(text)
    finally:
        _comments.reset(tok_c)
        _depth.reset(tok_d)


def parse(text: str) -> m.Spec:
    """Parse and validate; raise SpecError (without file/context: `loads` adds them)."""
    comments: list[Token] = []
    try:
        spec = ToSpec(text).transform(parse_tree(text, comments))
    except UnexpectedInput as e:
        raise lark_error(e, text, parser(), parse_tree) from None
    except VisitError as e:
        if isinstance(e.orig_exc, SpecError):
            raise e.orig_exc from None
        # a node the grammar admits but the model cannot hold: report it where it was written
        msg = e.orig_exc.errors()[0]["msg"] if isinstance(e.orig_exc, ValidationError) else str(e.orig_exc)
        meta = getattr(e.obj, "meta", None)
        raise SpecError(msg.removeprefix("Value error, "), line=getattr(meta, "line", 1),
                        column=getattr(meta, "column", 1)) from None
    attach_comments(spec, comments, text)
    return spec


_SKIP = re.compile(r"(\s|//[^\n]*|/\*(.|\n)*?\*/)*")


class ToSpec(Transformer):
    """Lark tree -> typed nodes. Methods are named after grammar rules."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    # ---- blocks and entries -------------------------------------------------------------
    @v_args(meta=True)
    def entry(self, meta, children) -> Entry:
        key, value = children
        colon = self.text.index(":", key.end_pos)
        vstart = _SKIP.match(self.text, colon + 1).end()
        return Entry(str(key), value, key.start_pos, vstart, meta.end_pos)

    def body(self, entries: list[Entry]) -> list[Entry]:
        return entries

    meta_entry = entry

    @v_args(meta=True)
    def front_matter(self, meta, entries):
        node = self._build(m.Meta, meta, entries, "front matter")
        node._close = (meta.end_pos - 3, meta.end_pos)
        node._head = (meta.start_pos, meta.start_pos + 3)
        return node

    @v_args(meta=True)
    def objective(self, meta, children):
        return "objective", self._build(m.Objective, meta, children[0], "objective")

    @v_args(meta=True)
    def param_group(self, meta, children):
        group, params = str(children[0]), children[1:]
        return group, self._block(m.ParamGroup, meta, params=params)

    @v_args(meta=True)
    def param(self, meta, children):
        name, typ, optional, default, in_tok, allowed, doc = children
        keys = {"name": (name.start_pos,) * 2 + (name.end_pos,),
                "type": (typ.start_pos,) * 2 + (typ.end_pos,)}
        if default is not None:
            at = _SKIP.match(self.text, self.text.index("=", typ.end_pos) + 1).end()
            keys["default"] = (at, at, meta.end_pos)
        if in_tok is not None:
            at = _SKIP.match(self.text, in_tok.end_pos).end()
            keys["allowed"] = (in_tok.start_pos, at, meta.end_pos)
        if doc is not None:
            keys["doc"] = (doc.start_pos, doc.start_pos, doc.end_pos)
        node = self._make(m.Param, meta, {
            "name": str(name), "type": str(typ), "optional": optional is not None,
            "default": default if isinstance(default, list) else _scalar(default),
            "allowed": allowed, "doc": _string(doc) if doc is not None else None}, f"param '{name}'", keys)
        node._head = (meta.start_pos, meta.end_pos)
        node._keys = {}  # a param is one item for comments: its keys served errors only
        return node

    @v_args(inline=True)
    def choices(self, *items):
        return [_scalar(t) for t in items]

    @v_args(meta=True)
    def span(self, meta, children):
        return self._value(meta, Range, lo=_number(children[0]), hi=_number(children[1]))

    def _named(kind, cls, label):
        @v_args(meta=True)
        def method(self, meta, children):
            name, entries = children
            return kind, self._build(cls, meta, entries, f"{label} '{name}'", name=str(name))
        return method

    baseline = _named("baselines", m.Baseline, "baseline")
    kernel = _named("kernels", m.Kernel, "kernel")
    step = _named("step", m.Step, "step")
    fact = _named("facts", m.Fact, "fact")
    rule = _named("rules", m.Rule, "rule")
    symptom = _named("symptoms", m.Symptom, "symptom")

    @v_args(meta=True)
    def protocol(self, meta, steps):
        return "protocol", self._block(m.Protocol, meta, steps=[s for _, s in steps])

    @v_args(meta=True)
    def knowledge(self, meta, items):
        groups: dict[str, list] = {"facts": [], "rules": [], "symptoms": []}
        for kind, node in items:
            groups[kind].append(node)
        return "knowledge", self._block(m.Knowledge, meta, **groups)

    @v_args(meta=True)
    def infrastructure(self, meta, children):
        return "infrastructure", self._build(m.Infrastructure, meta, children[0], "infrastructure")

    @v_args(meta=True)
    def implementation(self, meta, children):
        tok = children[0]
        return "implementation", (_string(tok), (meta.start_pos, tok.start_pos, tok.end_pos))

    @v_args(meta=True)
    def system(self, meta, children):
        name, sections = str(children[0]), children[1:]
        data: dict[str, Any] = {"name": name, "baselines": [], "kernels": []}
        keys: dict[str, tuple[int, int, int]] = {}
        for field, node in sections:
            if field == "implementation":
                if field in data:
                    raise self._error("duplicate 'implementation' (a system has one)", node[1][0])
                data[field], keys[field] = node
            elif field in ("baselines", "kernels"):
                data[field].append(node)
            elif field in data:
                first = data[field]._start
                raise node.fail(f"duplicate section '{field}' (first at line "
                                f"{self.text.count(chr(10), 0, first) + 1})")
            else:
                data[field] = node
        node = self._make(m.System, meta, data, "system", keys)
        self._braces(node, meta)
        return node

    @v_args(meta=True)
    def start(self, meta, children):
        meta_node = children[0] if len(children) == 2 else None
        return self._make(m.Spec, meta, {"meta": meta_node, "system": children[-1]})

    # ---- values -------------------------------------------------------------------------
    @v_args(inline=True)
    def string(self, tok):
        return _string(tok)

    @v_args(inline=True)
    def number(self, tok):
        return _number(tok)

    @v_args(inline=True)
    def date(self, tok):
        return _date(tok)

    @v_args(inline=True)
    def true(self, tok):
        return True

    @v_args(inline=True)
    def false(self, tok):
        return False

    @v_args(meta=True)
    def range(self, meta, children):
        return self._value(meta, Range, lo=_number(children[0]), hi=_number(children[1]))

    @v_args(meta=True)
    def ref(self, meta, parts):
        return self._value(meta, Ref, parts=[int(p) if p.type == "INDEX" else str(p) for p in parts])

    @v_args(meta=True)
    def list(self, meta, items):
        return list(items)

    @v_args(meta=True)
    def map(self, meta, pairs):
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise SpecError(f"duplicate map key '{key}'", line=meta.line, column=meta.column)
            out[key] = value
        return out

    @v_args(inline=True)
    def pair(self, key, value):
        return (_string(key) if key.type == "STRING" else str(key)), value

    @v_args(meta=True)
    def or_expr(self, meta, operands):
        return self._value(meta, BoolOp, op="or", operands=operands)

    @v_args(meta=True)
    def and_expr(self, meta, operands):
        return self._value(meta, BoolOp, op="and", operands=operands)

    @v_args(meta=True)
    def negation(self, meta, children):
        return self._value(meta, Not, operand=children[0])

    @v_args(meta=True)
    def comparison(self, meta, children):
        left, op, right = children
        return self._value(meta, Compare, left=left, op=str(op), right=right)

    # ---- helpers ------------------------------------------------------------------------
    def _value(self, meta, cls, **fields):
        try:
            return cls(**fields)
        except ValidationError as e:
            err = e.errors()[0]
            raise SpecError(str(err["msg"]).removeprefix("Value error, "), line=meta.line,
                            column=meta.column) from None

    def _no_duplicates(self, entries: list[Entry], where: str) -> None:
        seen: dict[str, Entry] = {}
        for e in entries:
            if e.key in seen:
                line = self.text.count("\n", 0, seen[e.key].start) + 1
                raise self._error(f"duplicate key '{e.key}' in {where} (first at line {line})", e.start)
            seen[e.key] = e

    def _build(self, cls, meta, entries: list[Entry], where: str, **fixed):
        """Typed node from `key: value` entries; unknown keys get a did-you-mean."""
        self._no_duplicates(entries, where)
        allowed = [f for f in cls.model_fields if f not in fixed]
        for e in entries:
            if e.key not in allowed:
                raise self._error(f"unknown key '{e.key}' in {where}", e.start,
                                  hint=did_you_mean(e.key, allowed), expected=allowed)
        keys = {e.key: (e.start, e.value_start, e.end) for e in entries}
        node = self._make(cls, meta, {**fixed, **{e.key: e.value for e in entries}}, where, keys)
        self._braces(node, meta)
        return node

    def _block(self, cls, meta, **fields):
        node = self._make(cls, meta, fields)
        self._braces(node, meta)
        return node

    def _braces(self, node: Node, meta) -> None:
        node._head = (meta.start_pos, self.text.index("{", meta.start_pos) + 1)
        node._close = (meta.end_pos - 1, meta.end_pos)

    def _make(self, cls, meta, data: dict, where: str | None = None, keys: dict | None = None):
        keys = keys or {}
        data = {k: v for k, v in data.items() if v is not None}
        try:
            node = cls.model_validate(data)
        except ValidationError as e:
            raise humanize_validation(e, self.text, where or cls.__name__.lower(), keys,
                                      meta.start_pos) from None
        except SpecError as e:
            if e.node is not None and e.node._start is None:  # raised by this node's own validator
                _place(e.node, meta, keys)
            raise
        _place(node, meta, keys)
        return node

    def _error(self, message: str, offset: int, **kw) -> SpecError:
        line = self.text.count("\n", 0, offset) + 1
        col = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return SpecError(message, line=line, column=col, **kw)


def _place(node: Node, meta, keys: dict) -> None:
    node._start, node._end, node._keys = meta.start_pos, meta.end_pos, keys


def _string(tok: Token) -> str:
    try:
        return json.loads(tok, strict=False)
    except json.JSONDecodeError as e:
        raise SpecError(f"bad escape in string: {e.msg}", line=tok.line,
                        column=tok.column + e.pos) from None


MAX_NUMBER_LEN = 400  # digits; Python refuses int() of strings past 4300 digits anyway


def _number(tok: Token) -> int | float:
    text = str(tok)
    if len(text) > MAX_NUMBER_LEN:
        raise SpecError(f"number with more than {MAX_NUMBER_LEN} characters", line=tok.line, column=tok.column)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise SpecError(f"number {text} is out of range", line=tok.line, column=tok.column)
    return value


def _date(tok: Token) -> datetime.date:
    try:
        return datetime.date.fromisoformat(str(tok))
    except ValueError:
        raise SpecError(f"{tok} is not a valid date", line=tok.line, column=tok.column) from None


def _scalar(tok: Token | None) -> Any:
    """A token of a param's default or choices (parsed by the param's own small rules)."""
    if tok is None:
        return None
    return {"STRING": _string, "NUMBER": _number, "DATE": _date, "TRUE": lambda t: True,
            "FALSE": lambda t: False, "NAME": _word}[tok.type](tok)


def _word(tok: Token) -> Ref:
    if not is_ident(str(tok)):
        raise SpecError(f"'{tok}' is a reserved word, not a value here", line=tok.line, column=tok.column)
    return Ref(parts=[str(tok)])


def attach_comments(spec: m.Spec, comments: list[Token], text: str) -> None:
    """Give each comment to the item it belongs to, so the formatter can keep it.

    A comment on the same line after an item trails it; otherwise it leads the next item
    (an entry, a node's header, or a block's closing brace); after everything it ends the file.
    """
    if not comments:
        return
    items: list[tuple[int, int, Node, Any]] = []
    for node in spec.walk():
        if node._head:
            items.append((node._head[0], node._head[1], node, None))
        if node._close and node._head and node._close != node._head:
            items.append((node._close[0], node._close[1], node, "}"))
        for key, (k, _v, end) in node._keys.items():
            items.append((k, end, node, key))
    for c in comments:
        prev = max((it for it in items if it[1] <= c.start_pos), key=lambda it: it[1], default=None)
        if prev is not None and text.count("\n", prev[1], c.start_pos) == 0:
            _note(prev[2], prev[3], "trail", str(c))
            continue
        nxt = min((it for it in items if it[0] >= c.end_pos), key=lambda it: it[0], default=None)
        if nxt is None:
            _note(spec, None, "end", str(c))
        else:
            _note(nxt[2], nxt[3], "lead", str(c))


def _note(node: Node, key: Any, where: str, text: str) -> None:
    node._notes.setdefault((key, where), []).append(text)
