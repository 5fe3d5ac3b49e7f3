"""Rules of the knowledge base, evaluated against a concrete config.

A rule's `when` is a condition over param names (`position == rope and reinject != none`);
names resolve to the values of the config being verified (param name -> value, as the
system under test reports them), bare words on the right-hand side are enum values.
"""
from __future__ import annotations

import operator
from typing import Any

from dsl.model import Rule, Spec
from dsl.values import BoolOp, Compare, Not, Ref

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge, "in": lambda a, b: a in b}


def evaluate(expr: Any, values: dict[str, Any], rhs: bool = False) -> Any:
    if isinstance(expr, BoolOp):
        results = [bool(evaluate(e, values)) for e in expr.operands]
        return all(results) if expr.op == "and" else any(results)
    if isinstance(expr, Not):
        return not evaluate(expr.operand, values)
    if isinstance(expr, Compare):
        left = evaluate(expr.left, values)
        right = evaluate(expr.right, values, rhs=True)
        try:
            return _OPS[expr.op](left, right)
        except TypeError:  # e.g. None < 3: a comparison that cannot hold
            return False
    if isinstance(expr, Ref):
        # a bare word on the right of a comparison is an enum value, on the left a param
        return expr.dotted if rhs else values[expr.dotted]
    if isinstance(expr, list):
        return [evaluate(e, values, rhs=True) for e in expr]
    return expr


def fired_rules(spec: Spec, values: dict[str, Any]) -> list[Rule]:
    """The spec's rules whose condition holds for `values` (param name -> value). A rule naming
    a param the values lack does not fire (None compares false)."""
    return [r for r in spec.system.rules if evaluate(r.when, _Values(values))]


class _Values(dict):
    def __missing__(self, key: str) -> None:
        return None
