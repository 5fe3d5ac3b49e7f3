"""The model's side of the persistent looped-block kernel: which models and policies it can
run, the shared block's weights as the kernel takes them, and one call for all loops.

The kernel itself (kernels/looped_block.py) takes tensors only; this module knows the model.
"""
from __future__ import annotations

import torch

from kernels import dispatch
from kernels.looped_block import Weights

from .config import HaltingConfig
from .positions import prompt_length


def _packed(tensors: list[torch.Tensor], dtype: torch.dtype) -> list[torch.Tensor]:
    """Fresh contiguous copies of `tensors` in `dtype`: views of one buffer made by one cat (and
    one cast), where a copy each was a kernel each (15 of the ~70 small launches around the
    looped kernels). Each view starts at a multiple of 16 elements (cuTile's TMA wants 16-byte
    aligned bases): segments are padded to 16 elements, from one shared zero tensor."""
    sizes = [t.numel() for t in tensors]
    padded = [-(-n // 16) * 16 for n in sizes]
    zeros = tensors[0].new_zeros(15) if any(p > n for n, p in zip(sizes, padded)) else None
    parts = []
    for t, n, p in zip(tensors, sizes, padded):
        parts.append(t.detach().reshape(-1))
        if p > n:
            parts.append(zeros[:p - n])
    buf = torch.cat(parts)          # one kernel for same-dtype inputs; cat into another dtype copies each
    buf = buf.to(dtype)             # a no-op where the dtype matches (cat made the copy)
    offsets = [0]
    for p in padded[:-1]:
        offsets.append(offsets[-1] + p)
    return [buf[o:o + n].view(t.shape) for t, o, n in zip(tensors, offsets, sizes)]


def weights_of(model, dtype=torch.bfloat16) -> Weights:
    """The shared block's weights from a tied LoopLM, matrices in `dtype` (norms, biases fp32).
    Always fresh copies, never views of the parameters (also where the dtype already matches:
    the emulator's fp32 run behaves like the GPU's bf16 one), made on every call: a cache keyed
    on tensor versions went stale under the fused AdamW (which does not bump `_version`). The
    copies are views of two buffers, one per dtype (`_packed`)."""
    blk = model.blocks[0]
    H = blk.attn.n_head
    lin1, _, lin2, _ = blk.mlp
    dev = model.wte.weight.device
    bias = blk.attn.rel_bias if blk.attn.rel_bias is not None else torch.zeros(H, 1, device=dev)
    step = model.step_emb.weight if model.step_emb is not None else torch.zeros(1, model.wte.weight.shape[1], device=dev)
    ln1w, ln1b, ln2w, ln2b, b1, b2, lnfw, lnfb, bias = _packed(
        [blk.ln1.weight, blk.ln1.bias, blk.ln2.weight, blk.ln2.bias, lin1.bias, lin2.bias, model.ln_f.weight,
         model.ln_f.bias, bias], torch.float32)
    qkv, proj, w1, w2, wte, step = _packed(
        [blk.attn.qkv.weight, blk.attn.proj.weight, lin1.weight, lin2.weight, model.wte.weight, step], dtype)
    return Weights(ln1w, ln1b, qkv, proj, ln2w, ln2b, w1, b1, w2, b2, lnfw, lnfb, wte, bias, step)


def fusable(model, idx: torch.Tensor, policy: HaltingConfig) -> bool:
    """One launch can run this model, shape and halting policy (else the per-loop path runs)."""
    m = model.config.model
    B, T = idx.shape
    return (m.tied and m.reinject != "adapter" and m.position != "rope" and policy.mode != "gate"
            and not m.answer_isolated and not m.downward_window          # masks no kernel takes
            and dispatch.looped_block_supported(B, T, m.n_embd, m.n_head, m.vocab_size))


def looped_args(model, idx: torch.Tensor, loops: int, policy: HaltingConfig) -> tuple[tuple, dict]:
    """(x0, sig, plen, real, thr, w), options: the looped-block kernels' arguments for this model,
    batch and policy (`dispatch.looped_block(*args, **options)`). On CPU tensors (the emulator)
    the weights stay fp32, so the emulated kernel is compared with the reference at fp32
    precision; on the GPU they are bf16 (tensor cores)."""
    m = model.config.model
    sig = model.significance(idx)
    halting = policy.mode != "fixed"
    thr = model.thresholds(idx, policy) if halting else torch.zeros(idx.shape, device=idx.device)
    w = weights_of(model, torch.bfloat16 if idx.is_cuda else torch.float32)
    args = (model.embed(idx, sig), sig, prompt_length(idx, model.vocab), idx != model.vocab.pad_id, thr, w)
    return args, dict(loops=loops, halting=halting, min_loops=policy.min_loops,
                      window=m.window if m.position == "windowed" else None, clip=m.relative_clip,
                      use_bias=m.position in ("relative", "windowed"), prefix=m.prefix_bidirectional,
                      reinject=m.reinject == "add", step_emb=m.step_embedding)


def fused_forward(model, idx: torch.Tensor, loops: int, policy: HaltingConfig):
    """All loops in one kernel launch -> (logits (B, T, V), steps (B, T), block-token
    applications), or None where `fusable` says no. Call where dispatch chose a kernel backend."""
    if not fusable(model, idx, policy):
        return None
    args, options = looped_args(model, idx, loops, policy)
    logits, steps = dispatch.looped_block(*args, **options)
    real = args[3]
    # (steps * real), not steps[real]: a boolean index waits for the GPU, which a CUDA graph cannot capture
    return logits, steps, (steps * real).sum()
