"""Facts learned after the spec was written (e.g. from fixed RCA records), kept append-only
beside the spec's own facts; `looplm claims` checks both."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from dsl.model import Fact, Spec
from rca.store import CorruptLine, Store

DEFAULT_PATH = Path(".looplm") / "facts.jsonl"


def fact_store(path: str | Path | None = None) -> Store[Fact]:
    """Stored facts: PATH, else $LOOPLM_KB, else ./.looplm/facts.jsonl."""
    return Store(path or os.environ.get("LOOPLM_KB") or DEFAULT_PATH, Fact)


def all_facts(spec: Spec, path: Optional[Path] = None) -> tuple[list[Fact], list[CorruptLine]]:
    stored, bad = fact_store(path).records()
    return list(spec.system.facts) + stored, bad
