"""Bench (GPU): where the tiled looped block's time goes, at the long shapes of the workload.

    python -m bench.tiled_profile [--out PATH]

For each shape and attention option set (the headline windowed bias; the window without the bias
gather; plain causal) it times the whole forward (CUDA-event median) and, with torch.profiler,
the GPU time of each kernel (first K/V launch, loop launches, the host-side glue ops). Prints a
table, writes bench/results/tiled-profile-<device>.json.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from bench.common import device_kind, looped_inputs, record, table
from bench.kernels_gpu import median_ms

OPTIONS = {"window+bias": dict(window=1, use_bias=True), "window": dict(window=1, use_bias=False),
           "causal": dict(window=None, use_bias=False)}
# compile variants of the loop kernel, timed on the headline options: (rows per tile, cuTile options)
# ("w16": 16 worker warps, which compile only where tileiras takes 13.5 bytecode, e.g. a pack made
# with TILEIRAS_VERSION=13.5.37; elsewhere `tile.compile_options` gives it 8 and the row says so)
VARIANTS = {"default": (None, {}), "occ2": (None, {"occupancy": 2}), "t32": (32, {}),
            "t32-occ2": (32, {"occupancy": 2}), "t128": (128, {}), "w16": (None, {"num_worker_warps": 16})}


def kernel_times(fn, x) -> dict[str, float]:
    """GPU microseconds per call of each kernel name (summed over its launches in one call)."""
    from torch.profiler import ProfilerActivity, profile
    fn(x)
    torch.cuda.synchronize()
    n = 5
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(n):
            fn(x)
        torch.cuda.synchronize()
    by: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", 0)
        if t > 0:
            by[e.key[:60]] += t / n
    return dict(sorted(by.items(), key=lambda kv: -kv[1]))


def main() -> None:
    from kernels import looped_tiled as LT
    from kernels.tile import compile_options
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--shapes", default="64x100,8x1000", help="BATCHxDIGITS,...")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="compile variants to time, of " + ",".join(VARIANTS))
    args = ap.parse_args()
    if device_kind() == "cpu":
        raise SystemExit("bench.tiled_profile: no CUDA GPU here")
    rows = []
    for shape in args.shapes.split(","):
        B, digits = map(int, shape.split("x"))
        x0, sig, plen, real, thr, w = looped_inputs(B, digits)
        T = x0.shape[1]
        runs = [(name, "default", opts) for name, opts in OPTIONS.items()]
        runs += [("window+bias", v, OPTIONS["window+bias"]) for v in args.variants.split(",") if v != "default"]
        for name, variant, opts in runs:
            tile, options = VARIANTS[variant]
            kw = dict(loops=12, halting=False, reinject=True, tile=tile,
                      kernel=LT.loop_tile_kernel.variant(**options), **opts)
            run = lambda x: LT.looped_tiled_cutile(x, sig, plen, real, thr, w, **kw)  # noqa: E731
            ms = median_ms(run, [x0])
            per = kernel_times(run, x0)
            count, _ = LT.key_tiles(sig, plen, 64, 64, window=opts["window"])
            loop_us = sum(v for k, v in per.items() if "loop_tile" in k)
            rows.append({"B": B, "T": T, "options": name, "variant": variant,
                         "compiled_options": compile_options(kw["kernel"].options), "ms": ms, "loop_kernel_us": loop_us,
                         "per_loop_launch_us": loop_us / 12, "key_tiles_mean": float(count.float().mean()),
                         "kernels_us": per})
            print(rows[-1], flush=True)
    table("tiled looped block, L=12", ["B", "T", "options", "variant", "ms", "loop kernels us", "us/launch", "key tiles"],
          [[r["B"], r["T"], r["options"], r["variant"], r["ms"], r["loop_kernel_us"], r["per_loop_launch_us"], r["key_tiles_mean"]]
           for r in rows])
    print(f"wrote {record('tiled-profile-' + device_kind(), {'rows': rows}, out=args.out)}")


if __name__ == "__main__":
    main()
