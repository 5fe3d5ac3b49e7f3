"""`looplm verify | gate | claims | diagnose | mutants`: the spec's protocol and knowledge base."""
from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

import dsl
from knowledge_base import check_claims, diagnose
from verifier import junit_xml, run
from verifier.gate import gate as run_gate
from verifier.mutants import catalog_for, load_catalog, run_mutant
from verifier.result import StepResult
from verifier.target import DEVICES, load_target

from .common import EXIT_FAIL, UsageError, choice, existing, fail, out, report_corrupt, user_errors, writable

STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}
Device = choice("Device", DEVICES)
SpecOpt = typer.Option(dsl.BUNDLED, help="Spec whose protocol to run (it names the implementation it checks).")


def print_step(s: StepResult) -> None:
    margin = "" if s.margin is None else f"  margin {s.margin:.3g}x" if s.margin != float("inf") else "  margin inf"
    out.print(f"{STYLE[s.status]}  {s.seconds:6.2f}s  {s.id:<24} {s.message}{margin}", markup=True)


def report_table(report) -> Table:
    t = Table(title=f"looplm verify: {report.spec} -> {report.system} (kernels on {report.kernels_on})")
    for col in ("step", "check", "status", "s", "margin", "message"):
        t.add_column(col, overflow="fold")
    for s in report.steps:
        margin = "-" if s.margin is None else ("inf" if s.margin == float("inf") else f"{s.margin:.3g}x")
        t.add_row(s.id, s.check, STYLE[s.status], f"{s.seconds:.2f}", margin, s.message)
    return t


def show_and_save(report, json_out: Optional[Path], junit: Optional[Path]) -> None:
    """The report's table, its failures with what was expected and the fix, its summary; written
    as JSON and JUnit where asked."""
    out.print(report_table(report))
    for s in report.failures():
        out.print(f"[bold red]{s.id}[/]: {s.message}\n  expected: {s.expect or '-'}\n  fix: {s.on_fail or '-'}")
        if s.evidence:
            out.print("  " + s.evidence.replace("\n", "\n  "), markup=False)
    out.print(report.summary(), markup=False)
    if json_out:
        writable(json_out, report.model_dump_json(indent=2) + "\n")
    if junit:
        writable(junit, junit_xml(report) + "\n")


def verify(spec: Path = SpecOpt,
           only: Optional[str] = typer.Option(None, help="Comma-separated step ids to run (others are left out)."),
           config: Optional[Path] = typer.Option(None, help="Config of the run being verified (passed to the implementation)."),
           ckpt: Optional[Path] = typer.Option(None, help="A trained checkpoint (format parity, generation parity)."),
           device: Device = typer.Option("cpu", help="Where kernel steps run: cpu (the emulator) or cuda (cuTile; refused without a GPU)."),
           json_out: Optional[Path] = typer.Option(None, "--json", help="Write the report as JSON."),
           junit: Optional[Path] = typer.Option(None, help="Write the report as JUnit XML."),
           fail_fast: bool = typer.Option(False, "--fail-fast", help="Skip the steps after the first required failure.")) -> None:
    """Run the spec's verification protocol against the code it names. Exit 0: every required step passed; 1: a step failed or the spec is invalid; 2: bad input."""
    with user_errors():
        target = load_target(existing(spec), config=config and existing(config),
                             checkpoint=ckpt and existing(ckpt), device=device.value)
        try:     # a step blocked outside Python ends the process: what ran before it is still shown and saved
            report = run(target, spec_name=str(spec), only=only.split(",") if only else None, fail_fast=fail_fast,
                         on_hang=partial(show_and_save, json_out=json_out, junit=junit))
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        show_and_save(report, json_out, junit)
    if not report.passed:
        raise typer.Exit(EXIT_FAIL)


