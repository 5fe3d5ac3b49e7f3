"""Training: AdamW, warmup + cosine, clipping, bf16 autocast on GPU, a JSONL trace, checkpoints.

    python -m looplm.train [--config FILE] [--out DIR] [--max-iters N] [--device cpu|cuda]

runs one process; under `torchrun --nproc_per_node N -m looplm.train ...` every process trains
one data-parallel replica (see looplm/distributed.py). `looplm train` is the same with the
spec's gate in front.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from . import checkpoint
from .config import Config, TrainConfig
from .data import CharCorpus, problems, train_batches
from .evaluate import score
from .model import LoopLM
from .tokens import ADDITION, Vocab


def pick_device(pref: str) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but no CUDA GPU is visible")
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def lr_at(step: int, t: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at max_iters."""
    if step < t.warmup_iters:
        return t.lr * (step + 1) / t.warmup_iters
    progress = (step - t.warmup_iters) / max(1, t.max_iters - t.warmup_iters)
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def loops_at(step: int, cfg: Config, rng: random.Random) -> int:
    """Training depth for this step: fixed, a curriculum stage, or Huginn-style random."""
    t = cfg.train
    if t.depth == "curriculum":
        stage = min(len(t.curriculum) - 1, step * len(t.curriculum) // t.max_iters)
        return t.curriculum[stage]
    if t.depth == "random":
        return rng.randint(t.random_min_loops, t.random_max_loops)
    return cfg.model.n_loops


def optimizer(model: torch.nn.Module, t: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, biases or the bias tables)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "rel_bias" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "rel_bias" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.99),
                             fused=fused)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class Trace:
    """Append-only JSONL of training events (one object per line)."""

    def __init__(self, path: Optional[Path]):
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, **row: Any) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def vocab_for(cfg: Config) -> tuple[Config, Vocab, Optional[CharCorpus]]:
    if cfg.data.task == "chars":
        corpus = CharCorpus(cfg.data.text_path)
        return cfg.override(model={"vocab_size": len(corpus.vocab)}), corpus.vocab, corpus
    return cfg, ADDITION, None


