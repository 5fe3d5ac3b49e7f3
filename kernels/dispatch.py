"""Pick the cuTile kernel or its PyTorch reference for each op.

cuTile is used when `cuda.tile` imports, the tensors are on a CUDA device, and the shape is one
the kernel supports; otherwise the reference runs. `LOOPLM_KERNELS=reference|cutile` forces one
(`cutile` raises if it cannot run, rather than silently falling back).
"""
from __future__ import annotations

import functools
import os

import torch

from . import attention, halting, looped_block


@functools.cache
def cutile_available() -> bool:
    try:
        import cuda.tile  # noqa: F401
    except Exception:  # any import failure means: no cuTile here
        return False
    return torch.cuda.is_available()


@torch.compiler.disable
def backend(t: torch.Tensor) -> str:
    """'cutile' or 'reference' for an op on tensor t."""
    forced = os.environ.get("LOOPLM_KERNELS", "").strip().lower()
    if forced == "reference":
        return "reference"
    ok = t.is_cuda and cutile_available()
    if forced == "cutile":
        if not ok:
            raise RuntimeError("LOOPLM_KERNELS=cutile, but cuda.tile or a CUDA tensor is missing")
        return "cutile"
    if forced:
        raise ValueError(f"LOOPLM_KERNELS must be 'reference' or 'cutile', not {forced!r}")
    return "cutile" if ok else "reference"


# The model asks `backend` once per forward, outside its loop, and passes the answer down: a
# decision made inside the loop would put an environment read (and a graph break under
# torch.compile) into every loop.

def entropy(logits: torch.Tensor, on_cutile: bool) -> torch.Tensor:
    if on_cutile and halting.supported(logits.shape[-1]):
        return halting.entropy_cutile(logits)
    return halting.entropy_reference(logits)


def halting_update(logits, new_state, state, active, steps, threshold, on_cutile: bool):
    if on_cutile and halting.supported(logits.shape[-1]):
        return halting.halting_update_cutile(logits, new_state, state, active, steps, threshold)
    return halting.halting_update_reference(logits, new_state, state, active, steps, threshold)


def loop_attention(q, k, v, sig, plen, bias, *, window, clip, prefix):
    return attention.loop_attention_cutile(q, k, v, sig, plen, bias, window=window, clip=clip, prefix=prefix)


def looped_inference(model, idx: torch.Tensor, loops: int, policy):
    """All loops in one persistent cuTile launch, if this model, shape and policy allow it;
    else None (the caller runs the per-loop path). Call only when `backend` said cutile.
    Returns (logits, steps, Halting)."""
    m = model.config.model
    B, T = idx.shape
    if (not m.tied or m.reinject == "adapter" or m.position == "rope"
            or policy.mode == "gate"
            or not looped_block.supported(B, T, m.n_embd, m.n_head, m.vocab_size)):
        return None
    from looplm.model import Halting
    from looplm.positions import prompt_length, significance
    sig = significance(idx, model.vocab, model.config.data.format)
    x0 = model.embed(idx, sig)
    real = idx != model.vocab.pad_id
    halting = policy.mode != "fixed"
    thr = model.thresholds(idx, policy) if halting else torch.zeros(idx.shape, device=idx.device)
    # bf16 copies of the shared weights, made on every call: a cache keyed on tensor versions went
    # stale under the fused AdamW (which does not bump `_version`) and validated old weights
    w = looped_block.weights_of(model)
    logits, steps = looped_block.looped_block_cutile(
        x0, sig, prompt_length(idx, model.vocab), real.sum(dim=1), thr, w, loops=loops,
        halting=halting, min_loops=policy.min_loops, window=m.window if m.position == "windowed" else None,
        clip=m.relative_clip, use_bias=m.position in ("relative", "windowed"), prefix=m.prefix_bidirectional,
        reinject=m.reinject == "add", step_emb=m.step_embedding)
    # (steps * real), not steps[real]: a boolean index waits for the GPU, which a CUDA graph cannot capture
    halt = Halting(steps, torch.empty(0, B, T, device=idx.device), (steps * real).sum(), real.sum() * loops)
    return logits, steps, halt
