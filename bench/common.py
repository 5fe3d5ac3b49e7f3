"""What every benchmark shares: the device, the commit, a table on stdout, JSON in bench/results/."""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from looplm.provenance import device_name, git_commit

RESULTS = Path(__file__).with_name("results")


def device_kind() -> str:
    """'h200', 'h100', ... from the GPU's name (results are named by device), or 'cpu'."""
    import torch
    if not torch.cuda.is_available():
        return "cpu"
    name = torch.cuda.get_device_name(0).lower()
    return next((w for w in name.replace("-", " ").split() if w[:1] in "habl" and w[1:].isdigit()), "gpu")


def record(name: str, data: dict[str, Any], out: Path | None = None) -> Path:
    """Write `data` with device, date, commit and the command to bench/results/NAME.json."""
    payload = {"device": device_name(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "commit": git_commit(), "command": " ".join([Path(sys.executable).name, *sys.argv]), **data}
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[f"{x:.4g}" if isinstance(x, float) else str(x) for x in r])
    Console(soft_wrap=True).print(t)
