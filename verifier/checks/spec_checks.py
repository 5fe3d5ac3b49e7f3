"""The spec against the code: no drift between declared params and config fields; rules."""
from __future__ import annotations

import types
import typing
from typing import Any

from knowledge_base.rules import fired_rules
from looplm import config as C

from ..registry import check
from ..result import failed, passed
from ..target import Target


def _describe_field(info) -> tuple[str, Any, tuple | None]:
    """(spec type, default, enum choices) of a pydantic field."""
    ann = info.annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        ann = next(a for a in args if a is not type(None))
        args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Literal:
        return "enum", info.default, tuple(args)
    if typing.get_origin(ann) is tuple:
        return "ints", info.default, None
    return {int: "int", float: "float", bool: "bool", str: "str"}.get(ann, repr(ann)), info.default, None


@check("spec.config_sync")
def config_sync(target: Target, params) -> Any:
    """Every spec param is a config field with the same type, default and choices, and back."""
    problems: list[str] = []
    n = 0
    system = target.spec.system
    for group, model in C.GROUPS.items():
        declared = getattr(system, group)
        declared = {p.name: p for p in declared.params} if declared else {}
        for name, info in model.model_fields.items():
            if name not in declared:
                problems.append(f"{C.SECTION_OF[group]}.{name} is a config field the spec's {group} lacks")
                continue
            n += 1
            p = declared[name]
            typ, default, choices = _describe_field(info)
            if p.type != typ:
                problems.append(f"{group}.{name}: spec says {p.type}, config says {typ}")
            if (p.default if p.type != "ints" else tuple(p.default or ())) != default:
                problems.append(f"{group}.{name}: spec default {p.default!r}, config default {default!r}")
            if choices is not None and set(p.allowed or ()) != set(choices):
                problems.append(f"{group}.{name}: spec choices {sorted(p.allowed or ())}, config {sorted(choices)}")
        for name in declared:
            if name not in model.model_fields:
                problems.append(f"{group}.{name} is declared in the spec but not a field of {model.__name__}")
    if problems:
        return failed(f"{len(problems)} mismatch(es) between spec and config", "\n".join(problems),
                      mismatches=len(problems), params_checked=n)
    return passed(f"{n} params agree with looplm.config", params_checked=n)


@check("spec.rules")
def rules(target: Target, params) -> Any:
    """Evaluate the knowledge base's rules against the architecture being trained."""
    fired = fired_rules(target.spec, target.config)
    errors = [r for r in fired if r.severity == "error"]
    lines = [f"[{r.severity}] {r.name}: {r.apply} ({r.reason or 'no reason given'})" for r in fired]
    measured = {"fired": [r.name for r in fired], "rules": len(target.spec.system.rules)}
    if errors:
        return failed(f"rule(s) of severity error fire: {', '.join(r.name for r in errors)}", "\n".join(lines), **measured)
    note = f"{len(fired)} advisory rule(s) fire: {', '.join(r.name for r in fired)}" if fired else "no rule fires"
    return passed(note, "\n".join(lines), **measured)
