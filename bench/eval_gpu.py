"""Bench (GPU): `looplm eval`'s own evaluation with the kernels on and off, side by side.

    python -m bench.eval_gpu [--ckpt PATH] [--digits 100,1000] [--n 500] [--repeats 2]

For each digit count, alternating backends (reference, cutile, reference, cutile, ...), times
`looplm.evaluate.evaluate` - the function `looplm eval` calls - on the same n problems, after one
untimed call per backend (cuTile's JIT and the allocator's first growth are not the eval's
cost). Records the median seconds per backend, their ratio, and both backends' exact-match
accuracy on the same problems (they must agree). Writes bench/results/eval-<device>.json.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from bench.common import device_kind, record, table
from kernels import dispatch
from looplm import checkpoint
from looplm.evaluate import evaluate

HEADLINE = Path("results/checkpoints/looplm_reversed_all_loops.pt")


def timed(model, digits: int, n: int, backend: str) -> tuple[float, dict]:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with dispatch.use(backend):
        report = evaluate(model, [digits], n, seed=0, device="cuda", token_budget=64_000_000)
    torch.cuda.synchronize()
    return time.perf_counter() - t0, report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", type=Path, default=HEADLINE)
    ap.add_argument("--digits", default="100,1000")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    model = checkpoint.load(args.ckpt, map_location="cuda").model.cuda().eval()
    rows = []
    for d in (int(x) for x in args.digits.split(",")):
        secs: dict[str, list[float]] = {"reference": [], "cutile": []}
        acc = {}
        for b in secs:                                   # untimed: JIT, allocator growth
            acc[b] = timed(model, d, args.n, b)[1]["accuracy_by_digits"][str(d)]
        for _ in range(args.repeats):
            for b in secs:
                s, rep = timed(model, d, args.n, b)
                secs[b].append(s)
                if rep["accuracy_by_digits"][str(d)] != acc[b]:
                    raise SystemExit(f"{b} at {d} digits: accuracy changed between calls")
        med = {b: statistics.median(v) for b, v in secs.items()}
        rows.append({"digits": d, "n": args.n, "seconds": med, "all_seconds": secs, "accuracy": acc,
                     "kernels_speedup": med["reference"] / med["cutile"], "same_accuracy": acc["reference"] == acc["cutile"]})
        print(rows[-1], flush=True)
    table("looplm eval, kernels on vs off (s, median)", ["digits", "n", "reference", "cutile", "x", "acc ref", "acc cutile"],
          [[r["digits"], r["n"], r["seconds"]["reference"], r["seconds"]["cutile"], r["kernels_speedup"],
            r["accuracy"]["reference"], r["accuracy"]["cutile"]] for r in rows])
    print("wrote", record(f"eval-{device_kind()}", {"checkpoint": str(args.ckpt), "rows": rows}, args.out))


if __name__ == "__main__":
    main()
