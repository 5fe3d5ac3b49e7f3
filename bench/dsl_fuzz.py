"""Bench: 10,000 mutated specs through `dsl.loads` (count non-SpecError failures: must be 0),
and the parse time of the bundled spec.   python -m bench.dsl_fuzz [--n 10000]"""
from __future__ import annotations

import argparse
import random
import statistics
import time
import traceback

import dsl
from bench.common import record, table
from tests.mutations import mutate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    text = dsl.BUNDLED.read_text()
    dsl.loads(text)  # build the parser once, outside the timings
    times = []
    for _ in range(30):
        t = time.perf_counter()
        dsl.loads(text)
        times.append(time.perf_counter() - t)
    counts = {"ok": 0, "spec_error": 0, "other": 0}
    others: list[str] = []
    start = time.perf_counter()
    for i in range(args.n):
        data = mutate(text, random.Random(args.seed * 1_000_003 + i))
        try:
            dsl.loads(data)
            counts["ok"] += 1
        except dsl.SpecError as e:
            bad = e.line is None or e.line < 1 or e.column < 1 or not e.message.strip()
            counts["other" if bad else "spec_error"] += 1
        except Exception:
            counts["other"] += 1
            if len(others) < 5:
                others.append(f"input {i}: {traceback.format_exc(limit=3)}")
    elapsed = time.perf_counter() - start
    parse_ms = statistics.median(times) * 1e3
    table("DSL robustness fuzz", ["inputs", "parsed ok", "SpecError", "other failures", "bundled parse ms (median of 30)"],
          [[args.n, counts["ok"], counts["spec_error"], counts["other"], parse_ms]])
    for o in others:
        print(o)
    path = record("dsl_fuzz", {"inputs": args.n, "seed": args.seed, **counts, "non_spec_error_failures": counts["other"],
                               "bundled_parse_ms_median": round(parse_ms, 3), "bundled_lines": text.count("\n"),
                               "fuzz_seconds": round(elapsed, 1)})
    print(f"wrote {path}")
    raise SystemExit(1 if counts["other"] else 0)


if __name__ == "__main__":
    main()
