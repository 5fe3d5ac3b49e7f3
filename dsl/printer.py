"""Typed `Spec` -> canonical text (`dumps`), keeping the comments the parser attached.

Canonical form: two-space indent; sections in a fixed order with a blank line between them;
inside a block, keys in the order the model declares them; identifiers bare, prose quoted;
lists and maps on one line unless that line would pass 100 characters.
"""
from __future__ import annotations

import datetime
import json
import re
from typing import Annotated, Any, get_args, get_origin

from . import model as m
from .values import Bare, BoolOp, Compare, Node, Not, Range, Ref, is_ident

WIDTH = 100
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def dumps(spec: m.Spec) -> str:
    out = _Writer()
    if spec.meta is not None:
        out.block(spec.meta, "---", "---", 0, lambda: out.entries(spec.meta, -1))
        out.blank()
    _system(out, spec.system)
    for c in spec._notes.get((None, "end"), []):
        out.line(0, c)
    return "\n".join(out.lines) + "\n"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def blank(self) -> None:
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def item(self, node: Node, key: Any, depth: int, text: str) -> None:
        """One item with its leading and trailing comments."""
        for c in node._notes.get((key, "lead"), []):
            self.line(depth, c)
        trail = node._notes.get((key, "trail"), [])
        self.line(depth, text + "".join(" " + c for c in trail))

    def block(self, node: Node, head: str, close: str, depth: int, body) -> None:
        self.item(node, None, depth, head)
        body()
        for c in node._notes.get(("}", "lead"), []):
            self.line(depth + 1, c)
        trail = node._notes.get(("}", "trail"), [])
        self.line(depth, close + "".join(" " + c for c in trail))

    def entries(self, node: Node, depth: int, skip: tuple[str, ...] = ()) -> None:
        for name in _written_fields(node):
            if name not in skip:
                self.entry(node, name, getattr(node, name), depth + 1, _is_bare(node, name))

    def entry(self, node: Node, key: str, value: Any, depth: int, bare: bool) -> None:
        text = f"{key}: {value_text(value, bare)}"
        if len("  " * depth + text) > WIDTH and isinstance(value, (list, tuple, dict)) and value:
            items = ([f"{_key(k)}: {value_text(v)}" for k, v in value.items()]
                     if isinstance(value, dict) else [value_text(v, bare) for v in value])
            opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
            for c in node._notes.get((key, "lead"), []):
                self.line(depth, c)
            self.line(depth, f"{key}: {opening}")
            for it in items:
                self.line(depth + 1, it + ",")
            trail = node._notes.get((key, "trail"), [])
            self.line(depth, closing + "".join(" " + c for c in trail))
        else:
            self.item(node, key, depth, text)


def _system(out: _Writer, s: m.System) -> None:
    sections: list = []
    if s.implementation is not None:
        sections.append(lambda d: out.item(s, "implementation", d, f"implementation: {value_text(s.implementation)}"))
    if s.objective:
        sections.append(lambda d: out.block(s.objective, "objective {", "}", d,
                                            lambda: out.entries(s.objective, d)))
    for group in m.PARAM_GROUPS:
        g = getattr(s, group)
        if g is not None:
            sections.append(lambda d, g=g, group=group: out.block(
                g, f"{group} {{", "}", d, lambda: [_param(out, p, d + 1) for p in g.params]))
    for b in s.baselines:
        sections.append(lambda d, b=b: _named(out, "baseline", b, d))
    for k in s.kernels:
        sections.append(lambda d, k=k: _named(out, "kernel", k, d))
    if s.protocol:
        sections.append(lambda d: out.block(s.protocol, "protocol {", "}", d,
                                            lambda: _children(out, "step", s.protocol.steps, d + 1)))
    if s.knowledge:
        kb = s.knowledge
        sections.append(lambda d: out.block(kb, "knowledge {", "}", d, lambda: (
            _children(out, "fact", kb.facts, d + 1), _children(out, "rule", kb.rules, d + 1),
            _children(out, "symptom", kb.symptoms, d + 1))))
    if s.infrastructure:
        sections.append(lambda d: out.block(s.infrastructure, "infrastructure {", "}", d,
                                            lambda: out.entries(s.infrastructure, d)))

    def body() -> None:
        for i, emit in enumerate(sections):
            if i:
                out.blank()
            emit(1)

    out.block(s, f"system {s.name} {{", "}", 0, body)


