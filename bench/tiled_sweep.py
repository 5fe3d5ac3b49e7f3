"""Bench (GPU): the tiled looped block's tuning knobs (rows per tile, worker warps) at the long
shapes of the workload, against the reference path, side by side in one run.

    python -m bench.tiled_sweep [--out PATH]
"""
from __future__ import annotations

import argparse
from pathlib import Path


from bench.common import device_kind, looped_inputs, record, table
from bench.kernels_gpu import median_ms


def main() -> None:
    from kernels import looped_tiled as LT
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if device_kind() == "cpu":
        raise SystemExit("bench.tiled_sweep: no CUDA GPU here")
    rows = []
    for B, digits in ((64, 100), (8, 1000)):
        x0, sig, plen, real, thr, w = looped_inputs(B, digits)
        T = x0.shape[1]
        kw = dict(loops=12, halting=False, window=1, use_bias=True, reinject=True)
        ref = LT.looped_tiled_reference(x0, sig, plen, real, thr, w, **kw)[0]
        ref_ms = median_ms(lambda x: LT.looped_tiled_reference(x, sig, plen, real, thr, w, **kw), [x0])
        count, _ = LT.key_tiles(sig, plen, 64, 64, window=1)
        for tile in (32, 64):
            for warps in (4, 8):
                kern = LT.loop_tile_kernel.variant(num_worker_warps=warps)
                run = lambda x: LT.looped_tiled_cutile(x, sig, plen, real, thr, w, tile=tile, kernel=kern, **kw)  # noqa: E731
                err = float((run(x0)[0] - ref)[real].abs().max() / ref[real].abs().max())
                rows.append({"B": B, "T": T, "tile": tile, "warps": warps, "ms": median_ms(run, [x0]),
                             "reference_ms": ref_ms, "rel_err": err,
                             "key_tiles_mean_at_64": float(count.float().mean()), "query_tiles_at_64": count.shape[1]})
                print(rows[-1], flush=True)
    table("tiled looped block, L=12 (ms)", ["B", "T", "tile", "warps", "ms", "reference ms", "rel err", "key tiles"],
          [[r["B"], r["T"], r["tile"], r["warps"], r["ms"], r["reference_ms"], r["rel_err"], r["key_tiles_mean_at_64"]]
           for r in rows])
    out = args.out or None
    print(f"wrote {record('tiled-sweep-' + device_kind(), {'rows': rows}, out=out)}")


if __name__ == "__main__":
    main()
