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


def entropy(logits: torch.Tensor) -> torch.Tensor:
    if backend(logits) == "cutile" and halting.supported(logits.shape[-1]):
        return halting.entropy_cutile(logits)
    return halting.entropy_reference(logits)


def halting_update(logits, new_state, state, active, steps, threshold):
    if backend(logits) == "cutile" and halting.supported(logits.shape[-1]):
        return halting.halting_update_cutile(logits, new_state, state, active, steps, threshold)
    return halting.halting_update_reference(logits, new_state, state, active, steps, threshold)


def attention_on_cutile(q: torch.Tensor) -> bool:
    return backend(q) == "cutile"


def loop_attention(q, k, v, sig, plen, bias, *, window, clip, prefix):
    return attention.loop_attention_cutile(q, k, v, sig, plen, bias, window=window, clip=clip, prefix=prefix)


_WEIGHTS: dict = {}


def looped_inference(model, idx: torch.Tensor, loops: int, policy):
    """All loops in one persistent cuTile launch, if this model, shape and policy allow it;
    else None (the caller runs the per-loop path). Returns (logits, steps, Halting)."""
    m = model.config.model
    B, T = idx.shape
    if (backend(idx) != "cutile" or not m.tied or m.reinject == "adapter" or m.position == "rope"
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
    key = (id(model), model.blocks[0].attn.qkv.weight._version, model.wte.weight._version)
    if _WEIGHTS.get("key") != key:                    # bf16 copies of the shared weights, once
        _WEIGHTS.update(key=key, w=looped_block.weights_of(model))
    logits, steps = looped_block.looped_block_cutile(
        x0, sig, prompt_length(idx, model.vocab), real.sum(dim=1), thr, _WEIGHTS["w"], loops=loops,
        halting=halting, min_loops=policy.min_loops, window=m.window if m.position == "windowed" else None,
        clip=m.relative_clip, use_bias=m.position in ("relative", "windowed"), prefix=m.prefix_bidirectional,
        reinject=m.reinject == "add", step_emb=m.step_embedding)
    halt = Halting(steps, torch.empty(0, B, T, device=idx.device), steps[real].sum(), real.sum() * loops)
    return logits, steps, halt
