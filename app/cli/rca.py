"""`looplm rca add | list | show | render`: the append-only root-cause-analysis log."""
from __future__ import annotations

import typing
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

import rca
from rca.record import Category as RecordCategory
from rca.record import Record

from .common import EXIT_FAIL, UsageError, choice, out, report_corrupt, user_errors, writable

app = typer.Typer(no_args_is_help=True, help="Root-cause-analysis records (append-only JSON lines).")
StoreOpt = typer.Option(None, "--store", help="Store file (default: $LOOPLM_RCA or .looplm/rca.jsonl).")


def _records(store: Optional[Path]) -> list[Record]:
    good, bad = rca.store(store).records()
    report_corrupt(bad)
    return good


Category = choice("Category", typing.get_args(RecordCategory))
Status = choice("Status", ("open", "fixed", "monitored"))


@app.command()
def add(title: str = typer.Option(...), category: Category = typer.Option("other"), symptom: str = typer.Option(""),
        root_cause: str = typer.Option(""), fix: str = typer.Option(""), status: Status = typer.Option("open"),
        evidence: str = typer.Option(""), check: List[str] = typer.Option([], help="Related check (repeatable)."),
        file: List[str] = typer.Option([], help="Related file (repeatable)."),
        bug: List[int] = typer.Option([], help="Bug catalog number (repeatable)."), store: Optional[Path] = StoreOpt) -> None:
    """Append a record."""
    with user_errors():
        rec = Record(title=title, category=category.value, symptom=symptom, root_cause=root_cause, fix=fix, status=status.value,
                     evidence=evidence, checks=check, files=file, bugs=bug)
        rca.store(store).append(rec)
        out.print(f"added {rec.id}")


@app.command("list")
def list_(store: Optional[Path] = StoreOpt, status: Optional[Status] = typer.Option(None)) -> None:
    """One line per record (corrupt lines are reported on stderr with their line numbers)."""
    with user_errors():
        t = Table()
        for col in ("id", "date", "category", "status", "title"):
            t.add_column(col)
        for r in _records(store):
            if status is None or r.status == status.value:
                t.add_row(r.id, r.date.isoformat(), r.category, r.status + (" (draft)" if r.draft else ""), r.title)
        out.print(t)


@app.command()
def show(record_id: str = typer.Argument(...), store: Optional[Path] = StoreOpt) -> None:
    """One record in full."""
    with user_errors():
        found = [r for r in _records(store) if r.id == record_id]
        if not found:
            raise UsageError(f"no record {record_id}")
        out.print_json(found[-1].model_dump_json())


@app.command()
def render(output: Path = typer.Option(Path(".looplm/ROOT.md"), "--out"), store: Optional[Path] = StoreOpt) -> None:
    """Write the log as markdown grouped by category (like the user's root.md)."""
    with user_errors():
        good, bad = rca.store(store).records()
        writable(output, rca.render_markdown(good))
        out.print(f"wrote {output} ({len(good)} records)")
        report_corrupt(bad)
    if bad:
        raise typer.Exit(EXIT_FAIL)
