"""Evidence-checked claims: a fact may say `claim: some.json.path >= 0.99` about an evidence
file; the claim is re-checked against the file every time, so a believed number that the
results do not support is caught (the seeds' worst failures were believed numbers).

Evidence paths are relative to the spec's own folder, or to the nearest parent folder that
holds them (a spec in dsl/specs/ names results/... of the project it belongs to)."""
from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dsl.model import Fact, Spec
from dsl.values import Ref

Status = Literal["holds", "contradicted", "missing_evidence", "unverified"]
_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}


@dataclass
class ClaimResult:
    fact: str
    status: Status
    detail: str
    claim: str = ""


def resolve(data: Any, parts: tuple) -> Any:
    """Follow a JSON path: map keys by name (numbers as strings too), list items by index."""
    for part in parts:
        if isinstance(data, dict):
            key = str(part)
            if key not in data:
                raise KeyError(f"no key {key!r} (has {sorted(data)[:8]})")
            data = data[key]
        elif isinstance(data, list) and isinstance(part, int):
            data = data[part]
        else:
            raise KeyError(f"cannot take {part!r} of a {type(data).__name__}")
    return data


def evidence_path(evidence: str, root: Path | None = None) -> Path:
    """`evidence` under `root`, else under the nearest parent of root that holds it (a spec in
    dsl/specs/ names results/... of the project it sits in); never the current directory."""
    p = Path(evidence)
    if p.is_absolute() or root is None:
        return p
    root = root.resolve()
    for base in (root, *root.parents):
        if (base / p).exists():
            return base / p
    return root / p


def check_fact(fact: Fact, root: Path | None = None) -> ClaimResult:
    from dsl.printer import value_text
    if fact.claim is None:
        return ClaimResult(fact.name, "unverified", "no machine-checkable claim")
    text = value_text(fact.claim)
    path = evidence_path(fact.evidence, root)
    if not path.is_file():
        return ClaimResult(fact.name, "missing_evidence", f"evidence file {fact.evidence} does not exist", text)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return ClaimResult(fact.name, "missing_evidence", f"{fact.evidence} is not readable JSON: {e}", text)
    c = fact.claim
    assert isinstance(c.left, Ref)
    try:
        value = resolve(data, c.left.parts)
    except (KeyError, IndexError) as e:
        return ClaimResult(fact.name, "missing_evidence", f"{fact.evidence}: {c.left.dotted}: {e}", text)
    want = c.right.dotted if isinstance(c.right, Ref) else c.right
    try:
        ok = bool(_OPS[c.op](value, want)) if c.op != "in" else value in want
    except TypeError:
        ok = False
    detail = f"{c.left.dotted} = {value!r} in {fact.evidence}"
    return ClaimResult(fact.name, "holds" if ok else "contradicted", detail, text)


def check_claims(spec: Spec, root: Path | None = None, store: Path | None = None) -> list[ClaimResult]:
    """The spec's facts and the stored ones (knowledge_base/store.py), each re-checked; evidence
    is looked up from `root`, by default the folder of the spec's file."""
    from .store import all_facts
    facts, _ = all_facts(spec, store)
    if root is None and spec._file:
        root = Path(spec._file).parent
    return [check_fact(f, root) for f in facts]
