"""Bench (GPU): training tokens/s of LoopLM-L vs GPT-L of the same width, bf16, side by side.
Same FLOPs per token (one block applied L times vs L blocks applied once): the ratio should be ~1.

    python -m bench.train_gpu [--width 128] [--loops 12] [--batch 512] [--steps 60]

Batches are generated before timing (fresh problems, cycled), so the figure is the model's.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.common import device_kind, record, table
from looplm.config import Config
from looplm.data import train_batches
from looplm.model import LoopLM
from looplm.tokens import ADDITION
from looplm.train import optimizer, train_step


def tokens_per_s(cfg: Config, batches, steps: int, warmup: int = 10) -> tuple[float, float]:
    """Tokens per second of the training loop's own step (looplm.train.train_step), bf16 autocast."""
    torch.manual_seed(0)
    model = LoopLM(cfg, ADDITION).cuda().train()
    opt = optimizer(model, cfg.train, fused=True)
    autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    tokens = 0
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0, tokens = time.perf_counter(), 0
        idx, tgt = batches[i % len(batches)]
        train_step(model, opt, idx, tgt, i, cfg, autocast=autocast)
        tokens += int((idx != ADDITION.pad_id).sum())
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return tokens / dt, dt / steps * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--loops", type=int, default=12)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", type=Path, help="default: bench/results/train-<device>.json")
    args = ap.parse_args()
    stream = train_batches(args.batch, 1, 4, "reversed", seed=0)
    batches = [(b.idx.cuda(), b.targets.cuda()) for b in (next(stream) for _ in range(16))]
    base = Config().override(model={"n_embd": args.width, "n_head": args.heads, "n_loops": args.loops})
    rows = {}
    for name, cfg in (("looplm", base), ("gpt", base.override(model={"tied": False, "reinject": "none"}))):
        tps, ms = tokens_per_s(cfg, batches, args.steps)
        params = LoopLM(cfg, ADDITION).num_params()
        rows[name] = {"tokens_per_s": tps, "ms_per_step": ms, "params": params}
    ratio = rows["looplm"]["tokens_per_s"] / rows["gpt"]["tokens_per_s"]
    table(f"training throughput, width {args.width}, L={args.loops}, batch {args.batch}, bf16",
          ["model", "params", "tokens/s", "ms/step"],
          [[f"LoopLM-{args.loops}", rows["looplm"]["params"], rows["looplm"]["tokens_per_s"], rows["looplm"]["ms_per_step"]],
           [f"GPT-{args.loops}L", rows["gpt"]["params"], rows["gpt"]["tokens_per_s"], rows["gpt"]["ms_per_step"]]])
    print(f"LoopLM / GPT tokens/s ratio: {ratio:.3f}")
    print(f"wrote {record('train-' + device_kind(), {'width': args.width, 'loops': args.loops, 'batch': args.batch, 'steps': args.steps, **rows, 'ratio_looplm_over_gpt': ratio}, out=args.out)}")


if __name__ == "__main__":
    main()
