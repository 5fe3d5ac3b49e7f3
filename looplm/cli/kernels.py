"""`looplm kernels compile`: ahead-of-time compile every kernel the spec declares (no GPU needed)."""
from __future__ import annotations

from pathlib import Path

import typer

import dsl
from kernels import aot
from kernels.tile import ARCHS

from .common import EXIT_FAIL, UsageError, existing, fail, out, user_errors

app = typer.Typer(no_args_is_help=True, help="cuTile kernels.")


@app.command("compile")
def compile_cmd(arch: str = typer.Option(",".join(ARCHS), help="Comma-separated targets."),
                spec: Path = typer.Option(dsl.BUNDLED, help="Spec declaring the kernels and their shapes."),
                quick: bool = typer.Option(False, help="One signature per kernel, first shape only."),
                cache: bool = typer.Option(True, help="Reuse cubins compiled before (same source, args, arch).")) -> None:
    """Compile every declared kernel for every declared shape and architecture; exit 1 on any failure."""
    with user_errors():
        archs = [a.strip() for a in arch.split(",") if a.strip()]
        unknown = [a for a in archs if a not in ARCHS]
        if unknown or not archs:
            raise UsageError(f"--arch takes {', '.join(ARCHS)}; got {arch!r}")
        s = dsl.load(existing(spec))
        problems = aot.tile_problems(s)
        if problems:
            raise fail("\n".join(problems), EXIT_FAIL)
        try:
            builds = aot.compile_all(s, archs, quick=quick, cache=cache, on_build=lambda b: out.print(
                f"{b.kernel:<16} {b.arch:<7} {str(b.shape):<44} {b.bytes / 1024:8.0f} KiB  {b.seconds:6.2f} s"))
        except RuntimeError as e:
            raise fail(f"error: {e}", EXIT_FAIL) from None
        except Exception as e:
            raise fail(f"error: a kernel does not compile: {type(e).__name__}: {str(e)[:500]}", EXIT_FAIL) from None
        out.print(f"{len(builds)} builds, {sum(b.seconds for b in builds):.1f} s")
