"""Bench (GPU): where one looped-inference forward's GPU time goes, kernel by kernel, on the
checkpoint and shapes of `bench.kernels_gpu`.

    python -m bench.forward_profile [--ckpt PATH] [--digits 12,100] [--loops 12]

For each shape (halting off and on) it times the default dispatch path as one CUDA graph
(CUDA-event median) and, with torch.profiler on plain calls, sums each kernel's GPU time per
forward: the looped-block kernel against the glue around it (embedding, thresholds, packing,
attention mask, unpacking). Prints a table, writes bench/results/forward-profile-<device>.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.common import RESULTS, device_kind, record, table
from bench.kernels_gpu import BATCH, _paths, halting_policy, inference_model, median_ms, workload_batches
from bench.tiled_profile import kernel_times

LOOP_KERNELS = ("looped_block_kernel", "loop_tile_kernel", "first_qkv_kernel")


def profile_row(model, digits: int, L: int, halting: bool) -> dict:
    from looplm.graphs import Graphed
    batches, policy = workload_batches(model, digits), halting_policy(halting)
    _, default = _paths(model, L, policy)
    graphed_ms = median_ms(Graphed(default, batches[0]), batches)
    us = kernel_times(default, batches[0])
    loop_us = sum(t for k, t in us.items() if k.startswith(LOOP_KERNELS))
    return {"digits": digits, "T": int(batches[0].shape[1]), "batch": BATCH[digits], "L": L, "halting": halting,
            "graphed_ms": graphed_ms, "gpu_us_total": sum(us.values()), "loop_kernel_us": loop_us,
            "glue_us": sum(us.values()) - loop_us, "kernels_us": us}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--digits", default="12,100")
    ap.add_argument("--loops", type=int, default=12)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if device_kind() == "cpu":
        raise SystemExit("bench.forward_profile: no CUDA GPU here")
    model = inference_model(args.ckpt)
    rows = [profile_row(model, int(d), args.loops, h) for d in args.digits.split(",") for h in (False, True)]
    for r in rows:
        table(f"{r['batch']} x {r['digits']} digits, L={r['L']}, halting {r['halting']}: GPU us per forward",
              ["kernel", "us"], [[k, v] for k, v in list(r["kernels_us"].items())[:15]])
    table("forward: graphed time against GPU time by part", ["digits", "halt", "graphed ms", "GPU us", "loop kernel us",
                                                              "glue us"],
          [[r["digits"], r["halting"], r["graphed_ms"], r["gpu_us_total"], r["loop_kernel_us"], r["glue_us"]]
           for r in rows])
    out = args.out or RESULTS / f"forward-profile-{device_kind()}.json"
    print(f"wrote {record(out.stem, {'checkpoint': args.ckpt, 'rows': rows}, out=out)}")


if __name__ == "__main__":
    main()
