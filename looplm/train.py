"""Training: AdamW, warmup + cosine, clipping, bf16 autocast on GPU, a JSONL trace, checkpoints.

`train(cfg, out_dir)` runs one process, or one data-parallel replica when given a
`distributed.World` (torchrun; see app/train.py for the entry point). Every optimizer step is
`train_step`, the function the verifier's training checks call too. The batch, the loop count
and the RNG of each step depend only on (seed, step), and checkpoints carry the RNG state, so
resuming from a checkpoint continues exactly where an uninterrupted run would be.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from . import checkpoint
from .config import Config, TrainConfig
from .data import CharCorpus, problems, train_batch
from .distributed import World
from .evaluate import score
from .model import LoopLM
from .provenance import device_name
from .tokens import ADDITION, Vocab


class TrainingError(Exception):
    """A run that cannot start or continue as asked (nothing to resume, already finished)."""


class TrainingInterrupted(Exception):
    """Ctrl-C: the run stopped early; a checkpoint of the last finished step was written."""

    def __init__(self, step: int, path: Optional[Path]):
        where = f"checkpoint at step {step}: {path}" if path else f"step {step}, no output directory to save to"
        super().__init__(f"interrupted; {where}")
        self.step, self.path = step, path


def pick_device(pref: str) -> torch.device:
    if pref == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device cuda asked for, but no CUDA GPU is visible")
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def lr_at(step: int, t: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr at max_iters."""
    if step < t.warmup_iters:
        return t.lr * (step + 1) / t.warmup_iters
    progress = (step - t.warmup_iters) / max(1, t.max_iters - t.warmup_iters)
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def loops_at(step: int, cfg: Config) -> int:
    """Training depth for this step: fixed, a curriculum stage, or Huginn-style random
    (drawn from a generator seeded by (seed, step), so every rank and a resumed run agree)."""
    t = cfg.train
    if t.depth == "curriculum":
        stage = min(len(t.curriculum) - 1, step * len(t.curriculum) // t.max_iters)
        return t.curriculum[stage]
    if t.depth == "random":
        return random.Random(t.seed * 31 + step).randint(t.random_min_loops, t.random_max_loops)
    return cfg.model.n_loops


def progressive_split(step: int, cfg: Config, L: int) -> tuple[int, int]:
    """(n, k) for the progressive loss (Bansal et al. 2022): n ~ U{0..L-1} loops without gradient,
    then k ~ U{1..L-n} with it, L the step's depth; seeded by (seed, step) as `loops_at`."""
    rng = random.Random(cfg.train.seed * 31 + step + 7919)
    n = rng.randint(0, L - 1)
    return n, rng.randint(1, L - n)


def optimizer(model: torch.nn.Module, t: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, biases or the bias tables)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "rel_bias" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "rel_bias" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.99),
                             fused=fused)


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, idx: torch.Tensor, targets: torch.Tensor,
               step: int, cfg: Config, *, net: Optional[torch.nn.Module] = None,
               autocast: Callable[[], Any] = contextlib.nullcontext) -> float:
    """One optimizer step, the one the training loop takes: the schedule's learning rate, the
    depth policy's loop count, forward, backward, clipping, update. `net` is the model as the
    step runs it (DDP-wrapped); the loss is returned."""
    t = cfg.train
    for g in opt.param_groups:
        g["lr"] = lr_at(step, t)
    L = loops_at(step, cfg)
    with autocast():
        # with weight 1 the full pass counts for nothing: left out
        loss = (net or model)(idx, targets, loops=L).loss if t.progressive < 1 else 0.0
        if t.progressive:
            # the state after n loops is a starting point, not something to learn through
            n, k = progressive_split(step, cfg, L)
            with torch.no_grad():
                start = (model.loop_state(idx, n), n) if n else None
            # DDP takes one forward per backward: after the full pass, this one runs unwrapped (DDP's
            # gradient hooks fire on each parameter's gradient summed over both passes, so its share
            # is all-reduced too); without a full pass, it is the wrapped one
            prog = (model if t.progressive < 1 else net or model)(idx, targets, loops=k, start=start).loss
            loss = (1 - t.progressive) * loss + t.progressive * prog
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if t.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
    opt.step()
    return float(loss.detach())


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


