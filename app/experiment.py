"""Experiments declared in a JSON file, run end to end: gate -> train -> eval -> report.

    {
      "name": "looplm_reversed",                      # runs/<name>/
      "description": "the headline model",
      "config": {"model": {"n_embd": 128}, "train": {"max_iters": 2000}},   # overrides of Config()
      "evals": [                                       # each: digits, n, and optional
        {"name": "random", "digits": [5, 8, 100], "n": 1000},
        {"name": "unequal", "digits": [8, 32], "n": 500, "kind": "unequal"},   # kind: random |
        {"name": "loops", "digits": [8], "n": 500, "loops": [4, 12, 24]},      # carry_chain | decoy
        {"name": "scaled", "digits": [8, 32], "n": 500, "loops": "digits+8"},  # loops from digits
        {"name": "halting", "digits": [8], "n": 500, "thresholds": [0.5, 0.1], "mode": "entropy"}
      ]
    }

Writes runs/<name>/: experiment.json, config.json, gate.json (and rca.jsonl if the gate drafts
any), trace.jsonl, ckpt.pt, eval_<name>.json per eval, results.json (everything in one place);
each file through a temporary file and a rename, so none is ever half-written.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Literal, Optional, Union

import torch
from pydantic import BaseModel, ConfigDict, Field

import dsl
from kernels import dispatch
from looplm import checkpoint
from looplm.config import Config, HaltingConfig
from looplm.evaluate import evaluate

from . import pipeline
from .files import write_atomic


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    digits: list[int] = Field(min_length=1)
    n: int = Field(ge=1)
    kind: Literal["random", "carry_chain", "decoy", "unequal"] = "random"
    loops: Union[int, list[int], str, None] = None     # "digits+8", "2*digits"
    thresholds: Optional[list[float]] = None
    mode: Literal["entropy", "wait", "gate"] = "entropy"
    seed: int = 0


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    config: dict[str, Any] = {}
    evals: list[EvalSpec] = []
    gate: bool = True
    headline: bool = False                 # its bf16 checkpoint is committed (results/checkpoints/)
    ablation_of: Optional[str] = None      # the run this one changes one field of
    seed_of: Optional[str] = None          # the run this one repeats with another train.seed

    def role(self) -> dict:
        return {"headline": self.headline, "ablation_of": self.ablation_of, "seed_of": self.seed_of}

    @classmethod
    def load(cls, path: str | Path) -> "Experiment":
        return cls.model_validate(json.loads(Path(path).read_text()))

    def resolved(self) -> Config:
        return Config().override(**self.config) if self.config else Config()


_LOOP_EXPR = re.compile(r"^\s*(?:(\d+)\s*\*\s*)?digits\s*(?:\+\s*(\d+))?\s*$")


def loops_for(spec: Union[int, str, None], digits: int) -> Optional[int]:
    """A loop count, or one computed from the digit count ("digits+8", "2*digits+4")."""
    if spec is None or isinstance(spec, int):
        return spec
    m = _LOOP_EXPR.match(spec)
    if not m:
        raise ValueError(f"loops must be an int, a list, or like 'digits+8' / '2*digits'; got {spec!r}")
    return int(m.group(1) or 1) * digits + int(m.group(2) or 0)


def run_eval(model, e: EvalSpec, device) -> Union[dict, list[dict]]:
    """One eval spec -> a report, or a list of reports for a sweep (loops or thresholds)."""
    base = model.config.halting
    kw = dict(seed=e.seed, kind=e.kind, device=device, token_budget=64_000_000 if str(device) != "cpu" else 4_000_000)
    if e.thresholds is not None:
        return [dict(evaluate(model, e.digits, e.n, loops=e.loops if isinstance(e.loops, int) else None,
                              halting=HaltingConfig(**{**base.model_dump(), "mode": e.mode, "threshold": t}), **kw),
                     threshold=t) for t in e.thresholds]
    if isinstance(e.loops, list):
        return [dict(evaluate(model, e.digits, e.n, loops=L, **kw), loops=L) for L in e.loops]
    if isinstance(e.loops, str):   # a loop count per digit count: one evaluation per length
        reports = [evaluate(model, [d], e.n, loops=loops_for(e.loops, d), **kw) for d in e.digits]
        merged = {k: {} for k in ("accuracy_by_digits", "n_per_bucket", "avg_steps_answer_by_digits")}
        for d, r in zip(e.digits, reports):
            for k in merged:
                merged[k].update(r[k])
        return {**reports[-1], **merged, "loops_by_digits": {str(d): loops_for(e.loops, d) for d in e.digits},
                "loops": e.loops}
    return evaluate(model, e.digits, e.n, loops=e.loops, **kw)


def run(exp: Experiment, out_root: Path = Path("runs"), *, spec_path: Optional[Path] = None,
        log=print, resume: bool = False, device: Optional[str] = None, max_iters: Optional[int] = None) -> dict:
    """Run one experiment; returns (and writes) its results. Raises GateRefused on a failed gate.
    With `resume`, a run whose training finished (train_summary.json, or a trace and checkpoint
    left by an interrupted run) is not trained again, and evals already written are reused;
    `device` and `max_iters` override the experiment's config (and `device` where evals run)."""
    out = out_root / exp.name
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "experiment.json", exp.model_dump_json(indent=2) + "\n")
    t0 = time.perf_counter()
    summary = _finished_training(out) if resume else None
    if summary is None:
        summary = _train(exp, out, spec_path, log, pipeline.overrides(device=device, max_iters=max_iters))
    else:
        log(f"[{exp.name}] resuming: training already done ({summary['steps']} steps)")
    evals = _evaluate(exp, out, device or summary["device"], resume, log)
    results = {"name": exp.name, "description": exp.description, "experiment": exp.role(),
               "config": exp.resolved().with_params(pipeline.overrides(device=device, max_iters=max_iters))
               .model_dump(mode="json"), "train": summary, "evals": evals,
               "checkpoint": str(out / "ckpt_bf16.pt"), "seconds": round(time.perf_counter() - t0, 1)}
    write_atomic(out / "results.json", json.dumps(results, indent=1) + "\n")
    return results


