"""`looplm init PACKAGE`: scaffold an adapter and a spec for your own looped model."""
from __future__ import annotations

from pathlib import Path

import typer

from app.scaffold import scaffold

from .common import UsageError, out, user_errors


def init(package: str = typer.Argument(..., help="Your model's importable package or module (e.g. mymodel)."),
         out_dir: Path = typer.Option(Path("."), "--out", help="Where to write the adapter and the spec."),
         force: bool = typer.Option(False, help="Overwrite existing files.")) -> None:
    """Write PACKAGE_system.py (the contract's methods, each raising 'not provided' until filled in) and PACKAGE.dsl (a spec binding it)."""
    with user_errors():
        if not package.replace(".", "").replace("_", "").isalnum():
            raise UsageError(f"{package!r} is not a Python package name")
        adapter, spec = scaffold(package, out_dir, force)
        out.print(f"wrote {adapter} and {spec}\nnext: looplm verify --spec {spec}   "
                  f"(every step names the capability it still needs)")
