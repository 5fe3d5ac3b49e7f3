"""`looplm train | eval | trace`: the model from the command line."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

import dsl
from looplm import checkpoint
from looplm.config import Config, HaltingConfig
from looplm.data import Problem
from looplm.evaluate import FormatMismatch, evaluate
from looplm.trace import heatmap, thinking_trace
from looplm.train import pick_device, train as run_training
from verifier import Target
from verifier.gate import gate as run_gate, record_bypass

from .common import EXIT_FAIL, UsageError, existing, fail, out, user_errors


def load_config(config: Optional[Path], max_iters: Optional[int], device: Optional[str]) -> Config:
    cfg = Config.load(existing(config)) if config else Config()
    over = {k: v for k, v in (("max_iters", max_iters), ("device", device)) if v is not None}
    return cfg.override(train=over) if over else cfg


def train_with_progress(cfg: Config, out_dir: Path, resume: bool) -> dict:
    """Run training under a rich progress bar (loss, held-out accuracy, tokens/s, ETA)."""
    columns = [TextColumn("step {task.completed}/{task.total}"), BarColumn(),
               TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.1%}  {task.fields[tps]:,.0f} tok/s"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("train", total=cfg.train.max_iters, loss=float("nan"), acc=0.0, tps=0.0)
        summary = run_training(
            cfg, out_dir, resume=resume,
            on_step=lambda s, loss, tps: bar.update(task, completed=s, loss=loss, tps=tps),
            on_eval=lambda row: bar.update(task, acc=row["val_accuracy"]))
    return summary


def train_cmd(config: Optional[Path] = typer.Option(None, help="JSON overrides of the default config."),
              out_dir: Path = typer.Option(Path("runs/default"), "--out", help="Writes ckpt.pt and trace.jsonl here."),
              max_iters: Optional[int] = typer.Option(None, min=1), device: Optional[str] = typer.Option(None),
              resume: bool = typer.Option(False, help="Continue from OUT/ckpt.pt."),
              spec: Path = typer.Option(dsl.BUNDLED, help="Spec whose gating steps must pass first."),
              no_gate: bool = typer.Option(False, "--no-gate", help="Skip the gate (needs --reason; recorded)."),
              reason: Optional[str] = typer.Option(None, help="Why the gate is bypassed."),
              rca_path: Optional[Path] = typer.Option(None, "--rca", help="RCA store for drafts and bypasses."),
              nproc: int = typer.Option(1, min=1, help="Processes: >1 runs data-parallel under torchrun.")) -> None:
    """Train a LoopLM (defaults: a tiny model on 1-4 digit reversed addition, on the CPU), after the spec's gate."""
    with user_errors():
        if no_gate and not reason:
            raise UsageError("--no-gate needs --reason TEXT (the bypass is recorded)")
        cfg = load_config(config, max_iters, device)
        if nproc > 1:
            launch_torchrun(nproc, config, out_dir, max_iters, device, resume, spec, no_gate, reason, rca_path)
        if no_gate:
            rec = record_bypass(reason, "looplm train " + " ".join(sys.argv[2:]), rca_path)
            out.print(f"gate bypassed ({reason}); recorded as {rec.id}")
        else:
            verdict = run_gate(Target(spec=dsl.load(existing(spec)), config=cfg), spec_name=str(spec), rca_path=rca_path)
            out.print(verdict.summary(), markup=False)
            if not verdict.passed:
                raise typer.Exit(EXIT_FAIL)
        summary = train_with_progress(cfg, out_dir, resume)
        out.print_json(json.dumps(summary))


def launch_torchrun(nproc, config, out_dir, max_iters, device, resume, spec, no_gate, reason, rca_path) -> None:
    """Replace this process with `torchrun --nproc_per_node N -m looplm.train ...` (gate on rank 0)."""
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "looplm.train", "--out", str(out_dir)]
    for flag, value in (("--config", config), ("--max-iters", max_iters), ("--device", device), ("--rca", rca_path)):
        if value is not None:
            args += [flag, str(value)]
    args += ["--resume"] * resume + (["--no-gate", "--reason", reason] if no_gate else ["--gate", str(spec)])
    os.execv(sys.executable, args)


