"""The `looplm` command: thin typed commands that delegate to library code."""
from __future__ import annotations

import importlib.metadata
from typing import Optional

import typer

from . import checks, experiment, init, kernels, model, rca, spec, verify

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="LoopLM-Spec: spec-driven verification for looped transformers and their kernels.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"looplm-spec {importlib.metadata.version('looplm-spec')}")
        raise typer.Exit()


@app.callback()
def main_options(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                                         help="Print the version and exit.")) -> None:
    """LoopLM-Spec: spec-driven verification for looped transformers and their kernels."""


app.add_typer(spec.app, name="spec")
app.command("train")(model.train_cmd)
app.command("eval")(model.eval_cmd)
app.command("trace")(model.trace_cmd)
app.command("verify")(verify.verify)
app.command("gate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(verify.gate)
app.command("mutants")(verify.mutants)
app.command("claims")(verify.claims)
app.command("diagnose")(verify.diagnose_cmd)
app.command("checks")(checks.checks)
app.command("init")(init.init)
app.add_typer(rca.app, name="rca")
app.add_typer(kernels.app, name="kernels")
app.add_typer(experiment.app, name="experiment")
app.command("report")(experiment.report)


def main() -> None:
    app()
