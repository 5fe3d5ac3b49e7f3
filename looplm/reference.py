"""One loop of the shared block written out from its definition (pre-LN attention + MLP),
with the block's own weights: the independent reference the block-parity check compares with."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kernels.attention import bias_matrix


def reference_block(model, ctx, x: torch.Tensor) -> torch.Tensor:
    """x (B, T, D) -> the block's output, from LayerNorm, matrix products and softmax alone."""
    block = model.blocks[0]
    T = x.shape[1]
    mask = ctx.allowed if ctx.allowed is not None else torch.ones(T, T, dtype=torch.bool).tril()[None, None]
    bias = bias_matrix(block.attn.rel_bias, ctx.bucket) if ctx.bucket is not None else None
    if ctx.rope is not None:
        raise ValueError("the reference block has no rotary embedding")
    h = F.layer_norm(x, (x.shape[-1],), block.ln1.weight, block.ln1.bias)
    B, T, C = h.shape
    H = block.attn.n_head
    q, k, v = (h @ block.attn.qkv.weight.T).split(C, dim=-1)
    q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
    if bias is not None:
        att = att + bias
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C) @ block.attn.proj.weight.T
    x = x + y
    h2 = F.layer_norm(x, (C,), block.ln2.weight, block.ln2.bias)
    lin1, _, lin2, _ = block.mlp
    return x + F.gelu(h2 @ lin1.weight.T + lin1.bias, approximate="tanh") @ lin2.weight.T + lin2.bias