def _children(out: _Writer, keyword: str, nodes: tuple, depth: int) -> None:
    for n in nodes:
        _named(out, keyword, n, depth)


def _named(out: _Writer, keyword: str, node: Node, depth: int) -> None:
    out.block(node, f"{keyword} {node.name} {{", "}", depth, lambda: out.entries(node, depth, ("name",)))


def _param(out: _Writer, p: m.Param, depth: int) -> None:
    enum = p.type == "enum"
    text = f"param {p.name}: {p.type}" + ("?" if p.optional else "")
    if p.default is not None:
        text += f" = {value_text(p.default, enum)}"
    if p.allowed is not None:
        text += f" in {value_text(p.allowed if isinstance(p.allowed, Range) else list(p.allowed), enum)}"
    if p.doc is not None:
        text += f" {_quote(p.doc)}"
    out.item(p, None, depth, text)


def _written_fields(node: Node) -> list[str]:
    """Fields that were written (or differ from their default), in declaration order."""
    fields = type(node).model_fields
    return [k for k, f in fields.items()
            if getattr(node, k) is not None and (k in node.model_fields_set or getattr(node, k) != f.default)]


def _is_bare(node: Node, name: str) -> bool:
    info = type(node).model_fields[name]
    return any(isinstance(x, Bare) for x in info.metadata) or _bare_type(info.annotation)


def _bare_type(tp: Any) -> bool:
    if get_origin(tp) is Annotated:
        return any(isinstance(x, Bare) for x in tp.__metadata__) or _bare_type(get_args(tp)[0])
    return any(_bare_type(a) for a in get_args(tp))


def _quote(s: str) -> str:
    text = json.dumps(s, ensure_ascii=False)
    return _SURROGATE.sub(lambda c: "\\u%04x" % ord(c.group()), text)


def _key(k: str) -> str:
    return k if is_ident(k) else _quote(k)


def _number(x: int | float) -> str:
    """repr, with the exponent written short: 1e-05 -> 1e-5, 1e+16 -> 1e16."""
    return re.sub(r"e([+-])0*(\d)", lambda g: "e" + ("-" if g.group(1) == "-" else "") + g.group(2),
                  repr(x))


_PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "atom": 5}


def _prec(v: Any) -> int:
    if isinstance(v, BoolOp):
        return _PREC[v.op]
    if isinstance(v, Not):
        return _PREC["not"]
    if isinstance(v, Compare):
        return _PREC["cmp"]
    return _PREC["atom"]


def _wrap(v: Any, above: int) -> str:
    """Parenthesize v unless it binds tighter than the slot it sits in."""
    text = value_text(v)
    return text if _prec(v) > above else f"({text})"


def value_text(v: Any, bare: bool = False) -> str:
    """One value, as the parser will read it back."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, str):
        dotted_ok = bare and all(is_ident(p) for p in v.split("."))
        return v if dotted_ok else _quote(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, Ref):
        return v.dotted
    if isinstance(v, Range):
        return f"{_number(v.lo)}..{_number(v.hi)}"
    if isinstance(v, BoolOp):
        return f" {v.op} ".join(_wrap(x, _PREC[v.op]) for x in v.operands)
    if isinstance(v, Not):
        return "not " + _wrap(v.operand, _PREC["not"] - 1)
    if isinstance(v, Compare):
        return f"{_wrap(v.left, _PREC['cmp'])} {v.op} {_wrap(v.right, _PREC['cmp'])}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value_text(x, bare) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)}: {value_text(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot print {type(v).__name__}")

