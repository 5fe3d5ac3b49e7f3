"""The LoopLM_System spec language. Public API: `load`, `loads`, `dump`, `dumps`, `SpecError`.

    >>> from dsl import loads, dumps
    >>> spec = loads('system S { protocol { step a { check: aligned_batches gates: true } } }')
    >>> spec.system.steps[0].gates
    True

Nothing else in the project touches Lark: everything goes through these four functions.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import SpecError
from .model import Spec
from .parser import parse
from .printer import dumps

BUNDLED = Path(__file__).with_name("specs") / "looplm_system.dsl"

__all__ = ["load", "loads", "dump", "dumps", "SpecError", "Spec", "BUNDLED"]


def loads(text: str | bytes, *, file: str | None = None) -> Spec:
    """Parse and validate spec text; every problem raises `SpecError` with file:line:col."""
    if isinstance(text, bytes):
        text = _decode(text, file)
    text = text.removeprefix("\ufeff")
    try:
        spec = parse(text)
        spec._text, spec._file = text, file
        return spec
    except SpecError as e:
        raise e.locate(text, file) from None
    except RecursionError:
        raise SpecError("spec nested too deeply to read", line=1, column=1).locate(text, file) from None


def load(path: str | os.PathLike) -> Spec:
    """Read a spec file (UTF-8). A missing file raises FileNotFoundError, not SpecError."""
    path = Path(path)
    return loads(path.read_bytes(), file=str(path))


def dump(spec: Spec, path: str | os.PathLike) -> None:
    """Write `dumps(spec)` atomically: a crash mid-write never leaves half a spec."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(dumps(spec))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _decode(data: bytes, file: str | None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        good = data[: e.start].decode("utf-8")
        line = good.count("\n") + 1
        col = len(good) - (good.rfind("\n") + 1) + 1
        err = SpecError(f"the file is not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})",
                        line=line, column=col)
        raise err.locate(good + "\n", file) from None
