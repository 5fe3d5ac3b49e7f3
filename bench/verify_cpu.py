"""Bench: `looplm verify` with no arguments (the main job) on this CPU, as a user runs it —
a fresh process each time; the first run with an empty kernel cache (cold), then warm runs.

    python -m bench.verify_cpu        # prints a table, writes bench/results/verify_cpu.json
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import record, table


def run_verify(cache: Path, out: Path) -> tuple[float, dict]:
    env = {**os.environ, "LOOPLM_CACHE": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "app.cli", "verify", "--json", str(out)], env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"looplm verify failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return seconds, json.loads(out.read_text())


def main(warm_runs: int = 3) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold, _ = run_verify(cache, Path(tmp) / "cold.json")
        warm = [run_verify(cache, Path(tmp) / f"warm{i}.json") for i in range(warm_runs)]
    walls = sorted(s for s, _ in warm)
    median = walls[len(walls) // 2]
    steps = warm[0][1]["steps"]
    slowest = sorted(steps, key=lambda s: -s["seconds"])[:5]
    table("looplm verify (no arguments), wall seconds per process", ("run", "seconds"),
          [("cold (empty kernel cache)", cold), *[(f"warm {i + 1}", s) for i, (s, _) in enumerate(warm)]])
    table("slowest steps (warm run 1)", ("step", "seconds"), [(s["id"], s["seconds"]) for s in slowest])
    path = record("verify_cpu", {"cold_seconds": round(cold, 2), "warm_seconds": [round(s, 2) for s, _ in warm],
                                 "warm_median_seconds": round(median, 2), "steps": len(steps),
                                 "step_seconds": {s["id"]: s["seconds"] for s in steps}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
