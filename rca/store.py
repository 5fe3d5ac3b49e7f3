"""An append-only JSON-lines store that loses nothing.

Appends take an exclusive `flock` on the file, write one complete line with a single
`write`, and `fsync` before releasing, so concurrent writers never interleave and a record
that `append` returned is on disk. A writer killed mid-append can leave at most one torn
last line; readers report such a line (and any corrupt line) with its line number instead of
dropping it silently, and the next append starts on a fresh line.
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Iterator, Type, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


@dataclass
class CorruptLine:
    path: Path
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: corrupt record ({self.reason}): {self.text[:80]!r}"


class Store(Generic[T]):
    def __init__(self, path: str | Path, model: Type[T]):
        self.path, self.model = Path(path), model

    def append(self, record: T) -> T:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (record.model_dump_json() + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # a torn last line from a killed writer must not swallow this record
            size = os.fstat(fd).st_size
            if size and _last_byte(self.path, size) != b"\n":
                data = b"\n" + data
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path}: {written} of {len(data)} bytes")
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return record

    def scan(self) -> Iterator[T | CorruptLine]:
        """Every line in order: a record, or a CorruptLine saying where and why."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            try:
                lines = f.read().split(b"\n")
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        for n, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                yield self.model.model_validate(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                yield CorruptLine(self.path, n, f"not JSON: {e}", raw.decode("utf-8", "replace"))
            except ValidationError as e:
                yield CorruptLine(self.path, n, f"not a record: {e.errors()[0]['msg']}", raw.decode("utf-8", "replace"))

    def records(self) -> tuple[list[T], list[CorruptLine]]:
        good, bad = [], []
        for item in self.scan():
            (bad if isinstance(item, CorruptLine) else good).append(item)
        return good, bad


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(size - 1)
        return f.read(1)
