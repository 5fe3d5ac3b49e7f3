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


def weights_of(model, dtype=torch.bfloat16) -> Weights:
    """The shared block's weights from a tied LoopLM, matrices in `dtype` (norms, biases fp32).
    Always fresh copies, never views of the parameters (also where the dtype already matches:
    the emulator's fp32 run behaves like the GPU's bf16 one), made on every call: a cache keyed
    on tensor versions went stale under the fused AdamW (which does not bump `_version`)."""
    blk = model.blocks[0]
    H = blk.attn.n_head
    lin1, _, lin2, _ = blk.mlp
    dev = model.wte.weight.device
    bias = blk.attn.rel_bias if blk.attn.rel_bias is not None else torch.zeros(H, 1, device=dev)
    step = model.step_emb.weight if model.step_emb is not None else torch.zeros(1, model.wte.weight.shape[1], device=dev)
    f = lambda t: t.detach().to(torch.float32, copy=True)  # noqa: E731
    m = lambda t: t.detach().to(dtype, copy=True)  # noqa: E731
    return Weights(f(blk.ln1.weight), f(blk.ln1.bias), m(blk.attn.qkv.weight), m(blk.attn.proj.weight),
                   f(blk.ln2.weight), f(blk.ln2.bias), m(lin1.weight), f(lin1.bias), m(lin2.weight), f(lin2.bias),
                   f(model.ln_f.weight), f(model.ln_f.bias), m(model.wte.weight), f(bias), m(step))


def fusable(model, idx: torch.Tensor, policy: HaltingConfig) -> bool:
    """One launch can run this model, shape and halting policy (else the per-loop path runs)."""
    m = model.config.model
    B, T = idx.shape
    return (m.tied and m.reinject != "adapter" and m.position != "rope" and policy.mode != "gate"
            and not m.answer_isolated and not m.downward_window          # masks no kernel takes
            and dispatch.looped_block_supported(B, T, m.n_embd, m.n_head, m.vocab_size))


def fused_forward(model, idx: torch.Tensor, loops: int, policy: HaltingConfig):
    """All loops in one kernel launch -> (logits (B, T, V), steps (B, T), block-token
    applications), or None where `fusable` says no. Call where dispatch chose a kernel backend.
    On CPU tensors (the emulator) the weights stay fp32, so the emulated kernel is compared with
    the reference at fp32 precision; on the GPU they are bf16 (tensor cores)."""
    if not fusable(model, idx, policy):
        return None
    m = model.config.model
    sig = model.significance(idx)
    x0 = model.embed(idx, sig)
    real = idx != model.vocab.pad_id
    halting = policy.mode != "fixed"
    thr = model.thresholds(idx, policy) if halting else torch.zeros(idx.shape, device=idx.device)
    w = weights_of(model, torch.bfloat16 if idx.is_cuda else torch.float32)
    logits, steps = dispatch.looped_block(
        x0, sig, prompt_length(idx, model.vocab), real, thr, w, loops=loops,
        halting=halting, min_loops=policy.min_loops, window=m.window if m.position == "windowed" else None,
        clip=m.relative_clip, use_bias=m.position in ("relative", "windowed"), prefix=m.prefix_bidirectional,
        reinject=m.reinject == "add", step_emb=m.step_embedding)
    # (steps * real), not steps[real]: a boolean index waits for the GPU, which a CUDA graph cannot capture
    return logits, steps, (steps * real).sum()
