"""The spec against the code: no drift between declared params and config fields; rules."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from knowledge_base.rules import fired_rules

from ..registry import check
from ..result import failed, passed
from ..target import Target

_TYPES = {int: "int", float: "float", bool: "bool", str: "str"}


def _describe(annotation: Any, default: Any) -> tuple[str, Any, tuple | None, bool]:
    """(spec type, default, enum choices, whether None is a value) of a config field's annotation."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing))  # noqa: S307  dataclass fields under `from __future__ import annotations`
    args = typing.get_args(annotation)
    nullable = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args
    if nullable:
        annotation = next(a for a in args if a is not type(None))
        args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return "enum", default, tuple(args), nullable
    if typing.get_origin(annotation) in (tuple, list):
        return "ints", tuple(default) if default is not None else None, None, nullable
    return _TYPES.get(annotation, repr(annotation)), default, None, nullable


def config_fields(cls: type) -> dict[str, tuple[str, Any, tuple | None, bool]]:
    """name -> (type, default, choices, nullable) of a pydantic model or a dataclass."""
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        out = {}
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            out[f.name] = _describe(hints.get(f.name, f.type), default)
        return out
    return {name: _describe(info.annotation, info.default) for name, info in cls.model_fields.items()}


def _compare(group: str, declared: dict, fields: dict) -> list[str]:
    problems = []
    for name, (typ, default, choices, nullable) in fields.items():
        p = declared.get(name)
        if p is None:
            problems.append(f"{group}.{name} is a config field the spec's {group} lacks")
            continue
        if p.type != typ:
            problems.append(f"{group}.{name}: spec says {p.type}, config says {typ}")
        if (p.default if p.type != "ints" else tuple(p.default or ())) != default:
            problems.append(f"{group}.{name}: spec default {p.default!r}, config default {default!r}")
        if nullable and default is not None and not p.optional:
            problems.append(f"{group}.{name}: the config takes null (Optional), the spec refuses it: declare `{typ}?`")
        if p.optional and not nullable:
            problems.append(f"{group}.{name}: the spec declares `{typ}?`, the config never takes null")
        if choices is not None and set(p.allowed or ()) != set(choices):
            problems.append(f"{group}.{name}: spec choices {sorted(p.allowed or ())}, config {sorted(choices)}")
    problems += [f"{group}.{name} is declared in the spec but not a config field" for name in declared
                 if name not in fields]
    return problems


@check("spec.config_sync")
def config_sync(target: Target, params) -> Any:
    """Every spec param is a config field with the same type, default and choices, and back."""
    groups = target.need("config").config_groups()
    system = target.spec.system
    problems: list[str] = []
    n = 0
    for group, cls in groups.items():
        declared = getattr(system, group, None)
        declared = {p.name: p for p in declared.params} if declared else {}
        fields = config_fields(cls)
        n += len(set(fields) & set(declared))
        problems += _compare(group, declared, fields)
    if problems:
        return failed(f"{len(problems)} mismatch(es) between spec and config", "\n".join(problems),
                      mismatches=len(problems), params_checked=n)
    return passed(f"{n} params agree with the config classes of {len(groups)} group(s)", params_checked=n)


@check("spec.rules")
def rules(target: Target, params) -> Any:
    """Evaluate the knowledge base's rules against the configuration being verified."""
    values = dict(target.need("config").param_values())
    fired = fired_rules(target.spec, values)
    errors = [r for r in fired if r.severity == "error"]
    lines = [f"[{r.severity}] {r.name}: {r.apply} ({r.reason or 'no reason given'})" for r in fired]
    measured = {"fired": [r.name for r in fired], "rules": len(target.spec.system.rules)}
    if errors:
        return failed(f"rule(s) of severity error fire: {', '.join(r.name for r in errors)}", "\n".join(lines), **measured)
    note = f"{len(fired)} advisory rule(s) fire: {', '.join(r.name for r in fired)}" if fired else "no rule fires"
    return passed(note, "\n".join(lines), **measured)
