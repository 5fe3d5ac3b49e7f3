"""`looplm verify | gate | claims | diagnose`: the spec's protocol and knowledge base at work."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

import dsl
from knowledge_base import check_claims, diagnose
from verifier import Target, junit_xml, run
from verifier.gate import gate as run_gate
from verifier.result import StepResult

from .common import EXIT_FAIL, EXIT_USAGE, UsageError, existing, fail, out, user_errors
from .model import load_config

STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}


def load_target(spec_path: Path, config: Optional[Path], ckpt: Optional[Path], device: str) -> Target:
    """Spec problems are usage errors here (exit 2): the protocol cannot even start."""
    from verifier import validate
    text_path = existing(spec_path)
    try:
        spec = dsl.load(text_path)
        validate(spec)
    except dsl.SpecError as e:
        e.locate(text_path.read_text(encoding="utf-8", errors="replace"), str(spec_path))
        raise fail(str(e), EXIT_USAGE) from None
    if ckpt is not None:
        existing(ckpt)
    return Target(spec=spec, config=load_config(config, None, None), checkpoint=ckpt, device=device)


def print_step(s: StepResult) -> None:
    out.print(f"{STYLE[s.status]}  {s.seconds:6.2f}s  {s.id:<24} {s.message}", markup=True)


def report_table(report) -> Table:
    t = Table(title=f"looplm verify: {report.spec}")
    for col in ("step", "check", "status", "s", "message"):
        t.add_column(col, overflow="fold")
    for s in report.steps:
        t.add_row(s.id, s.check, STYLE[s.status], f"{s.seconds:.2f}", s.message)
    return t


def verify(spec: Path = typer.Option(dsl.BUNDLED, help="Spec whose protocol to run."),
           only: Optional[str] = typer.Option(None, help="Comma-separated step ids to run (others are left out)."),
           config: Optional[Path] = typer.Option(None, help="Config (JSON overrides) of the run being verified."),
           ckpt: Optional[Path] = typer.Option(None, help="A trained checkpoint (for format parity)."),
           device: str = typer.Option("cpu", help="cpu | cuda (kernels run on cuTile there)."),
           json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
           junit: Optional[Path] = typer.Option(None, help="Write the report as JUnit XML.")) -> None:
    """Run the spec's verification protocol. Exit 0: every required step passed; 1: a step failed; 2: spec or usage error."""
    with user_errors():
        target = load_target(spec, config, ckpt, device)
        try:
            report = run(target, spec_name=str(spec), only=only.split(",") if only else None)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        out.print(report_table(report))
        for s in report.failures():
            out.print(f"[bold red]{s.id}[/]: {s.message}\n  fix: {s.on_fail or '-'}")
            if s.evidence:
                out.print("  " + s.evidence.replace("\n", "\n  "), markup=False)
        n = {k: sum(s.status == k for s in report.steps) for k in ("pass", "fail", "skip")}
        out.print(f"{'PASSED' if report.passed else 'FAILED'}: {n['pass']} passed, {n['fail']} failed, "
                  f"{n['skip']} skipped in {sum(s.seconds for s in report.steps):.1f} s")
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(report.model_dump_json(indent=2) + "\n")
        if junit:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(junit_xml(report) + "\n")
    if not report.passed:
        raise typer.Exit(EXIT_FAIL)


def gate(command: List[str] = typer.Argument(..., help="The command to run if the gate passes (after --)."),
         spec: Path = typer.Option(dsl.BUNDLED), config: Optional[Path] = typer.Option(None),
         rca_path: Optional[Path] = typer.Option(None, "--rca", help="RCA store (default: $LOOPLM_RCA or rca/records.jsonl).")) -> None:
    """Run the spec's gating steps; run COMMAND only if they all pass (its exit code is returned)."""
    with user_errors():
        target = load_target(spec, config, None, "cpu")
        verdict = run_gate(target, spec_name=str(spec), rca_path=rca_path, on_step=print_step)
        out.print(verdict.summary())
        if not verdict.passed:
            raise typer.Exit(EXIT_FAIL)
        try:
            code = subprocess.run(command).returncode
        except FileNotFoundError:
            raise UsageError(f"command not found: {command[0]}") from None
    raise typer.Exit(code)


