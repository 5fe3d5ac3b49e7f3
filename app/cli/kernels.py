"""`looplm kernels compile`: ahead-of-time compile every kernel the spec declares (no GPU needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

import dsl
from verifier import binding, kernel_build

from .common import EXIT_FAIL, UsageError, existing, fail, out, user_errors

app = typer.Typer(no_args_is_help=True, help="cuTile kernels.")


@app.command("compile")
def compile_cmd(arch: Optional[str] = typer.Option(None, help="Comma-separated targets (default: each kernel's declared archs)."),
                spec: Path = typer.Option(dsl.BUNDLED, help="Spec declaring the kernels and their shapes."),
                quick: bool = typer.Option(False, help="One signature per kernel, first shape only."),
                cache: bool = typer.Option(True, help="Reuse cubins compiled before (same source, args, arch).")) -> None:
    """Compile every declared kernel for every declared shape and architecture; exit 1 on any failure."""
    with user_errors():
        archs = [a.strip() for a in arch.split(",") if a.strip()] if arch is not None else None
        if archs is not None and (not archs or any(a not in kernel_build.ARCHS for a in archs)):
            raise UsageError(f"--arch takes {', '.join(kernel_build.ARCHS)}; got {arch!r}")
        s = dsl.load(existing(spec))
        try:
            bound = list(binding.bind_kernels(s, spec).values())
        except dsl.SpecError as e:
            raise s.error(e) from None
        problems = kernel_build.tile_problems(bound)
        if problems:
            raise fail("\n".join(problems), EXIT_FAIL)
        try:
            builds = kernel_build.compile_all(bound, archs, quick=quick, cache=cache, on_build=lambda b: out.print(
                f"{b.kernel:<16} {b.arch:<7} {str(b.shape):<44} {b.bytes / 1024:8.0f} KiB  {b.seconds:6.2f} s"))
        except RuntimeError as e:
            raise fail(f"error: {e}", EXIT_FAIL) from None
        except Exception as e:
            raise fail(f"error: a kernel does not compile: {type(e).__name__}: {str(e)[:500]}", EXIT_FAIL) from None
        out.print(f"{len(builds)} builds, {sum(b.seconds for b in builds):.1f} s")