@dataclass
class Run:
    """Everything one training run holds between steps."""
    cfg: Config
    vocab: Vocab
    corpus: Optional[CharCorpus]
    model: LoopLM
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    world: World
    start: int
    ckpt: Optional[Path]
    trace: Trace
    val: list = field(default_factory=list)
    autocast: Callable[[], Any] = contextlib.nullcontext

    @property
    def device(self) -> torch.device:
        return self.world.device

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(idx, targets) of `step` on this rank, a function of (seed, step, rank) only."""
        t, d, w = self.cfg.train, self.cfg.data, self.world
        if self.corpus is None:
            b = train_batch(step, t.batch_size, d.min_digits, d.max_digits, d.format, t.seed, w.rank, w.size,
                            chain_share=d.chain_share)
            return b.idx.to(self.device, non_blocking=True), b.targets.to(self.device, non_blocking=True)
        gen = torch.Generator().manual_seed((t.seed * 1_000_003 + step) * w.size + w.rank)
        return tuple(x.to(self.device) for x in self.corpus.batch("train", t.batch_size, d.block_size, gen))

    def save(self, step: int) -> None:
        if self.ckpt and self.world.is_main:
            checkpoint.save(self.ckpt, self.model, step=step, optimizer=self.opt.state_dict(),
                            rng=torch.get_rng_state())


def setup(cfg: Config, out_dir: Optional[Path], resume: bool, dist: Optional[World]) -> Run:
    """Build the model and optimizer (from OUT/ckpt.pt with `resume`) and the run's plumbing."""
    world = dist or World.single(pick_device(cfg.train.device))
    cfg, vocab, corpus = vocab_for(cfg)
    t = cfg.train
    torch.manual_seed(t.seed)
    model = LoopLM(cfg, vocab).to(world.device)
    opt = optimizer(model, t, fused=world.device.type == "cuda")
    ckpt = out_dir / "ckpt.pt" if out_dir else None
    start = _resume(model, opt, ckpt, t, vocab, world.device) if resume else 0
    bf16 = (t.dtype == "bfloat16") or (t.dtype == "auto" and world.device.type == "cuda")
    run = Run(cfg, vocab, corpus, model, world.wrap(model), opt, world, start, ckpt,
              Trace(out_dir / "trace.jsonl" if out_dir and world.is_main else None),
              autocast=(lambda: torch.autocast(world.device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext)
    if corpus is None:
        d = cfg.data
        run.val = problems(t.eval_problems, d.min_digits, d.max_digits, seed=t.seed + 99, split="val")[world.rank::world.size]
    return run


def _resume(model, opt, ckpt: Optional[Path], t: TrainConfig, vocab: Vocab, device) -> int:
    """Load OUT/ckpt.pt into the model and optimizer; the step to continue from."""
    if ckpt is None or not ckpt.exists():
        raise TrainingError(f"nothing to resume: no checkpoint at {ckpt} (leave out --resume to start a new run)")
    loaded = checkpoint.load(ckpt, map_location=str(device), expect_vocab=vocab)
    start = int(loaded.meta["step"] or 0)
    if start >= t.max_iters:
        raise TrainingError(f"{ckpt}: the run already finished ({start} of max_iters {t.max_iters} steps); "
                            f"raise --max-iters to train further")
    model.load_state_dict(loaded.model.state_dict())
    if loaded.optimizer:
        opt.load_state_dict(loaded.optimizer)
    if loaded.rng is not None:
        torch.set_rng_state(loaded.rng)
    return start


def train(cfg: Config, out_dir: Optional[Path], *, resume: bool = False, stop_after: Optional[int] = None,
          on_eval: Optional[Callable[[dict], None]] = None,
          on_step: Optional[Callable[[int, float, float], None]] = None, dist: Optional[World] = None) -> dict:
    """Train; return a summary. `stop_after` ends this call after that many steps (the schedule
    still runs to max_iters: resume continues it). `on_step(step, loss, tokens_per_s)` and
    `on_eval(trace_row)` feed a progress display. Ctrl-C saves a checkpoint and raises
    TrainingInterrupted. With `dist` (a distributed.World) this is one DDP replica."""
    run = setup(cfg, out_dir, resume, dist)
    t = run.cfg.train
    end = t.max_iters if stop_after is None else min(t.max_iters, run.start + stop_after)
    clock = _Clock()
    state = {"step": run.start, "acc": 0.0, "best": 0.0, "val_loss": float("nan"), "loss": float("nan")}
    try:
        for step in range(run.start, end):
            idx, targets = run.batch(step)
            state["loss"] = train_step(run.model, run.opt, idx, targets, step, run.cfg, net=run.net, autocast=run.autocast)
            state["step"] = step + 1
            clock.tokens += int((idx != run.vocab.pad_id).sum()) * run.world.size
            if on_step and run.world.is_main:
                on_step(step + 1, state["loss"], clock.rate())
            if ((step + 1) % t.eval_interval == 0 or step + 1 == t.max_iters) and _eval_point(run, state, clock, on_eval):
                break
    except KeyboardInterrupt:
        run.save(state["step"])
        raise TrainingInterrupted(state["step"], run.ckpt) from None
    if state["step"] % t.eval_interval and state["step"] != t.max_iters:
        run.save(state["step"])                  # stopped between evals (stop_after): resumable
    return _summary(run, state, clock)


@dataclass
class _Clock:
    t0: float = field(default_factory=time.perf_counter)
    tokens: int = 0
    reached_at_s: Optional[float] = None
    reached_at_step: Optional[int] = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def rate(self) -> float:
        return self.tokens / max(self.elapsed(), 1e-9)


def _eval_point(run: Run, state: dict, clock: _Clock, on_eval) -> bool:
    """Validate, trace, checkpoint; True when training should stop (target reached, out of time)."""
    t = run.cfg.train
    with run.autocast():
        state["acc"], state["val_loss"] = _validate(run)
    step, elapsed = state["step"], clock.elapsed()
    state["loss"] = run.world.mean(state["loss"])     # the global batch's loss, comparable with one process
    row = {"step": step, "train_loss": state["loss"], "val_loss": state["val_loss"], "val_accuracy": state["acc"],
           "lr": lr_at(step - 1, t), "loops": loops_at(step - 1, run.cfg), "time_s": round(elapsed, 2),
           "tokens_per_s": round(clock.rate(), 1)}
    run.trace.write(**row)
    if on_eval and run.world.is_main:
        on_eval(row)
    state["best"] = max(state["best"], state["acc"])
    reached = t.target_accuracy is not None and run.corpus is None and state["acc"] >= t.target_accuracy
    if reached and clock.reached_at_s is None:
        clock.reached_at_s, clock.reached_at_step = round(elapsed, 1), step
    run.save(step)
    out_of_time = t.time_limit_s is not None and elapsed > t.time_limit_s
    return bool(run.world.agree(int(reached or out_of_time), op="max"))


def _summary(run: Run, state: dict, clock: _Clock) -> dict:
    elapsed = clock.elapsed()
    summary = {"reached_target_at_s": clock.reached_at_s, "reached_target_at_step": clock.reached_at_step,
               "steps": state["step"], "train_loss": state["loss"], "val_loss": state["val_loss"],
               "val_accuracy": state["acc"], "best_accuracy": state["best"], "time_s": round(elapsed, 1),
               "tokens_per_s": round(clock.rate(), 1), "peak_memory_mb": round(peak_memory_mb(run.device), 1),
               "device": str(run.device), "device_name": device_name(str(run.device)), "world_size": run.world.size, "params": run.model.num_params(),
               "checkpoint": str(run.ckpt) if run.ckpt else None}
    if run.world.ddp:
        # DDP keeps replicas identical only if every rank applied the same updates: prove it
        digests = run.world.gather(weights_digest(run.model))
        summary.update(replica_digests=digests, replicas_identical=len(set(digests)) == 1)
    return summary


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in state_dict order: equal iff the weights are bit-identical."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _validate(run: Run) -> tuple[float, float]:
    """Held-out exact-match accuracy on the trained digit range, and the answer loss."""
    model, world, t, d = run.model, run.world, run.cfg.train, run.cfg.data
    model.eval()
    try:
        if run.corpus is not None:
            gen = torch.Generator().manual_seed(t.seed + 7)
            with torch.no_grad():
                x, y = (z.to(run.device) for z in run.corpus.batch("val", t.batch_size, d.block_size, gen))
                return 0.0, world.mean(float(model(x, y).loss))
        rows, loss = score(model, run.val, device=run.device)
        correct = world.sum(sum(r["correct"] for r in rows))
        total = world.sum(len(rows))
        return correct / max(1, total), world.mean(loss)
    finally:
        model.train()
