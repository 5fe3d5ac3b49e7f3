"""Rules of the knowledge base, evaluated against a concrete config.

A rule's `when` is a condition over param names (`position == rope and reinject != none`);
names resolve to the config's values (the spec's param groups map onto its sections),
bare words on the right-hand side are enum values.
"""
from __future__ import annotations

import operator
from typing import Any

from dsl.model import Rule, Spec
from dsl.values import BoolOp, Compare, Not, Ref
from looplm.config import SECTION_OF, Config

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge, "in": lambda a, b: a in b}


def config_values(spec: Spec, config: Config) -> dict[str, Any]:
    """param name -> value in `config`, for every param the spec declares."""
    values = {}
    for name in spec.system.params:
        group = spec.system.group_of(name)
        values[name] = getattr(getattr(config, SECTION_OF[group]), name)
    return values


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


def fired_rules(spec: Spec, config: Config) -> list[Rule]:
    values = config_values(spec, config)
    return [r for r in spec.system.rules if evaluate(r.when, values)]
