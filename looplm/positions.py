"""Where a token is: absolute positions, digit significance, and the attention bias they make.

Significance is a digit's place value index inside its own number (0 = units), computed from
the token ids alone, so training, evaluation and generation can never disagree about it.
Non-digit tokens (+ = $ pad) get significance -1: "just below the units".

Schemes (ModelConfig.position):
    learned   absolute position embeddings added to x0
    rope      rotary embeddings on q and k, absolute positions
    nope      no position information at all (causal masking only)
    abacus    a learned embedding of each digit's significance added to x0 (McLeish et al. 2024),
              with a random offset per sequence while training
    relative  a learned per-head bias on attention logits indexed by the significance
              difference (clipped at +-relative_clip); no mask
    windowed  the same bias, and digit-to-digit attention only within +-window places;
              keys that are not digits stay visible, but their own queries are windowed too,
              so an operator cannot relay a far digit to everyone

The mask and bias rules themselves live once, with the kernels that must obey them:
`kernels.attention.attention_mask`, `bias_bucket` and `bias_matrix`.
"""
from __future__ import annotations

import torch

from .tokens import EQUALS, PLUS, Vocab

N_DIGITS = 10  # digits are token ids 0..9 in the addition vocabulary


def significance(idx: torch.Tensor, vocab: Vocab, fmt: str, operators_top: bool = False) -> torch.Tensor:
    """(B, T) place value of each digit token within its number; -1 for non-digits.

    reversed: the i-th digit of a run has significance i (least significant first).
    normal:   a prompt run of length n gives n-1 ... 0; answer digits (after '=') count down
              from max(operand lengths), the answer's padded length minus one, which the
              prompt alone determines (so generation and teacher forcing agree).
    operators_top (normal order): '+' and '=' take that top significance too, as if they sat in
              the answer's carry-out column. '=' predicts the carry-out digit; as a non-digit (-1)
              its windowed queries see only the units column, so the top column's carry had to be
              relayed down through every column to reach it (2n loops, a relay never learnt past
              the training lengths); at the top significance it reads column n-1. And a non-digit
              key is visible to every digit, so '+' could serve as a hub through which any column
              reads what the units column relayed; with both operators in a column, attention is
              local in significance everywhere.
    """
    if not vocab.is_addition:
        return torch.full_like(idx, -1)
    B, T = idx.shape
    is_digit = idx < N_DIGITS
    pos = torch.arange(T, device=idx.device).expand(B, T)
    # index of the last non-digit at or before each position (-1 if none)
    boundary = torch.where(~is_digit, pos, torch.full_like(pos, -1)).cummax(dim=1).values
    in_run = pos - boundary - 1                                   # 0-based index inside the run
    if fmt == "reversed":
        return torch.where(is_digit, in_run, torch.full_like(idx, -1))
    run = (~is_digit).cumsum(dim=1)                               # run id per position
    run_len = torch.zeros(B, T + 1, dtype=torch.long, device=idx.device)
    run_len.scatter_add_(1, run, is_digit.long())
    after_eq = (idx == vocab.id(EQUALS)).long().cumsum(dim=1) > 0
    prompt_max = torch.where(after_eq, 0, run_len.gather(1, run)).amax(dim=1, keepdim=True)
    length = torch.where(after_eq, prompt_max + 1, run_len.gather(1, run))
    sig = torch.where(is_digit, length - 1 - in_run, torch.full_like(idx, -1))
    if operators_top:
        op = (idx == vocab.id(EQUALS)) | (idx == vocab.id(PLUS))
        sig = torch.where(op, prompt_max.expand_as(sig), sig)
    return sig


def prompt_length(idx: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """(B,) tokens up to and including the first '=' (0 when there is none)."""
    if not vocab.is_addition:
        return torch.zeros(idx.shape[0], dtype=torch.long, device=idx.device)
    eq = idx == vocab.id(EQUALS)
    first = torch.where(eq.any(dim=1), eq.int().argmax(dim=1) + 1, torch.zeros_like(eq[:, 0], dtype=torch.long))
    return first.long()


def rope_tables(T: int, head_dim: int, device, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (T, head_dim/2) for rotary embeddings."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    ang = torch.arange(T, device=device, dtype=torch.float32)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, T, hd) by position-dependent angles."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    c, s = cos.to(x.dtype), sin.to(x.dtype)
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)
