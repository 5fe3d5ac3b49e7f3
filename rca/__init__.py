"""Root-cause-analysis records, stored append-only as JSON lines (see store.py)."""
from __future__ import annotations

import os
from pathlib import Path

from .record import CATEGORY_OF_CHECK, Record
from .render import render_markdown
from .store import CorruptLine, Store

DEFAULT_PATH = Path("rca") / "records.jsonl"


def store(path: str | Path | None = None) -> Store[Record]:
    """The RCA store: PATH, else $LOOPLM_RCA, else ./rca/records.jsonl."""
    return Store(path or os.environ.get("LOOPLM_RCA") or DEFAULT_PATH, Record)


__all__ = ["Record", "Store", "CorruptLine", "store", "render_markdown", "CATEGORY_OF_CHECK", "DEFAULT_PATH"]