def parse_digits(digits: str) -> list[int]:
    try:
        values = [int(d) for d in digits.split(",") if d.strip()]
    except ValueError:
        raise UsageError(f"--digits takes comma-separated integers, not {digits!r}") from None
    if not values or min(values) < 1:
        raise UsageError("--digits needs at least one digit count >= 1")
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
             n: int = typer.Option(1000, min=1, help="Problems per digit count."),
             seed: int = typer.Option(0), loops: Optional[int] = typer.Option(None, min=1, help="Test-time loop count."),
             halting: Optional[str] = typer.Option(None, help="fixed | entropy | wait | gate"),
             threshold: Optional[float] = typer.Option(None, help="Entropy threshold (nats); implies entropy halting."),
             fmt: Optional[str] = typer.Option(None, "--format", help="Refused unless it is the checkpoint's."),
             kind: str = typer.Option("random", help="random | carry_chain | decoy | unequal"),
             device: str = typer.Option("auto"), json_out: Optional[Path] = typer.Option(None, "--json"),
             kernels: Optional[str] = typer.Option(None, help="reference | cutile (sets LOOPLM_KERNELS)")) -> None:
    """Exact-match accuracy by digit count and carry count, and loop steps per token."""
    import os
    with user_errors():
        if kind not in ("random", "carry_chain", "decoy", "unequal"):
            raise UsageError(f"--kind must be random, carry_chain, decoy or unequal, not {kind!r}")
        if kernels:
            os.environ["LOOPLM_KERNELS"] = kernels
        dev = pick_device(device)
        ld = checkpoint.load(existing(ckpt), map_location=str(dev))
        policy = halting_override(ld, halting, threshold)
        try:
            report = evaluate(ld.model.to(dev), parse_digits(digits), n, seed=seed, loops=loops, halting=policy,
                              fmt=fmt, kind=kind, device=dev)
        except FormatMismatch as e:
            raise fail(f"error: {e}", EXIT_FAIL) from None
        report["checkpoint"] = str(ckpt)
        rows = [f"{d:>6} digits  {report['accuracy_by_digits'][d]:7.2%}  n={report['n_per_bucket'][d]}  "
                f"steps/answer token {report['avg_steps_answer_by_digits'][d]:.2f}" for d in report["accuracy_by_digits"]]
        out.print("\n".join(rows))
        out.print(f"block-token applications saved vs fixed depth: {report['applications_saved']:.1%}")
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report, indent=2) + "\n")


def trace_cmd(ckpt: Path = typer.Option(..., help="Checkpoint."),
              problem: str = typer.Option("4821+197", help="An addition, written normally: A+B."),
              loops: Optional[int] = typer.Option(None, min=1), halting: Optional[str] = typer.Option(None),
              threshold: Optional[float] = typer.Option(None),
              out_dir: Path = typer.Option(Path("runs/trace"), "--out", help="Writes trace.json and trace.png here.")) -> None:
    """Per-token, per-loop entropy and halt step as JSON and a heatmap PNG."""
    with user_errors():
        try:
            a, b = (int(x) for x in problem.replace(" ", "").split("+"))
        except ValueError:
            raise UsageError(f"--problem must look like 123+456, not {problem!r}") from None
        ld = checkpoint.load(existing(ckpt))
        tr = thinking_trace(ld.model, Problem(a, b), loops=loops, halting=halting_override(ld, halting, threshold))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "trace.json").write_text(json.dumps(tr, indent=1) + "\n")
        png = heatmap(tr, out_dir / "trace.png")
        out.print(f"{tr['prompt']}{tr['answer']}  ({'correct' if tr['correct'] else 'wrong'}); "
                  f"halt steps {tr['halt_step']}\nwrote {out_dir / 'trace.json'} and {png}")
