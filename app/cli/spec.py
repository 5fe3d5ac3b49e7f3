"""`looplm spec check|show|fmt|schema`: the spec language from the command line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

import typer

import dsl
from dsl.render import render
from verifier import validate_spec

from .common import EXIT_FAIL, err, existing, out, user_errors

app = typer.Typer(no_args_is_help=True, help="Check, show, format and describe spec files.")


@app.command()
def check(paths: List[Path] = typer.Argument(..., help="Spec files to validate.")) -> None:
    """Validate spec files as `looplm verify` loads them (syntax, types, cross-references, check names
    and params, the implementation and kernels they bind): exit 0 if all are valid, 1 with FILE:LINE:COL if not."""
    bad = 0
    for path in paths:
        with user_errors():
            existing(path)
        try:
            spec = validate_spec(path)
        except dsl.SpecError as e:
            err.print(str(e), markup=False)
            bad += 1
            continue
        s = spec.system
        out.print(f"{path}: ok (system {s.name} -> {s.implementation}: {len(s.params)} params, {len(s.steps)} steps, "
                  f"{len(s.kernels)} kernels, {len(s.rules)} rules)")
    if bad:
        raise typer.Exit(EXIT_FAIL)


@app.command()
def show(path: Path = typer.Argument(dsl.BUNDLED, help="Spec file (default: the bundled spec).")) -> None:
    """Print the spec in canonical form, highlighted."""
    with user_errors():
        out.print(render(dsl.load(existing(path))))


@app.command()
def fmt(paths: List[Path] = typer.Argument(..., help="Spec files to format in place."),
        check: bool = typer.Option(False, "--check", help="Change nothing; exit 1 if a file would change.")) -> None:
    """Rewrite spec files in canonical form (comments kept)."""
    changed = 0
    with user_errors():
        for path in paths:
            spec = dsl.load(existing(path))
            if dsl.dumps(spec) == path.read_text(encoding="utf-8"):
                continue
            changed += 1
            if check:
                out.print(f"would reformat {path}")
            else:
                dsl.dump(spec, path)
                out.print(f"reformatted {path}")
    if check and changed:
        raise typer.Exit(EXIT_FAIL)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the typed spec model."""
    out.print_json(json.dumps(dsl.Spec.model_json_schema()))
