"""The `looplm` command: thin typed commands that delegate to library code."""
from __future__ import annotations

import typer

from . import model, spec

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="LoopLM-Spec: spec-driven verification for looped transformers and their kernels.")
app.add_typer(spec.app, name="spec")
app.command("train")(model.train_cmd)
app.command("eval")(model.eval_cmd)
app.command("trace")(model.trace_cmd)


def main() -> None:
    app()
