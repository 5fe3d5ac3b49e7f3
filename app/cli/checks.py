"""`looplm checks`: every registered check with its params (type, default) and one line of doc."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from verifier.registry import all_checks

from .common import out


def describe() -> list[dict]:
    rows = []
    for name, chk in sorted(all_checks().items()):
        params = [{"name": p, "type": _type(f.annotation), "default": f.default}
                  for p, f in chk.params.model_fields.items()]
        rows.append({"check": name, "doc": chk.doc, "params": params})
    return rows


def _type(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def checks(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every check a spec step can name, with its params, their types and defaults."""
    rows = describe()
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    t = Table(title=f"{len(rows)} registered checks")
    for col in ("check", "params (type = default)", "what it verifies"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["check"], ", ".join(f"{p['name']}: {p['type']} = {p['default']!r}" for p in r["params"]) or "-",
                  r["doc"])
    out.print(t)
