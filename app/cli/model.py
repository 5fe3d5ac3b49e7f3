"""`looplm train | eval | trace`: training through the gate, and the bundled model's evaluation."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import dsl
from app import pipeline
from kernels import dispatch
from looplm import checkpoint
from looplm.config import HaltingConfig
from looplm.data import Problem
from looplm.evaluate import evaluate
from looplm.trace import heatmap, thinking_trace
from looplm.train import pick_device

from .common import UsageError, choice, existing, out, user_errors, writable

TrainDevice = choice("TrainDevice", ("auto", "cpu", "cuda"))
HaltMode = choice("HaltMode", ("fixed", "entropy", "wait", "gate"))
Kind = choice("Kind", ("random", "carry_chain", "decoy", "unequal"))
Format = choice("Format", ("reversed", "normal"))
Backend = choice("Backend", dispatch.BACKENDS)
Scores = choice("Scores", dispatch.SCORES)
PROGRESS = [TextColumn("step {task.completed}/{task.total}"), BarColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.1%}  {task.fields[tps]:,.0f} tok/s"),
            TimeElapsedColumn(), TimeRemainingColumn()]


def train_cmd(config: Optional[Path] = typer.Option(None, help="Config of the run (JSON overrides of the defaults)."),
              out_dir: Path = typer.Option(Path("runs/default"), "--out", help="Writes ckpt.pt and trace.jsonl here."),
              max_iters: Optional[int] = typer.Option(None, min=1), device: Optional[TrainDevice] = typer.Option(None),
              resume: bool = typer.Option(False, help="Continue from OUT/ckpt.pt (an error if there is none)."),
              spec: Path = typer.Option(dsl.BUNDLED, help="Spec whose gate must pass first; it names the system trained."),
              no_gate: bool = typer.Option(False, "--no-gate", help="Skip the gate (needs --reason; recorded)."),
              reason: Optional[str] = typer.Option(None, help="Why the gate is bypassed."),
              rca_path: Optional[Path] = typer.Option(None, "--rca", help="RCA store for drafts and bypasses."),
              nproc: int = typer.Option(1, min=1, help="Processes: >1 runs data-parallel under torchrun.")) -> None:
    """Train the system the spec names (defaults: a tiny LoopLM on 1-4 digit reversed addition, on the CPU), after the spec's gate. Ctrl-C saves a checkpoint."""
    with user_errors():
        if no_gate and not reason:
            raise UsageError("--no-gate needs --reason TEXT (the bypass is recorded)")
        values = pipeline.overrides(max_iters=max_iters, device=device.value if device else None)
        if values.get("device") == "cuda":
            pick_device("cuda")                    # refused before the gate, not after it
        if nproc > 1:
            launch_torchrun(nproc, existing(spec), config and existing(config), out_dir, values, resume, reason if no_gate else None, rca_path)
        bar = _TrainBar()
        try:
            trained = pipeline.gated_train(
                existing(spec), out_dir, config=config and existing(config), values=values, resume=resume,
                rca=rca_path, bypass=reason if no_gate else None, command="looplm train " + " ".join(sys.argv[2:]),
                log=lambda m: out.print(m, markup=False), progress=bar.advance)
        finally:
            bar.stop()
        out.print_json(json.dumps(dict(trained.summary)))


