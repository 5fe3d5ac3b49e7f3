"""Bench (GPU): the GPU test suite's outcome and time per test, cold, as committed evidence.

    python -m bench.gpu_tests [--jobs N] [--warm]

A cold run is dominated by cuTile's JIT (tileiras, one CPU core per kernel variant), not by the
GPU. So the runner collects the `gpu` tests and runs them in N pytest processes at once (default:
one per test, up to the CPU count), sharing the one GPU, the longest tests of the last run first.
Each test is still one process end to end, hypothesis examples included, so what passes here
passes under a plain `pytest -m gpu`.

Cold means cold: the run compiles into a fresh cuTile disk cache (CUDA_TILE_CACHE_DIR in a temp
folder) unless --warm, and the record counts what was compiled (variants, compile seconds per
kernel) from that cache's metadata. Writes bench/results/gpu-tests-<device>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree as ET

from bench.common import RESULTS, device_kind, record, table

TESTS = "tests/test_kernels_gpu.py"


def collect() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                          TESTS], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if "::" in line]


def last_seconds(path: Path) -> dict[str, float]:
    """Each test's seconds in the last committed run on this device kind, by pytest node id."""
    if not path.exists():
        return {}
    rows = json.loads(path.read_text()).get("tests", [])
    return {r["test"].replace(".", "/", 1).replace("::", ".py::", 1): r["seconds"] for r in rows}


def groups(nodes: list[str], jobs: int, seconds: dict[str, float]) -> list[list[str]]:
    """Longest first, each onto the least-loaded process (longest-processing-time scheduling), by
    the last run's seconds per test; a test that run lacks (new, or a new shard) counts as the
    longest, so it gets a process of its own. Round-robin in collection order had put the two
    slowest shards behind other tests once there were more tests than processes."""
    cost = lambda n: seconds.get(n, float("inf"))  # noqa: E731
    out: list[list[str]] = [[] for _ in range(jobs)]
    load = [0.0] * jobs
    for n in sorted(nodes, key=cost, reverse=True):
        i = load.index(min(load))
        out[i].append(n)
        load[i] += cost(n)
    return [g for g in out if g]


def stream(proc: subprocess.Popen, tag: str, t0: float) -> None:
    for line in proc.stdout:
        print(f"[{time.perf_counter() - t0:6.1f} s {tag}] {line}", end="", flush=True)


def junit_rows(path: Path) -> list[dict]:
    """One row per test; a failed or errored one keeps pytest's one-line reason (`message`), so a
    cold run's record says why, not only that, a test failed."""
    if not path.exists():
        return []
    rows = []
    for c in ET.parse(path).getroot().iter("testcase"):
        bad = c.find("failure") if c.find("failure") is not None else c.find("error")
        status = "failed" if bad is not None else "skipped" if c.find("skipped") is not None else "passed"
        row = {"test": f"{c.get('classname')}::{c.get('name')}", "seconds": float(c.get("time", 0)), "status": status}
        if bad is not None:
            row["message"] = (bad.get("message") or "").strip()[:500]
        rows.append(row)
    return rows


def compiled(cache_dir: str) -> dict:
    """Variants tileiras compiled in this run and their compile seconds, by kernel, from the cache db."""
    db = Path(cache_dir) / "cache.db"
    if not db.exists():
        return {"variants": 0, "compile_seconds": 0.0, "by_kernel": {}}
    by: dict[str, list[float]] = defaultdict(list)
    with sqlite3.connect(db) as conn:
        for (meta,) in conn.execute("SELECT metadata FROM cache"):
            m = json.loads(meta or "{}")
            name = ",".join(m.get("kernel_names") or ["?"])
            by[name].append(m.get("compilation_time_seconds") or 0.0)
    return {"variants": sum(map(len, by.values())), "compile_seconds": round(sum(map(sum, by.values())), 1),
            "by_kernel": {k: {"variants": len(v), "seconds": round(sum(v), 1)} for k, v in sorted(by.items())}}


def run(nodes: list[str], jobs: int, warm: bool, seconds: dict[str, float]) -> tuple[int, float, list[dict], dict]:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not warm:
            env["CUDA_TILE_CACHE_DIR"] = str(Path(tmp) / "cutile-cache")
        t0 = time.perf_counter()
        procs = []
        for i, g in enumerate(groups(nodes, jobs, seconds)):
            # -v, streamed: a run cut short by the device's time limit still shows which tests ended and when
            p = subprocess.Popen([sys.executable, "-u", "-m", "pytest", "-v", "-m", "gpu", "-p", "no:cacheprovider",
                                  f"--junitxml={tmp}/{i}.xml", *g], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env=env)
            threading.Thread(target=stream, args=(p, f"#{i}", t0), daemon=True).start()
            procs.append(p)
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        tests = [r for i in range(len(procs)) for r in junit_rows(Path(tmp) / f"{i}.xml")]
        stats = compiled(env["CUDA_TILE_CACHE_DIR"]) if not warm else {}
    code = 0 if all(c == 0 for c in codes) else next(c for c in codes if c != 0)
    return code, wall, tests, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=0, help="pytest processes at once (0: one per test, up to the CPUs)")
    ap.add_argument("--warm", action="store_true", help="use the machine's cuTile disk cache instead of a fresh one")
    a = ap.parse_args()
    if device_kind() == "cpu":
        sys.exit("bench.gpu_tests: no CUDA GPU here; every test would skip and the record would say nothing")
    nodes = collect()
    jobs = a.jobs or min(os.cpu_count() or 1, len(nodes))
    code, wall, tests, stats = run(nodes, jobs, a.warm, last_seconds(RESULTS / f"gpu-tests-{device_kind()}.json"))
    table(f"GPU tests ({wall:.0f} s wall, {jobs} processes, exit {code})", ("test", "status", "s"),
          [(t["test"], t["status"], t["seconds"]) for t in tests])
    if stats:
        table(f"cuTile compiles ({stats['variants']} variants, {stats['compile_seconds']} s of tileiras)",
              ("kernel", "variants", "s"), [(k, v["variants"], v["seconds"]) for k, v in stats["by_kernel"].items()])
    path = record("gpu-tests-" + device_kind(), {"wall_seconds": round(wall, 1), "exit_code": code, "jobs": jobs,
                                                  "cold": not a.warm, "compiles": stats, "tests": tests})
    print(f"wrote {path}")
    sys.exit(code)


if __name__ == "__main__":
    main()
