"""The gate in front of a training run (or any command): the spec's gating steps must pass.

A failed gating step appends a draft RCA record (symptom = what the check measured, fix =
the step's on_fail) and the gate names both the step and the record. A bypass
(`--no-gate --reason TEXT`) is allowed but never silent: it is recorded too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import rca
from rca import CATEGORY_OF_CHECK, Record

from .result import Report, StepResult
from .runner import run
from .target import Target


@dataclass
class Verdict:
    passed: bool
    report: Report
    records: list[Record] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return f"gate passed: {len(self.report.steps)} gating steps"
        lines = ["gate FAILED: training refused"]
        for s, r in zip(self.report.failures(), self.records):
            lines.append(f"  step '{s.id}' ({s.check}): {s.message}")
            lines.append(f"    fix: {s.on_fail or '-'}   RCA draft: {r.id}")
        return "\n".join(lines)


def draft_record(step: StepResult, spec_name: str) -> Record:
    return Record(title=f"gate failure: {step.id}", category=CATEGORY_OF_CHECK.get(step.check.split(".")[0], "other"),
                  symptom=step.message, root_cause="(draft: not yet analysed)", fix=step.on_fail or "",
                  evidence=(step.evidence or "")[:2000] + (f"\nmeasured: {step.measured}" if step.measured else ""),
                  checks=[step.check], bugs=step.bugs, files=[spec_name], draft=True)


def gate(target: Target, *, spec_name: str = "<spec>", rca_path: Optional[Path] = None,
         on_step: Optional[Callable[[StepResult], None]] = None) -> Verdict:
    report = run(target, spec_name=spec_name, gating=True, on_step=on_step)
    failures = [s for s in report.failures()]
    records = [rca.store(rca_path).append(draft_record(s, spec_name)) for s in failures]
    report.rca = [r.id for r in records]
    return Verdict(not failures, report, records)


def record_bypass(reason: str, command: str, rca_path: Optional[Path] = None) -> Record:
    return rca.store(rca_path).append(Record(
        title="gate bypassed", category="gate_bypass", symptom=f"ran without the gate: {command}",
        root_cause=reason, status="monitored", evidence=f"command: {command}"))