class _TrainBar:
    """The training progress bar, shown from the first step: a refused gate leaves no empty bar."""

    def __init__(self):
        self.bar, self.task = Progress(*PROGRESS, console=out, transient=False), None

    def advance(self, **row) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("train", total=None, loss=float("nan"), acc=0.0, tps=0.0)
        self.bar.update(self.task, completed=row["step"], total=row["total"],
                        **{k: row[f] for k, f in (("loss", "loss"), ("tps", "tokens_per_s"), ("acc", "accuracy"))
                           if f in row})

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def launch_torchrun(nproc: int, spec: Path, config: Optional[Path], out_dir: Path, values: dict, resume: bool,
                    bypass: Optional[str], rca_path: Optional[Path]) -> None:
    """Replace this process with `torchrun --nproc_per_node N -m app.train ...` (gate on rank 0)."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "app.train", "--spec", str(spec), "--out", str(out_dir)]
    for flag, value in (("--config", config), ("--max-iters", values.get("max_iters")),
                        ("--device", values.get("device")), ("--rca", rca_path)):
        if value is not None:
            args += [flag, str(value)]
    args += ["--resume"] * resume + (["--no-gate", "--reason", bypass] if bypass else [])
    os.execv(sys.executable, args)


def parse_digits(digits: str) -> list[int]:
    try:
        values = [int(d) for d in digits.split(",") if d.strip()]
    except ValueError:
        raise UsageError(f"--digits takes comma-separated integers, not {digits!r}") from None
    if not values or min(values) < 1 or max(values) > 100_000:
        raise UsageError("--digits needs digit counts from 1 to 100000")
    return values


def halting_override(ld, halting: Optional[str], threshold: Optional[float]) -> Optional[HaltingConfig]:
    if halting is None and threshold is None:
        return None
    data = ld.config.halting.model_dump()
    if halting is not None:
        data["mode"] = halting
    if threshold is not None:
        data["threshold"] = threshold
        data["mode"] = data["mode"] if data["mode"] != "fixed" else "entropy"
    return HaltingConfig.model_validate(data)


def eval_cmd(ckpt: Path = typer.Option(..., help="Checkpoint to evaluate."),
             digits: str = typer.Option("1,2,3,4", help="Digit counts, comma-separated (both operands that long)."),
             n: int = typer.Option(1000, min=1, max=10_000_000, help="Problems per digit count."),
             seed: int = typer.Option(0), loops: Optional[int] = typer.Option(None, min=1, max=100_000, help="Test-time loop count."),
             halting: Optional[HaltMode] = typer.Option(None), threshold: Optional[float] = typer.Option(None, min=0.0, help="Entropy threshold (nats); implies entropy halting."),
             fmt: Optional[Format] = typer.Option(None, "--format", help="Refused unless it is the checkpoint's."),
             kind: Kind = typer.Option("random"), device: TrainDevice = typer.Option("auto"),
             json_out: Optional[Path] = typer.Option(None, "--json"),
             kernels: Backend = typer.Option("auto", help="Kernel backend for the model's inference path."),
             scores: Optional[Scores] = typer.Option(None, help="Looped-block kernels' attention scores: auto (fp16 "
                                                     "on long rows), matrix (bf16 on a GPU), tf32 or fp16 (default: LOOPLM_SCORES, else auto).")) -> None:
    """Exact-match accuracy by digit count and carry count, and loop steps per token."""
    with user_errors():
        dev = pick_device(device.value)
        ld = checkpoint.load(existing(ckpt), map_location=str(dev))
        policy = halting_override(ld, halting.value if halting else None, threshold)
        precision = scores.value if scores else dispatch.requested_scores()     # a bad LOOPLM_SCORES is refused here
        with dispatch.use(kernels.value), dispatch.scores(precision), \
                Progress(*PROGRESS[:2], TimeElapsedColumn(), console=out, transient=True) as bar:
            task = bar.add_task("eval", total=None)
            report = evaluate(ld.model.to(dev), parse_digits(digits), n, seed=seed, loops=loops, halting=policy,
                              fmt=fmt.value if fmt else None, kind=kind.value, device=dev,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
        report["checkpoint"] = str(ckpt)
        out.print("\n".join(f"{d:>6} digits  {report['accuracy_by_digits'][d]:7.2%}  n={report['n_per_bucket'][d]}  "
                            f"steps/answer token {report['avg_steps_answer_by_digits'][d]:.2f}"
                            for d in report["accuracy_by_digits"]))
        out.print(f"block-token applications saved vs fixed depth: {report['applications_saved']:.1%}")
        if json_out:
            writable(json_out, json.dumps(report, indent=2) + "\n")


def trace_cmd(ckpt: Path = typer.Option(..., help="Checkpoint."),
              problem: str = typer.Option("4821+197", help="An addition, written normally: A+B."),
              loops: Optional[int] = typer.Option(None, min=1, max=10_000), halting: Optional[HaltMode] = typer.Option(None),
              threshold: Optional[float] = typer.Option(None, min=0.0),
              out_dir: Path = typer.Option(Path("runs/trace"), "--out", help="Writes trace.json and trace.png here.")) -> None:
    """Per-token, per-loop entropy and halt step as JSON and a heatmap PNG."""
    with user_errors():
        try:
            a, b = (int(x) for x in problem.replace(" ", "").split("+"))
        except ValueError:
            raise UsageError(f"--problem must look like 123+456, not {problem!r}") from None
        if a < 0 or b < 0 or max(len(str(a)), len(str(b))) > 2000:
            raise UsageError("--problem takes non-negative numbers of at most 2000 digits")
        ld = checkpoint.load(existing(ckpt))
        tr = thinking_trace(ld.model, Problem(a, b), loops=loops,
                            halting=halting_override(ld, halting.value if halting else None, threshold))
        writable(out_dir / "trace.json", json.dumps(tr, indent=1) + "\n")
        png = heatmap(tr, out_dir / "trace.png")
        out.print(f"{tr['prompt']}{tr['answer']}  ({'correct' if tr['correct'] else 'wrong'}); "
                  f"halt steps {tr['halt_step']}\nwrote {out_dir / 'trace.json'} and {png}")