def _train(exp: Experiment, out: Path, spec_path: Optional[Path], log, values: dict) -> dict:
    """Gate, then train through the one gated-train path; the bf16 copy is what gets evaluated."""
    config = out / "config.json"
    write_atomic(config, json.dumps(exp.config, indent=1) + "\n")
    trained = pipeline.gated_train(spec_path or dsl.BUNDLED, out, config=config, values=values,
                                   rca=out / "rca.jsonl", bypass=None if exp.gate else "experiment declares gate: false",
                                   command=f"looplm experiment run ({exp.name})", log=log,
                                   progress=lambda **row: "accuracy" in row and log(json.dumps(row)))
    if trained.verdict is not None:
        write_atomic(out / "gate.json", trained.verdict.report.model_dump_json(indent=2) + "\n")
    summary = dict(trained.summary)
    write_atomic(out / "train_summary.json", json.dumps(summary, indent=1) + "\n")
    log(f"[{exp.name}] trained: {json.dumps(summary)}")
    return summary


def _evaluate(exp: Experiment, out: Path, dev, resume: bool, log) -> dict:
    """Every eval of the experiment on the bf16 weights, through the verified PyTorch reference
    path, so that `looplm eval` of the committed checkpoint on a CPU reproduces the numbers."""
    if not (resume and (out / "ckpt_bf16.pt").exists()):
        ld = checkpoint.load(out / "ckpt.pt")
        checkpoint.save(out / "ckpt_bf16.pt", ld.model, step=ld.meta["step"] or 0, dtype=torch.bfloat16)
    model = checkpoint.load(out / "ckpt_bf16.pt").model.to(dev).eval()
    evals = {}
    with dispatch.use("reference"):
        for e in exp.evals:
            t, done = time.perf_counter(), out / f"eval_{e.name}.json"
            if resume and done.exists():
                evals[e.name] = json.loads(done.read_text())
                continue
            evals[e.name] = run_eval(model, e, dev)
            write_atomic(done, json.dumps(evals[e.name], indent=1) + "\n")
            acc = (evals[e.name].get("accuracy_by_digits") if isinstance(evals[e.name], dict)
                   else [r["accuracy_by_digits"] for r in evals[e.name]])
            log(f"[{exp.name}] eval {e.name} ({time.perf_counter() - t:.0f} s): {json.dumps(acc)}")
    return evals


def _finished_training(out: Path) -> Optional[dict]:
    """The training summary of a run that finished training, else None."""
    if (out / "train_summary.json").exists():
        return json.loads((out / "train_summary.json").read_text())
    trace, ckpt = out / "trace.jsonl", out / "ckpt.pt"
    if not (trace.exists() and ckpt.exists()):
        return None
    # an interrupted run from before train_summary.json existed: rebuild what the trace holds
    last = json.loads(trace.read_text().splitlines()[-1])
    ld = checkpoint.load(ckpt)
    return {"steps": last["step"], "train_loss": last["train_loss"], "val_loss": last["val_loss"],
            "val_accuracy": last["val_accuracy"], "time_s": last["time_s"], "tokens_per_s": last["tokens_per_s"],
            "params": ld.model.num_params(), "device": "cpu", "rebuilt_from_trace": True,
            "checkpoint": str(ckpt)}
