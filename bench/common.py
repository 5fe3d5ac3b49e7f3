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
HEADLINE = Path("results/checkpoints/looplm_reversed_all_loops.pt")     # the headline checkpoint


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


def looped_inputs(B: int, digits: int, device: str = "cuda"):
    """The looped kernels' arguments for B reversed-order addition problems of `digits` digits with
    random bf16 weights (D=128, 4 heads, 12 step rows), seeded: (x0, sig, plen, real, thr, w)."""
    import torch

    from looplm.kernel_inputs import addition_rows, random_weights
    from looplm.tokens import ADDITION
    g = torch.Generator().manual_seed(0)
    idx, sig, plen = (t.to(device) for t in addition_rows(B, digits, "reversed", 1))
    T = idx.shape[1]
    w = random_weights(128, 4, len(ADDITION), 12, g, torch.bfloat16)
    w = type(w)(*(t.to(device) for t in w))
    x0 = torch.randn(B, T, 128, generator=g).to(device)
    real, thr = idx != ADDITION.pad_id, torch.full((B, T), 0.05, device=device)
    return x0, sig, plen, real, thr, w
