"""What every command shares: consoles, and bad input turned into a one-line reason + exit code."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import typer
from pydantic import ValidationError
from rich.console import Console

from dsl import SpecError
from looplm.checkpoint import CheckpointError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_FAIL, EXIT_USAGE = 1, 2


class UsageError(Exception):
    """Bad arguments or a missing file: exit 2."""


def fail(message: str, code: int = EXIT_FAIL) -> typer.Exit:
    err.print(message, markup=False)
    return typer.Exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Map the errors a user can cause to a message on stderr and an exit code; no traceback."""
    try:
        yield
    except SpecError as e:
        raise fail(str(e)) from None
    except CheckpointError as e:
        raise fail(f"error: {e}") from None
    except UsageError as e:
        raise fail(f"error: {e}", EXIT_USAGE) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError) as e:
        raise fail(f"error: {e.strerror or e}: {e.filename}", EXIT_USAGE) from None
    except json.JSONDecodeError as e:
        raise fail(f"error: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}", EXIT_USAGE) from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise fail(f"error: invalid config: {where}: {first['msg']}", EXIT_USAGE) from None


def existing(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if path.is_dir():
        raise UsageError(f"is a directory, not a file: {path}")
    return path
