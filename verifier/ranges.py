"""The spec constrains the run: every declared param's value in the config being verified or
trained must have the declared type and lie in the declared range or choices.

A violation names the param, the value, what is allowed and where the spec says so; it is
refused before any step runs (verify, gate and train alike).
"""
from __future__ import annotations

from typing import Any

from dsl.model import Param
from dsl.printer import value_text
from dsl.values import Range

from .contract import not_provided, provides


class ConfigRefused(Exception):
    """The config is outside what the spec declares."""


def allowed_text(p: Param) -> str:
    if isinstance(p.allowed, Range):
        return f"{value_text(p.allowed.lo)}..{value_text(p.allowed.hi)}"
    if isinstance(p.allowed, tuple):
        return "[" + ", ".join(str(v) for v in p.allowed) + "]"
    return f"any {p.type}"


def problem(p: Param, value: Any) -> str | None:
    """Why `value` is not allowed for `p`, or None. None is allowed where the param has no
    default or is declared optional (`TYPE?`)."""
    if value is None:
        return None if p.default is None or p.optional else "no value (declare the param `TYPE?` to allow null)"
    if isinstance(value, list):
        value = tuple(value)
    if not p.accepts(value):
        return f"not a {p.type}"
    if not p.allows(value):
        return f"outside {allowed_text(p)}"
    return None


def out_of_range(spec, values: dict[str, Any]) -> list[str]:
    """One line per declared param whose value the spec does not allow."""
    lines = []
    for name, p in spec.system.params.items():
        if name in values:
            why = problem(p, values[name])
            if why:
                lines.append(f"{spec.system.group_of(name)}.{name} = {values[name]!r}: {why} "
                             f"(declared at {spec.where(p)})")
    return lines


def refuse_out_of_range(target) -> None:
    """Raise ConfigRefused, naming every param the spec does not allow, before any step runs."""
    if not provides(target.system, "config"):
        return
    try:
        values = dict(target.system.param_values())
    except NotImplementedError as e:
        if not_provided(e) is None:
            raise
        return                      # a scaffolded method: the config steps say what is missing
    bad = out_of_range(target.spec, values)
    if bad:
        raise ConfigRefused("the config is outside what the spec allows: " + "; ".join(bad))
