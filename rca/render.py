"""RCA records as a markdown log grouped by category, like the user's root.md."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from .record import Record

TITLES = {"kernel": "GPU kernels: indexing and hardware law", "numerics": "Numerical integrity",
          "learning_dynamics": "Learning dynamics", "data": "Data pipeline", "evaluation": "Evaluation",
          "checkpoint": "Checkpoints and transfer", "architecture": "Architecture choices",
          "infrastructure": "Infrastructure", "gate_bypass": "Gate bypasses", "other": "Other"}


def render_markdown(records: Iterable[Record], title: str = "LoopLM root-cause analysis") -> str:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        groups[r.category].append(r)
    out = [f"# {title}", ""]
    for cat in TITLES:
        if not groups.get(cat):
            continue
        out += [f"## {TITLES[cat]}", ""]
        for r in sorted(groups[cat], key=lambda r: r.date):   # stable: log order within a day
            out.append(f"### {r.title} ({r.id}) [{r.status.upper()}]{' (draft)' if r.draft else ''}")
            for label, value in (("Date", r.date.isoformat()), ("Symptom", r.symptom), ("Root cause", r.root_cause),
                                 ("Fix", r.fix), ("Evidence", r.evidence), ("Checks", ", ".join(r.checks)),
                                 ("Files", ", ".join(r.files)), ("Bugs", ", ".join(map(str, r.bugs)))):
                if value:
                    text = value.replace("\n", "\n  ")
                    out.append(f"- **{label}**: {text}")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
