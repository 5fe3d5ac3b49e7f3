"""`looplm diagnose PATH`: run the spec's symptom detectors over a run's files."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dsl.model import Spec
from rca.store import CorruptLine

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


def _text(f: Path, ev: Evidence) -> str | None:
    try:
        return f.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        ev.corrupt.append(CorruptLine(f, 0, f"unreadable: {e}", ""))
        return None


def _jsonl(f: Path, ev: Evidence) -> None:
    """Trace rows, line by line: a corrupt line is reported by number and the rest still read."""
    text = _text(f, ev)
    if text is None:
        return
    rows = 0
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            ev.corrupt.append(CorruptLine(f, n, f"not JSON: {e.msg}", line))
            continue
        if isinstance(row, dict):
            ev.trace.append(row)
            rows += 1
    if rows:
        ev.sources.append(str(f))


def _json(f: Path, ev: Evidence) -> None:
    text = _text(f, ev)
    if text is None:
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        ev.corrupt.append(CorruptLine(f, e.lineno, f"not JSON: {e.msg}", ""))
        return
    if isinstance(data, dict) and "accuracy_by_digits" in data:
        ev.reports.append(data)
    elif isinstance(data, dict) and ("halt_step" in data or "values" in data):
        ev.thinking.append(data)
    else:
        return
    ev.sources.append(str(f))


def gather(path: Path) -> Evidence:
    """Read a run directory or one file: trace.jsonl rows, eval reports, thinking traces. What
    cannot be read is listed in `corrupt` (file, line, reason), never silently dropped."""
    ev = Evidence()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if f.suffix == ".jsonl":
            _jsonl(f, ev)
        elif f.suffix == ".json":
            _json(f, ev)
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