def gate(command: List[str] = typer.Argument(..., help="The command to run if the gate passes (after --)."),
         spec: Path = SpecOpt, config: Optional[Path] = typer.Option(None, help="Config of the run CMD will train."),
         rca_path: Optional[Path] = typer.Option(None, "--rca", help="RCA store (default: $LOOPLM_RCA or .looplm/rca.jsonl).")) -> None:
    """Run the spec's gating steps against the system it names; run COMMAND only if they all pass (its exit code is returned)."""
    with user_errors():
        target = load_target(existing(spec), config=config and existing(config))
        verdict = run_gate(target, spec_name=str(spec), rca_path=rca_path, on_step=print_step)
        out.print(verdict.summary(), markup=False)
        if not verdict.passed:
            raise typer.Exit(EXIT_FAIL)
        try:
            code = subprocess.run(command).returncode
        except (FileNotFoundError, PermissionError) as e:
            raise UsageError(f"cannot run {command[0]}: {e.strerror}") from None
    raise typer.Exit(code)


def claims(spec: Path = SpecOpt) -> None:
    """Every knowledge-base claim with its status: holds, contradicted, missing evidence, unverified (evidence paths are relative to the spec file)."""
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
                 spec: Path = SpecOpt) -> None:
    """Match the knowledge base's symptom signatures against a run's files. Exit 1 if any matches; 2 if there is nothing readable."""
    with user_errors():
        if not path.exists():
            raise UsageError(f"no such file or directory: {path}")
        matches, ev = diagnose(dsl.load(existing(spec)), path)
        report_corrupt(ev.corrupt)
        if not ev.sources:
            raise UsageError(f"{path}: nothing to read (no trace.jsonl, eval or trace JSON"
                             f"{'; ' + str(len(ev.corrupt)) + ' corrupt line(s)' if ev.corrupt else ''})")
        out.print(f"read {len(ev.sources)} file(s): {len(ev.trace)} trace rows, {len(ev.reports)} eval reports, "
                  f"{len(ev.thinking)} thinking traces" + (f"; {len(ev.corrupt)} corrupt line(s) skipped" if ev.corrupt else ""))
        for m in matches:
            out.print(f"[bold red]{m.symptom}[/] ({m.detector}): {m.evidence}\n  means: {m.meaning}"
                      + (f"\n  try: {m.suggest}" if m.suggest else "")
                      + (f"\n  bugs {list(m.bugs)}; verify steps {list(m.steps)}" if m.bugs or m.steps else ""))
        if not matches:
            out.print("no known symptom matches")
    if matches:
        raise typer.Exit(EXIT_FAIL)


def mutants(spec: Path = SpecOpt,
            only: Optional[str] = typer.Option(None, help="Comma-separated mutant names (default: the whole catalog)."),
            json_out: Optional[Path] = typer.Option(None, "--json", help="Write the outcomes as JSON.")) -> None:
    """Self-test: apply each bug of SPEC.mutants.toml to a copy of the code and check the protocol catches it. Exit 1 if one escapes."""
    with user_errors():
        cat = load_catalog(existing(catalog_for(existing(spec))))
        try:
            chosen = cat.named(set(only.split(",")) if only else None)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        t = Table(title=f"bug catalog as mutants ({cat.path.name})")
        for col in ("mutant", "bug", "must fail", "caught", "failed steps", "s"):
            t.add_column(col, overflow="fold")
        outcomes = []
        for m in chosen:
            o = run_mutant(cat, m)
            outcomes.append(o)
            out.print(f"{STYLE['pass' if o.caught else 'fail']}  {o.name}: {', '.join(o.failed_steps) or o.message}",
                      markup=True)
            t.add_row(o.name, str(o.bug or "-"), o.expect, "yes" if o.caught else "[bold red]NO[/]",
                      ", ".join(o.failed_steps), f"{o.seconds:.1f}")
        out.print(t)
        if json_out:
            writable(json_out, json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    if not all(o.caught for o in outcomes):
        raise fail(f"{sum(not o.caught for o in outcomes)} of {len(outcomes)} mutants escaped", EXIT_FAIL)
