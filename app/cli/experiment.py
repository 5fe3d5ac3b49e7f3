"""`looplm experiment run FILE...` and `looplm report RESULTS`: experiments end to end."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from app.experiment import Experiment, run
from app.report import collect, write_report

from .common import existing, out, user_errors
from .model import TrainDevice

app = typer.Typer(no_args_is_help=True, help="Experiments declared in JSON files (see app/experiment.py).")


@app.command("run")
def run_cmd(files: List[Path] = typer.Argument(..., help="Experiment files."),
            out_dir: Path = typer.Option(Path("runs"), "--out"),
            max_iters: Optional[int] = typer.Option(None, min=1, help="Override every experiment's train.max_iters."),
            device: Optional[TrainDevice] = typer.Option(None, help="Override train.device."),
            resume: bool = typer.Option(False, help="Reuse finished training and evals already in OUT/<name>/.")) -> None:
    """gate -> train -> eval -> results into OUT/<name>/, for each file in turn."""
    with user_errors():
        experiments = [Experiment.load(existing(f)) for f in files]     # all valid before any runs
        for exp in experiments:
            res = run(exp, out_dir, log=lambda m: out.print(m, markup=False), resume=resume,
                      device=device.value if device else None, max_iters=max_iters)
            out.print(f"{exp.name}: done in {res['seconds']} s -> {out_dir / exp.name / 'results.json'}")


def report(results: Path = typer.Argument(Path("results"), help="Where results JSON, figures and REPORT.md live."),
           runs: Optional[Path] = typer.Option(None, help="Collect these runs into RESULTS first.")) -> None:
    """Write RESULTS/REPORT.md with tables and figures (collecting RUNS first if given)."""
    with user_errors():
        if runs is not None:
            for name, path in collect(runs, results).items():
                out.print(f"wrote {path}")
        existing(results / "length_generalization.json")
        out.print(f"wrote {write_report(results)}")
