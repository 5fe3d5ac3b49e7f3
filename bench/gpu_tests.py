"""Bench (GPU): the GPU test suite's outcome and time per test, cold, as committed evidence.

    python -m bench.gpu_tests [--jobs N] [--warm] [--limit SECONDS]

A cold run is dominated by cuTile's JIT (tileiras, one CPU core per kernel variant), not by the
GPU. So the runner collects the `gpu` tests and runs them in N pytest processes at once (default:
one per test, up to the CPU count), sharing the one GPU, the longest tests of the last run first.
Each test is still one process end to end, hypothesis examples included, so what passes here
passes under a plain `pytest -m gpu`.

Cold means cold: the run compiles into a fresh cuTile disk cache (CUDA_TILE_CACHE_DIR in a temp
folder) unless --warm, and the record counts what was compiled (variants, compile seconds per
kernel) from that cache's metadata. A test still running --limit seconds (300) after the start
is killed and recorded as 'hung', with the innermost frames pytest's faulthandler dumped before
the kill (a GPU launch that never returns would otherwise hold the run, and the device call,
until the call's own limit, and leave no record). Writes bench/results/gpu-tests-<device>.json.
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
from collections import defaultdict, deque
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


def stream(proc: subprocess.Popen, tag: str, t0: float, tail: deque) -> None:
    for line in proc.stdout:
        print(f"[{time.perf_counter() - t0:6.1f} s {tag}] {line}", end="", flush=True)
        tail.append(line.rstrip())


def hung_rows(group: list[str], done: list[dict], tail: deque, limit: float) -> list[dict]:
    """Rows for the tests of a process killed at the time limit that never reported: status
    'hung', the message the innermost frames of pytest's faulthandler dump (`File ..., line ...
    in ...` lines it streamed before the kill), so the record says where it sat."""
    reported = {r["test"] for r in done}
    frames = dumped_frames(list(tail))
    where = " <- ".join(frames[:3]) or "no stack dumped"
    return [{"test": row_name(n), "seconds": limit, "status": "hung", "message": f"killed after {limit:.0f} s; {where}"[:500]}
            for n in group if row_name(n) not in reported]


def dumped_frames(lines: list[str]) -> list[str]:
    """The test thread's frames, innermost first, from the last faulthandler dump in `lines` (it
    lists every thread; the test's is the one that passes through pytest_pyfunc_call)."""
    start = max((i for i, ln in enumerate(lines) if "Timeout (" in ln), default=-1)
    threads: list[list[str]] = []
    for ln in lines[start + 1:]:
        if ln.lstrip().startswith(("Thread 0x", "Current thread")):
            threads.append([])
        elif ln.strip().startswith("File ") and threads:
            threads[-1].append(ln.strip())
    return next((t for t in threads if any("pytest_pyfunc_call" in f for f in t)), [])


def row_name(node: str) -> str:
    """A pytest node id as junit names it: tests/test_x.py::test_a[p] -> tests.test_x::test_a[p]."""
    path, _, name = node.partition("::")
    return f"{path.removesuffix('.py').replace('/', '.')}::{name}"


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


def run(nodes: list[str], jobs: int, warm: bool, seconds: dict[str, float],
        limit: float = 1e9) -> tuple[int, float, list[dict], dict]:
    """Every group in its own pytest process; one still running `limit` seconds after the start
    is killed (a launch that never ends blocks its test forever: session 37 lost a device call to
    one), its unreported tests recorded as 'hung' with where they sat, and the exit code is 124."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not warm:
            env["CUDA_TILE_CACHE_DIR"] = str(Path(tmp) / "cutile-cache")
        dump = max(1, int(limit - max(30.0, 0.2 * limit)))   # faulthandler's dump, before the kill (after startup)
        t0, procs, tails, threads, parts = time.perf_counter(), [], [], [], groups(nodes, jobs, seconds)
        for i, g in enumerate(parts):
            # -v, streamed: a run cut short by the device's time limit still shows which tests ended and when
            p = subprocess.Popen([sys.executable, "-u", "-m", "pytest", "-v", "-m", "gpu", "-p", "no:cacheprovider",
                                  "-o", f"faulthandler_timeout={dump}", f"--junitxml={tmp}/{i}.xml", *g],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            tails.append(deque(maxlen=200))
            threads.append(threading.Thread(target=stream, args=(p, f"#{i}", t0, tails[-1]), daemon=True))
            threads[-1].start()
            procs.append(p)
        codes = [_wait(p, t0 + limit) for p in procs]
        wall = time.perf_counter() - t0
        for t in threads:                    # the streams' last lines (a killed process's pipe closes)
            t.join(timeout=5)
        tests = [r for i in range(len(procs)) for r in junit_rows(Path(tmp) / f"{i}.xml")]
        tests += [r for i, c in enumerate(codes) if c is None for r in hung_rows(parts[i], tests, tails[i], limit)]
        stats = compiled(env["CUDA_TILE_CACHE_DIR"]) if not warm else {}
    codes = [124 if c is None else c for c in codes]
    return next((c for c in codes if c != 0), 0), wall, tests, stats


def _wait(proc: subprocess.Popen, deadline: float) -> int | None:
    """The process's exit code, or None when it was killed at the deadline."""
    try:
        return proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=0, help="pytest processes at once (0: one per test, up to the CPUs)")
    ap.add_argument("--warm", action="store_true", help="use the machine's cuTile disk cache instead of a fresh one")
    ap.add_argument("--limit", type=float, default=300.0,
                    help="seconds after the start at which a test still running is killed and recorded as hung")
    a = ap.parse_args()
    if device_kind() == "cpu":
        sys.exit("bench.gpu_tests: no CUDA GPU here; every test would skip and the record would say nothing")
    nodes = collect()
    jobs = a.jobs or min(os.cpu_count() or 1, len(nodes))
    code, wall, tests, stats = run(nodes, jobs, a.warm, last_seconds(RESULTS / f"gpu-tests-{device_kind()}.json"), a.limit)
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
