"""Bench: data-parallel training throughput under torchrun, 1..N GPUs, the headline LoopLM
configuration at a fixed number of steps and a fixed per-GPU batch.

    python -m bench.ddp_gpu [--gpus 1,2,4] [--steps 200] [--out bench/results/ddp-KIND.json]

Also runs the same training as one plain process (no DDP) so DDP's own overhead on one GPU
is visible. scaling_efficiency[N] = tokens/s with N GPUs / (N x tokens/s with 1 GPU under DDP).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .common import record, table

from app.experiment import Experiment
from looplm.provenance import ROOT

HEADLINE = "looplm_reversed_all_loops"


def train_once(cfg: Path, out: Path, nproc: int | None) -> dict:
    """nproc None: one plain process; else torchrun with nproc ranks. Returns the summary."""
    base = ["-m", "app.train", "--config", str(cfg), "--out", str(out), "--no-gate", "--reason", "bench"]
    cmd = [sys.executable, *base] if nproc is None else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *base]
    env = {**os.environ, "NCCL_NVLS_ENABLE": "0", "OMP_NUM_THREADS": "4"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", default=None, help="GPU counts (default: 1..all, powers of two)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    n = torch.cuda.device_count()
    counts = [int(x) for x in args.gpus.split(",")] if args.gpus else [k for k in (1, 2, 4, 8) if k <= n]
    cfg_data = Experiment.load(ROOT / "experiments" / f"{HEADLINE}.json").config
    # a fixed step count, one eval at the end, no time limit
    cfg_data["train"].update(max_iters=args.steps, eval_interval=args.steps, time_limit_s=None)
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "c.json"
        cfg.write_text(json.dumps(cfg_data))
        runs["plain"] = train_once(cfg, Path(tmp) / "plain", None)
        for k in counts:
            runs[str(k)] = train_once(cfg, Path(tmp) / f"ddp{k}", k)
    one = runs[str(counts[0])]["tokens_per_s"] if counts[0] == 1 else None
    eff = {k: (runs[str(k)]["tokens_per_s"] / (k * one) if one else None) for k in counts}
    for name, s in runs.items():
        rows.append((name, s["world_size"], s["tokens_per_s"], s["time_s"], s["val_accuracy"],
                     s.get("replicas_identical", "-"), eff.get(int(name)) if name != "plain" else "-"))
    table(f"DDP training, headline LoopLM, {args.steps} steps, batch 512 per GPU",
          ("run", "GPUs", "tokens/s", "s", "val acc", "replicas identical", "scaling eff."), rows)
    kind = f"{torch.cuda.get_device_name(0).split()[1].lower()}x{n}" if n else "cpu"
    path = record(f"ddp-{kind}", {"steps": args.steps, "per_gpu_batch": 512, "config": cfg_data,
                                  "tokens_per_s": {k: v["tokens_per_s"] for k, v in runs.items()},
                                  "scaling_efficiency": {str(k): v for k, v in eff.items()},
                                  "ddp_overhead_1gpu": (1 - runs["1"]["tokens_per_s"] / runs["plain"]["tokens_per_s"])
                                  if "1" in runs else None, "runs": runs}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