def claims(spec: Path = typer.Option(dsl.BUNDLED)) -> None:
    """Every knowledge-base claim with its status: holds, contradicted, missing evidence, unverified."""
    with user_errors():
        results = check_claims(dsl.load(existing(spec)))
        t = Table(title="knowledge-base claims")
        for col in ("fact", "status", "claim", "evidence"):
            t.add_column(col, overflow="fold")
        colour = {"holds": "green", "contradicted": "bold red", "missing_evidence": "red", "unverified": "yellow"}
        for r in results:
            t.add_row(r.fact, f"[{colour[r.status]}]{r.status}[/]", r.claim, r.detail)
        out.print(t)
    if any(r.status in ("contradicted", "missing_evidence") for r in results):
        raise typer.Exit(EXIT_FAIL)


def diagnose_cmd(path: Path = typer.Argument(..., help="A run directory, trace.jsonl, eval JSON or trace JSON."),
                 spec: Path = typer.Option(dsl.BUNDLED)) -> None:
    """Match the knowledge base's symptom signatures against a run's files. Exit 1 if any matches."""
    with user_errors():
        if not path.exists():
            raise UsageError(f"no such file or directory: {path}")
        try:
            matches, ev = diagnose(dsl.load(existing(spec)), path)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UsageError(f"{path}: unreadable JSON ({e})") from None
        out.print(f"read {len(ev.sources)} file(s): {len(ev.trace)} trace rows, {len(ev.reports)} eval reports, "
                  f"{len(ev.thinking)} thinking traces")
        for m in matches:
            out.print(f"[bold red]{m.symptom}[/] ({m.detector}): {m.evidence}\n  means: {m.meaning}"
                      + (f"\n  try: {m.suggest}" if m.suggest else "")
                      + (f"\n  bugs {list(m.bugs)}; verify steps {list(m.steps)}" if m.bugs or m.steps else ""))
        if not matches:
            out.print("no known symptom matches")
    if matches:
        raise typer.Exit(EXIT_FAIL)


def mutants(only: Optional[str] = typer.Option(None, help="Comma-separated mutant names (default: the whole catalog)."),
            json_out: Optional[Path] = typer.Option(None, "--json", help="Write the outcomes as JSON.")) -> None:
    """Self-test: apply each catalogued bug to a copy of the code and check the protocol catches it. Exit 1 if one escapes."""
    from dataclasses import asdict

    from verifier.mutants import MUTANTS, run_mutant
    with user_errors():
        names = {m.name for m in MUTANTS}
        wanted = set(only.split(",")) if only else names
        unknown = sorted(wanted - names)
        if unknown:
            raise UsageError(f"no mutant named {', '.join(unknown)} (mutants: {', '.join(sorted(names))})")
        t = Table(title="bug catalog as mutants")
        for col in ("mutant", "bug", "must fail", "caught", "failed steps", "s"):
            t.add_column(col, overflow="fold")
        outcomes = []
        for m in (m for m in MUTANTS if m.name in wanted):
            o = run_mutant(m)
            outcomes.append(o)
            out.print(f"{STYLE['pass' if o.caught else 'fail']}  {o.name}: {', '.join(o.failed_steps) or o.message}",
                      markup=True)
            t.add_row(o.name, str(o.bug or "-"), o.expect, "yes" if o.caught else "[bold red]NO[/]",
                      ", ".join(o.failed_steps), f"{o.seconds:.1f}")
        out.print(t)
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    if not all(o.caught for o in outcomes):
        raise typer.Exit(EXIT_FAIL)
