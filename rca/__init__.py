"""Root-cause-analysis records, stored append-only as JSON lines (see store.py)."""
from __future__ import annotations

import os
from pathlib import Path

from .record import Record
from .render import render_markdown
from .store import CorruptLine, Store

DEFAULT_PATH = Path(".looplm") / "rca.jsonl"     # project state beside the work, not in a package


def store(path: str | Path | None = None) -> Store[Record]:
    """The RCA store: PATH, else $LOOPLM_RCA, else ./.looplm/rca.jsonl."""
    return Store(path or os.environ.get("LOOPLM_RCA") or DEFAULT_PATH, Record)


__all__ = ["Record", "Store", "CorruptLine", "store", "render_markdown", "DEFAULT_PATH"]
