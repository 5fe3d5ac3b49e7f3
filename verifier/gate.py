"""The gate in front of a training run (or any command): the spec's gating steps must pass.

A failed gating step appends a draft RCA record (symptom = what the check measured, fix =
the step's on_fail) and the gate names both the step and the record. A bypass
(`--no-gate --reason TEXT`) is allowed but never silent: it is recorded too.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import rca
from rca import Record

from .result import Report, StepResult
from .runner import run
from .target import Target

# a check's family (its name's prefix) -> the RCA category a failure of it most likely belongs to
CATEGORY_OF_CHECK = {"kernel": "kernel", "data": "data", "eval": "evaluation", "checkpoint": "checkpoint",
                     "model": "learning_dynamics", "train": "learning_dynamics", "spec": "architecture",
                     "kb": "evaluation"}


@dataclass
class Verdict:
    passed: bool
    report: Report
    records: list[Record] = field(default_factory=list)
    check_size: str = ""          # what the cheap checks shrank of the configuration, and why

    def summary(self) -> str:
        n = self.report.counts()
        size = f"\n  checks ran at {self.check_size}" if self.check_size else ""
        if self.passed:
            return (f"gate passed: {n['pass']} of {len(self.report.steps)} gating steps ran and passed"
                    + (f", {n['skip']} skipped" if n["skip"] else "") + size)
        lines = ["gate FAILED: training refused" + (f" ({self.report.summary()})" if not n["fail"] else "")]
        for s, r in zip(self.report.failures(), self.records):
            lines.append(f"  step '{s.id}' ({s.check}): {s.message}")
            lines.append(f"    fix: {s.on_fail or '-'}   RCA draft: {r.id}")
        return "\n".join(lines)


def draft_record(step: StepResult, spec_name: str) -> Record:
    return Record(title=f"gate failure: {step.id}", category=CATEGORY_OF_CHECK.get(step.check.split(".")[0], "other"),
                  symptom=step.message, root_cause="(draft: not yet analysed)", fix=step.on_fail or "",
                  evidence=(step.evidence or "")[:2000] + (f"\nmeasured: {step.measured}" if step.measured else ""),
                  checks=[step.check], bugs=step.bugs, files=[spec_name], draft=True)


def drafts(report: Report, spec_name: str, rca_path: Optional[Path]) -> list[Record]:
    """A draft RCA record for every failed step of the report, appended to the store."""
    return [rca.store(rca_path).append(draft_record(s, spec_name)) for s in report.failures()]


def _hung_drafts(report: Report, spec_name: str, rca_path: Optional[Path]) -> None:
    """A gating step blocked outside Python ends the process (`runner.time_limit`): the failures
    so far, the hung step's among them, still get their drafts, and the verdict goes to stderr."""
    print(Verdict(False, report, drafts(report, spec_name, rca_path)).summary(), file=sys.stderr, flush=True)


def gate(target: Target, *, spec_name: str = "<spec>", rca_path: Optional[Path] = None,
         on_step: Optional[Callable[[StepResult], None]] = None) -> Verdict:
    report = run(target, spec_name=spec_name, gating=True, on_step=on_step,
                 on_hang=lambda so_far: _hung_drafts(so_far, spec_name, rca_path))
    records = drafts(report, spec_name, rca_path)
    report.rca = [r.id for r in records]
    try:
        size = target.design.check_size
    except Exception:   # a system without a design declaration: nothing to say about sizes
        size = ""
    return Verdict(report.passed, report, records, size)


def record_bypass(reason: str, command: str, rca_path: Optional[Path] = None) -> Record:
    return rca.store(rca_path).append(Record(
        title="gate bypassed", category="gate_bypass", symptom=f"ran without the gate: {command}",
        root_cause=reason, status="monitored", evidence=f"command: {command}"))
