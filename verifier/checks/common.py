"""What several checks share: a batch from the system's own pipeline, the real-token mask, and
the verifier's own float64 halting scores (independent of the system's implementation)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional

import torch

from ..target import Target


def tensors(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(idx, targets) of a batch object (attributes .idx, .targets) or pair."""
    if hasattr(batch, "idx") and hasattr(batch, "targets"):
        return batch.idx, batch.targets
    idx, targets = batch
    return idx, targets


def batch(target: Target, n: int = 16, offset: int = 1) -> Any:
    """One batch of n rows from the system's training pipeline (seeded from the target)."""
    return next(iter(target.need("data").train_batches(n, target.seed + offset)))


def pad_id(target: Target) -> int:
    lay = target.design.layout
    return target.need("data").encode(lay.pad)[0] if lay is not None else -1


def ignore_index(target: Target) -> int:
    """The target of positions that carry no loss (a layout-free corpus: torch's default, which
    no real target takes)."""
    lay = target.design.layout
    return lay.ignore_index if lay is not None else -100


def target_loss(target: Target, logits: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of logits (B, T, V) against targets (B, T), in float32, over the
    positions the declared layout gives a target: the verifier's own statement of the loss."""
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                             ignore_index=ignore_index(target))


def real_tokens(target: Target, idx: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: positions holding a token, not padding."""
    return idx != pad_id(target)


def score64(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """(..., V) -> (...) float64 halting score: prediction entropy in nats, or the top probability."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    if kind == "entropy":
        p = logp.exp()
        return -(torch.where(p > 0, p * logp, torch.zeros_like(p))).sum(-1)
    if kind == "max_prob":
        return logp.exp().amax(-1)
    raise ValueError(f"no score {kind!r}")


def halts(score: torch.Tensor, threshold: float, when: str) -> torch.Tensor:
    return score < threshold if when == "below" else score > threshold


def extremes(when: str) -> tuple[float, float]:
    """(a threshold every token halts at, one no token halts at) for a score direction
    (entropy >= 0 and probabilities lie in [0, 1]; a learned gate's P(halt) too)."""
    return (1e9, -1.0) if when == "below" else (-1.0, 2.0)


@contextlib.contextmanager
def counting_calls(modules) -> Iterator[list[int]]:
    """Count forward calls of each module while the block runs."""
    calls = [0] * len(modules)
    handles = [m.register_forward_hook(lambda mod, a, out, i=i: calls.__setitem__(i, calls[i] + 1))
               for i, m in enumerate(modules)]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def output_dtypes() -> Iterator[set[str]]:
    """The floating dtypes of every module's tensor outputs while the block runs (a global
    forward hook: it sees modules built inside the block too, e.g. by the system's own loop)."""
    seen: set[str] = set()

    def hook(mod, args, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                seen.add(str(t.dtype).removeprefix("torch."))
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def dtype_problem(seen: set[str], declared: Optional[str], where: str) -> Optional[str]:
    """Why the module outputs `seen` contradict the declared compute dtype (None: they agree, or
    nothing is declared): a float32 run computes no half-precision output; a bfloat16 run some."""
    if declared is None or not seen:
        return None
    half = sorted(seen & {"bfloat16", "float16"})
    if declared == "float32" and half:
        return f"{where} computes in {', '.join(half)}, the design declares float32: a silent autocast"
    if declared != "float32" and declared not in seen:
        return f"{where} computes in {', '.join(sorted(seen))}, never {declared} as the design declares"
    return None


def to(x: Any, device: torch.device) -> Any:
    """Tensors (also inside tuples, lists and NamedTuples) moved to `device`."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(to(v, device) for v in x))
    if isinstance(x, (tuple, list)):
        return type(x)(to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: to(v, device) for k, v in x.items()}
    if callable(getattr(x, "to", None)):
        return x.to(device)
    return x
