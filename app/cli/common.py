"""What every command shares: consoles, option types, the exit codes, and bad input turned into
a one-line reason and a documented exit code (never a traceback).

Exit codes (the README's table): 0 success; 1 the verdict is negative (a step failed, the gate
refused, the spec is invalid, a claim is contradicted, a symptom matches, a mutant escaped);
2 bad input (an option, a missing or unreadable file, an invalid config, JSON or checkpoint, a
config outside the spec's ranges, a device that is not there); 130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import contextlib
import enum
import json
from pathlib import Path
from typing import Iterator

import typer
from pydantic import ValidationError
from rich.console import Console

from app.files import write_atomic
from app.pipeline import GateRefused
from dsl import SpecError
from kernels.dispatch import KernelUnavailable
from looplm.checkpoint import CheckpointError
from looplm.evaluate import FormatMismatch
from looplm.train import TrainingError, TrainingInterrupted
from rca.store import CorruptLine
from verifier.contract import ContractError
from verifier.mutants import CatalogError
from verifier.ranges import ConfigRefused
from verifier.target import DeviceUnavailable

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """Bad arguments or a missing file: exit 2."""


def fail(message: str, code: int = EXIT_FAIL) -> typer.Exit:
    err.print(message, markup=False)
    return typer.Exit(code)


def _validation(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    return f"error: invalid config: {where}: {first['msg']}"


# exception type -> (exit code, message); checked in order, the first match wins
_USER_ERRORS = [
    (SpecError, EXIT_FAIL, str),
    (GateRefused, EXIT_FAIL, str),
    (FormatMismatch, EXIT_FAIL, lambda e: f"error: {e}"),
    (ContractError, EXIT_FAIL, lambda e: f"error: {e}"),
    (TrainingInterrupted, EXIT_INTERRUPTED, lambda e: f"{e}; continue with --resume"),
    (KeyboardInterrupt, EXIT_INTERRUPTED, lambda e: "interrupted"),
    (UsageError, EXIT_USAGE, lambda e: f"error: {e}"),
    (CheckpointError, EXIT_USAGE, lambda e: f"error: {e}"),
    (ConfigRefused, EXIT_USAGE, lambda e: f"error: {e}"),
    (DeviceUnavailable, EXIT_USAGE, lambda e: f"error: {e}"),
    (KernelUnavailable, EXIT_USAGE, lambda e: f"error: {e}"),
    (TrainingError, EXIT_USAGE, lambda e: f"error: {e}"),
    (CatalogError, EXIT_USAGE, lambda e: f"error: {e}"),
    (json.JSONDecodeError, EXIT_USAGE, lambda e: f"error: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"),
    (UnicodeDecodeError, EXIT_USAGE, lambda e: f"error: not UTF-8 text ({e.reason} at byte {e.start})"),
    (ValidationError, EXIT_USAGE, _validation),
    (OSError, EXIT_USAGE, lambda e: f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": ")),
    (ValueError, EXIT_USAGE, lambda e: f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}"),
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Map the errors a user can cause to a message on stderr and an exit code; no traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except BaseException as e:
        for kind, code, message in _USER_ERRORS:
            if isinstance(e, kind):
                raise fail(message(e), code) from None
        raise


def existing(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if path.is_dir():
        raise UsageError(f"is a directory, not a file: {path}")
    return path


def writable(path: Path, text: str) -> Path:
    """Write an output file whole (temporary file + rename); one line if it cannot be written."""
    try:
        return write_atomic(path, text)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None


def choice(name: str, values) -> type[enum.Enum]:
    """A typer choice type: the allowed values appear in --help and bad ones are refused."""
    return enum.Enum(name, {v: v for v in values}, type=str)


def report_corrupt(bad: list[CorruptLine]) -> None:
    for b in bad:
        err.print(str(b), markup=False)
