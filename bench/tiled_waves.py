"""Bench (GPU): the tiled loop kernel's time against its block count, and the tiles halting leaves
live, on the headline checkpoint's own inputs.

    python -m bench.tiled_waves [--ckpt PATH] [--out PATH]

One launch per loop runs one block per 64-row query tile: B x cdiv(T, 64) blocks on the SMs at
the kernel's blocks an SM. The kernel is a latency chain (a block alone on an SM is hardly
faster than two sharing it), so a loop's time steps up with each wave, and the workload's
64 x 100-digit row (320 blocks, 264 slots on an H200) pays a second wave for 56 blocks (session
36's record: 52 rows 0.84 ms, 53 rows 1.13, kernel alone, halting off). With halting, a tile
whose tokens have all halted skips its block (ca29cd8): `live` counts, per loop, the tiles with a
token still active, from the kernel's own steps (a token that ran s loops was active in loops
0..s-1).

Each row times the tiled kernel alone (dispatch's default scores, outputs preallocated, replayed as
a CUDA graph, CUDA-event median) on the model path's arguments (`looplm.fused.looped_args`) at a
batch around the wave boundary, L = 12, halting off and on. Writes
bench/results/tiled-waves-<device>.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.common import HEADLINE, RESULTS, device_kind, record, table
from bench.kernels_gpu import halting_policy, inference_model, median_ms, workload_batches

# (digits, batches): the workload's batch (64, 8) and batches on each side of a wave boundary
SWEEP = ((100, (26, 52, 53, 64, 104)), (1000, (4, 5, 8, 11, 12)))


def live_tiles(steps: torch.Tensor, real: torch.Tensor, loops: int, tile: int) -> list[int]:
    """Per loop, the query tiles (B x cdiv(T, tile)) holding a real token still active in it:
    a token that ran s loops was active in loops 0..s-1."""
    B, T = steps.shape
    n = -(-T // tile)
    ran = torch.zeros(B, n * tile, dtype=torch.int64, device=steps.device)
    ran[:, :T] = steps.long() * real
    most = ran.view(B, n, tile).amax(-1)                 # (B, nQ) loops the tile's longest token ran
    return [int((most > loop).sum()) for loop in range(loops)]


def row(model, digits: int, B: int, halting: bool, slots: int, batches: int = 3) -> dict:
    from kernels import dispatch
    from kernels import looped_tiled as LT
    from looplm.fused import looped_args
    from looplm.graphs import Graphed
    policy, calls = halting_policy(halting), []
    for idx in workload_batches(model, digits, batches, batch=B):
        with torch.no_grad():
            calls.append(looped_args(model, idx, 12, policy))
    (args, kw), T = calls[0], calls[0][0][0].shape[1]
    logits, steps = dispatch.looped_block(*args, **kw)         # the default path: tiled at these lengths
    out = (torch.empty_like(logits), torch.empty_like(steps))
    graphs = [Graphed(lambda _, a=a, k=k: dispatch.looped_block(*a, **k, out=out), a[0]) for a, k in calls]
    ms = median_ms(lambda i: graphs[i].graph.replay(), list(range(batches)))      # no input copy: the kernel alone
    tile = LT.tiles_for(B, T, *args[0].shape[2:], args[5].bias.shape[0], args[5].wte.shape[0])["TM"]
    blocks = B * -(-T // tile)
    live = live_tiles(steps, args[3], kw["loops"], tile) if halting else [blocks] * kw["loops"]
    return {"digits": digits, "T": T, "B": B, "halting": halting, "blocks": blocks, "waves": -(-blocks // slots),
            "live_per_loop": live, "live_waves": sum(-(-n // slots) for n in live) / len(live), "ms": ms}


def main() -> None:
    from kernels import looped_tiled as LT
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=str(HEADLINE))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if device_kind() == "cpu":
        raise SystemExit("bench.tiled_waves: no CUDA GPU here")
    model = inference_model(args.ckpt)
    slots = torch.cuda.get_device_properties(0).multi_processor_count * LT.LOOP_OCCUPANCY
    rows = []
    out = args.out or RESULTS / f"tiled-waves-{device_kind()}.json"
    for digits, batch_sizes in SWEEP:
        for B in batch_sizes:
            for halting in (False, True):
                rows.append(row(model, digits, B, halting, slots))
                record(out.stem, {"slots": slots, "rows": rows}, out=out)
    table(f"tiled loop kernel alone, L = 12 ({slots} block slots)", ["digits", "B", "halting", "blocks", "waves",
          "mean live waves", "ms", "ms per 1k blocks"],
          [[r["digits"], r["B"], r["halting"], r["blocks"], r["waves"], r["live_waves"], r["ms"],
            r["ms"] / r["blocks"] * 1000] for r in rows])
    print(f"wrote {record(out.stem, {'slots': slots, 'rows': rows}, out=out)}")


if __name__ == "__main__":
    main()