def train(cfg: Config, out_dir: Optional[Path], *, resume: bool = False,
          on_eval: Optional[Callable[[dict], None]] = None,
          on_step: Optional[Callable[[int, float, float], None]] = None, dist=None) -> dict:
    """Train; return a summary. `on_step(step, loss, tokens_per_s)` and `on_eval(trace_row)`
    feed a progress display. With `dist` (a distributed.World) this is one DDP replica."""
    from .distributed import World
    world = dist or World.single()
    cfg, vocab, corpus = vocab_for(cfg)
    t = cfg.train
    device = world.device if dist else pick_device(t.device)
    torch.manual_seed(t.seed)
    model = LoopLM(cfg, vocab).to(device)
    opt = optimizer(model, t, fused=device.type == "cuda")
    start = 0
    ckpt_path = out_dir / "ckpt.pt" if out_dir else None
    if resume and ckpt_path and ckpt_path.exists():
        loaded = checkpoint.load(ckpt_path, map_location=str(device), expect_vocab=vocab)
        model.load_state_dict(loaded.model.state_dict())
        if loaded.optimizer:
            opt.load_state_dict(loaded.optimizer)
        start = int(loaded.meta["step"] or 0)
    net = world.wrap(model)
    bf16 = (t.dtype == "bfloat16") or (t.dtype == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    trace = Trace(out_dir / "trace.jsonl" if out_dir and world.is_main else None)
    rng = random.Random(t.seed * 31 + start)
    d = cfg.data
    if corpus is None:
        stream = train_batches(t.batch_size, d.min_digits, d.max_digits, d.format, t.seed + start,
                               rank=world.rank, world=world.size)
        val = problems(t.eval_problems, d.min_digits, d.max_digits, seed=t.seed + 99, split="val")
        val = val[world.rank::world.size]
    gen = torch.Generator().manual_seed(t.seed + 1000 * world.rank + start)
    t0, tokens, summary = time.perf_counter(), 0, {"reached_target_at_s": None, "reached_target_at_step": None}
    best, step, acc, val_loss, loss = 0.0, start, 0.0, float("nan"), float("nan")
    for step in range(start, t.max_iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, t)
        loops = world.agree(loops_at(step, cfg, rng))
        if corpus is None:
            batch = next(stream).to(device)
            idx, targets = batch.idx, batch.targets
        else:
            idx, targets = (x.to(device) for x in corpus.batch("train", t.batch_size, d.block_size, gen))
        with autocast():
            out = net(idx, targets, loops=loops)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        tokens += int((idx != vocab.pad_id).sum()) * world.size
        loss = out.loss.item()
        if on_step and world.is_main:
            on_step(step + 1, loss, tokens / (time.perf_counter() - t0))
        last = step == t.max_iters - 1
        if (step + 1) % t.eval_interval == 0 or last:
            with autocast():
                acc, val_loss = _validate(model, corpus, val if corpus is None else None, t, d, gen, device, world)
            elapsed = time.perf_counter() - t0
            loss = world.mean(loss)     # the global batch's loss, comparable with one process
            row = {"step": step + 1, "train_loss": loss, "val_loss": val_loss, "val_accuracy": acc,
                   "lr": lr_at(step, t), "loops": loops, "time_s": round(elapsed, 2),
                   "tokens_per_s": round(tokens / elapsed, 1)}
            trace.write(**row)
            if on_eval and world.is_main:
                on_eval(row)
            best = max(best, acc)
            reached = t.target_accuracy is not None and corpus is None and acc >= t.target_accuracy
            if reached and summary["reached_target_at_s"] is None:
                summary.update(reached_target_at_s=round(elapsed, 1), reached_target_at_step=step + 1)
            if ckpt_path and world.is_main:
                checkpoint.save(ckpt_path, model, step=step + 1, optimizer=opt.state_dict())
            out_of_time = t.time_limit_s is not None and elapsed > t.time_limit_s
            if world.agree(int(reached or out_of_time), op="max"):
                break
    elapsed = time.perf_counter() - t0
    summary.update(steps=step + 1, train_loss=loss, val_loss=val_loss, val_accuracy=acc, best_accuracy=best,
                   time_s=round(elapsed, 1), tokens_per_s=round(tokens / max(elapsed, 1e-9), 1),
                   peak_memory_mb=round(peak_memory_mb(device), 1), device=str(device), world_size=world.size,
                   params=model.num_params(), checkpoint=str(ckpt_path) if ckpt_path else None)
    if world.ddp:
        # DDP keeps replicas identical only if every rank applied the same updates: prove it
        digests = world.gather(weights_digest(model))
        summary.update(replica_digests=digests, replicas_identical=len(set(digests)) == 1)
    return summary


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in state_dict order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _validate(model, corpus, val, t, d, gen, device, world) -> tuple[float, float]:
    """Held-out exact-match accuracy on the trained digit range, and the answer loss."""
    model.eval()
    try:
        if corpus is not None:
            with torch.no_grad():
                x, y = (z.to(device) for z in corpus.batch("val", t.batch_size, d.block_size, gen))
                return 0.0, world.mean(float(model(x, y).loss))
        rows, loss = score(model, val, device=device)
        correct = world.sum(sum(r["correct"] for r in rows))
        total = world.sum(len(rows))
        return correct / max(1, total), world.mean(loss)
    finally:
        model.train()


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m looplm.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, help="JSON overrides: {\"model\": {...}, \"train\": {...}}")
    ap.add_argument("--out", type=Path, default=Path("runs/default"))
    ap.add_argument("--max-iters", type=int)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--gate", type=Path, metavar="SPEC", help="run SPEC's gating steps first (rank 0; all ranks obey)")
    ap.add_argument("--no-gate", action="store_true", help="skip the gate (needs --reason; recorded)")
    ap.add_argument("--reason", help="why the gate is bypassed")
    ap.add_argument("--rca", type=Path, help="RCA store for gate drafts and bypasses")
    return ap.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    cfg = Config.load(args.config) if args.config else Config()
    over = {k: v for k, v in (("max_iters", args.max_iters), ("device", args.device)) if v is not None}
    return cfg.override(train=over) if over else cfg


def run_gate_once(args: argparse.Namespace, cfg: Config, world) -> Optional[str]:
    """The gate runs on rank 0 only; every rank gets its verdict (None = go, else the reason)."""
    verdict = None
    if world is None or world.is_main:
        if args.no_gate:
            from verifier.gate import record_bypass
            rec = record_bypass(args.reason or "(no reason given)", "python -m looplm.train " + " ".join(sys.argv[1:]), args.rca)
            print(f"gate bypassed; recorded as {rec.id}", file=sys.stderr)
        elif args.gate:
            import dsl
            from verifier import Target
            from verifier.gate import gate
            v = gate(Target(spec=dsl.load(args.gate), config=cfg), spec_name=str(args.gate), rca_path=args.rca)
            verdict = None if v.passed else v.summary()
    return world.agree(verdict) if world is not None else verdict


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point for `python -m looplm.train` and torchrun; `--gate SPEC` gates on rank 0."""
    from .distributed import World, launched_by_torchrun
    args = parse_args(argv)
    if args.no_gate and not args.reason:
        print("error: --no-gate needs --reason TEXT", file=sys.stderr)
        return 2
    cfg = config_from(args)
    world = World.from_env(cfg.train.device) if launched_by_torchrun() else None
    try:
        refused = run_gate_once(args, cfg, world)
        if refused:
            print(f"[rank {world.rank if world else 0}] {refused}", file=sys.stderr)
            return 1
        summary = train(cfg, args.out, resume=args.resume, dist=world)
    finally:
        if world:
            world.close()
    if world is None or world.is_main:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
