"""The one gated-train path: the spec's gate, run against the system the spec names and the
configuration that will be trained, then that system's own training loop.

`looplm train`, `looplm experiment run` and the torchrun entry point (app/train.py) all call
`gated_train`; under torchrun the gate runs on rank 0 and every rank obeys its verdict.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from rca import Record
from verifier.gate import Verdict, gate, record_bypass
from verifier.target import Target, load_target


class GateRefused(Exception):
    """A gating step failed: training did not start."""

    def __init__(self, summary: str, verdict: Optional[Verdict] = None):
        super().__init__(summary)
        self.verdict = verdict


@dataclass
class Trained:
    summary: Mapping[str, Any]
    verdict: Optional[Verdict] = None      # None: the gate was bypassed (and recorded)
    bypass: Optional[Record] = None


def overrides(**values: Any) -> dict[str, Any]:
    """Command-line overrides by spec param name, leaving out the ones not given."""
    return {k: v for k, v in values.items() if v is not None}


def run_gate(target: Target, spec_path: Path, rca: Optional[Path], log: Callable[[str], None],
             on_step=None, world=None) -> Verdict:
    """The gate on rank 0 (all of it when there is no world); every rank gets the verdict."""
    verdict = None
    if world is None or world.is_main:
        verdict = gate(target, spec_name=str(spec_path), rca_path=rca, on_step=on_step)
        log(verdict.summary())
    passed, summary = (verdict.passed, verdict.summary()) if verdict else (None, None)
    if world is not None:
        passed, summary = world.agree((passed, summary))
    if not passed:
        raise GateRefused(summary, verdict)
    return verdict


def gated_train(spec_path: Path, out_dir: Path, *, config: Optional[Path] = None,
                values: Optional[Mapping[str, Any]] = None, resume: bool = False, rca: Optional[Path] = None,
                bypass: Optional[str] = None, command: str = "", log: Callable[[str], None] = print,
                progress=None, on_step=None, world=None) -> Trained:
    """Gate (or record the bypass, with its reason), then the system's `train_run`.
    Raises GateRefused, and whatever the spec, the config or the training refuses."""
    target = load_target(spec_path, config=config, overrides=values or {})
    verdict = record = None
    if bypass is not None:
        if world is None or world.is_main:
            record = record_bypass(bypass, command, rca)
            log(f"gate bypassed ({bypass}); recorded as {record.id}")
    else:
        verdict = run_gate(target, spec_path, rca, log, on_step=on_step, world=world)
    kw = {"dist": world} if world is not None else {}
    summary = target.need("run").train_run(out_dir, resume=resume, progress=progress, **kw)
    return Trained(summary, verdict, record)
