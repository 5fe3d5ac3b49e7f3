"""`looplm diagnose PATH`: run the spec's symptom detectors over a run's files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dsl.model import Spec

from .detectors import DETECTORS, Evidence


@dataclass
class Match:
    symptom: str
    detector: str
    evidence: str
    meaning: str
    suggest: str | None
    bugs: tuple[int, ...]
    steps: tuple[str, ...]


def gather(path: Path) -> Evidence:
    """Read a run directory or one file: trace.jsonl rows, eval reports, thinking traces."""
    ev = Evidence()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.suffix == ".jsonl":
            rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            ev.trace += [r for r in rows if isinstance(r, dict)]
            ev.sources.append(str(f))
        elif f.suffix == ".json":
            data = json.loads(f.read_text())
            if isinstance(data, dict) and "accuracy_by_digits" in data:
                ev.reports.append(data)
            elif isinstance(data, dict) and ("halt_step" in data or "values" in data):
                ev.thinking.append(data)
            else:
                continue
            ev.sources.append(str(f))
    return ev


def diagnose(spec: Spec, path: Path) -> tuple[list[Match], Evidence]:
    ev = gather(path)
    matches = []
    for sym in spec.system.symptoms:
        fn = DETECTORS.get(sym.detector)
        if fn is None:
            raise KeyError(f"symptom '{sym.name}' names unknown detector '{sym.detector}' "
                           f"(known: {', '.join(sorted(DETECTORS))})")
        found = fn(ev, **{k: v for k, v in sym.params.items()})
        if found:
            matches.append(Match(sym.name, sym.detector, found, sym.meaning, sym.suggest, sym.bugs, sym.steps))
    return matches, ev
