"""Inputs for the kernels, as the model feeds them: shared by the system's kernel cases (which
the verifier's differential checks draw from) and the tests.

Each `make_*(shape, seed, kind)` returns (args, kwargs) for the kernel's host wrapper and its
reference (same signature). kind: 'random'; 'extreme' (+-inf and +-1e30 logits, whole rows
impossible); 'arange' (distinct, ordered values, to see every element land where it belongs).
"""
from __future__ import annotations

import math

import torch

from kernels import looped_tiled
from kernels.looped_block import Weights

from .data import make_batch, problems
from .positions import prompt_length, significance
from .tokens import ADDITION

# each dim's range for drawn shapes: several tiles of every tiled dimension (64-row blocks,
# vocabularies padded past one power of two, state widths beyond one 128-column tile)
HALTING_DIMS = {"M": (1, 300), "V": (2, 1500), "D": (1, 300)}
# (head sizes up to the largest the attention kernel takes). `flags` is no shape: a bit mask of
# the looped block's options (halting, bias, bidirectional prompt, re-injection, step embedding),
# drawn like a dim so that the probes' top of range (31) runs every option on at once
ATTENTION_DIMS = {"B": (1, 3), "H": (1, 4), "T": (1, 160), "D": (16, 128)}
LOOPED_DIMS = {"B": (1, 8), "T": (3, 128), "D": (64, 128), "H": (2, 4), "V": (14, 14), "flags": (0, 31)}
# the tiled looped block: rows past one 64-row tile, up to four of them (a ragged last one)
TILED_DIMS = {"B": (1, 2), "T": (3, 200), "D": (64, 128), "H": (2, 4), "V": (14, 14), "flags": (0, 31)}
# the packed attention mask: groups of R rows (a power of two, as the looped block packs them;
# drawn values are rounded up), per-head bias tables or none
MASK_DIMS = {"G": (1, 4), "R": (16, 128), "H": (1, 4)}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_halting(shape: dict, seed: int, kind: str = "random"):
    """(logits (M, V), new_state (M, D), state (M, D), active (M,), steps (M,), threshold (M,))."""
    g = _gen(seed)
    M, V, D = shape["M"], shape["V"], shape["D"]
    if kind == "arange":
        logits = (torch.arange(M * V, dtype=torch.float32).view(M, V) % 11)
        state = torch.arange(M * D, dtype=torch.float32).view(M, D)
        args = (logits, -state - 1, state, torch.arange(M) % 3 != 0, torch.arange(M, dtype=torch.int32),
                torch.zeros(M))
        return args, {}
    logits = torch.randn(M, V, generator=g) * 4
    if kind == "extreme":
        specials = torch.tensor([-math.inf, math.inf, 1e30, -1e30])
        pick = torch.rand(M, V, generator=g) < 0.2
        logits = torch.where(pick, specials[torch.randint(0, 4, (M, V), generator=g)], logits)
        logits[torch.rand(M, generator=g) < 0.1] = -math.inf              # whole rows impossible
        for i, row in enumerate(_extreme_rows(V)[:M]):
            logits[i] = row
    args = (logits, torch.randn(M, D, generator=g), torch.randn(M, D, generator=g),
            torch.rand(M, generator=g) < 0.7, torch.randint(0, 9, (M,), generator=g, dtype=torch.int32),
            torch.rand(M, generator=g) * 2)
    return args, {}


def _extreme_rows(V: int) -> list[torch.Tensor]:
    """Rows where a careless softmax makes NaN or halts wrongly: nothing possible, some columns
    impossible, all huge and equal, one huge, one or two +inf, all -1e30, one possible token."""
    base = torch.linspace(-2, 2, V)
    rows = [torch.full((V,), -math.inf), base.clone(), torch.full((V,), 1e30), base.clone(), base.clone(),
            base.clone(), torch.full((V,), -1e30), torch.full((V,), -math.inf)]
    rows[1][V // 2:] = -math.inf
    rows[3][0] = 1e30
    rows[4][0] = math.inf
    rows[5][:2] = math.inf
    rows[7][min(1, V - 1)] = 0.0
    return rows


def addition_rows(B: int, digits: int, fmt: str, seed: int):
    """(idx, sig, plen) of B addition problems of 1..digits digits, the first of exactly `digits`
    (so that a shape's T is what it asks for: the last tile of every row dimension is reached)."""
    b = make_batch(problems(1, digits, digits, seed=seed) + problems(B - 1, 1, digits, seed=seed), fmt)
    return b.idx, significance(b.idx, ADDITION, fmt), b.prompt_len


def _digits_for(T: int) -> int:
    """Operand digits whose problems fill at most T tokens (a + b = sum$ as input: 3 * digits + 3)."""
    return max(1, (T - 3) // 3)


def make_attention(shape: dict, seed: int, kind: str = "random"):
    """(q, k, v (B, H, T, HD), sig (B, T), plen (B,), bias (H, 2*clip+2) or None), options."""
    g = _gen(seed)
    fmt = "normal" if seed % 2 else "reversed"
    idx, sig, plen = addition_rows(shape["B"], _digits_for(shape["T"]), fmt, seed)
    B, T = idx.shape
    H, HD = shape["H"], next(p for p in (16, 32, 64, 128) if p >= min(shape["D"], 128))   # powers of two
    q, k, v = (torch.randn(B, H, T, HD, generator=g) for _ in range(3))
    if kind == "extreme":
        q = q * 30                                                   # near one-hot softmax rows
    clip = 1 + seed % 4
    bias = torch.randn(H, 2 * clip + 2, generator=g) if seed % 3 else None
    if kind == "extreme" and bias is not None:
        bias = bias - 200.0        # every score far below exp's range: softmax is shift-invariant, the kernel must be
    window = (None, 0, 1, 3)[seed // 3 % 4]     # apart from clip: windows below, at and above it
    return (q, k, v, sig, plen, bias), {"window": window, "clip": clip, "prefix": bool(seed % 5 == 1)}


def random_weights(D: int, H: int, V: int, loops: int, g: torch.Generator, dtype=torch.float32) -> Weights:
    r = lambda *s, scale=0.05: (torch.randn(*s, generator=g) * scale)  # noqa: E731
    one = lambda: 1 + r(D, scale=0.1)  # noqa: E731
    return Weights(one(), r(D), r(3 * D, D).to(dtype), r(D, D).to(dtype), one(), r(D), r(4 * D, D).to(dtype), r(4 * D),
                   r(D, 4 * D).to(dtype), r(D), one(), r(D), r(V, D, scale=1.0).to(dtype),
                   r(H, 8, scale=1.0), r(max(1, loops), D).to(dtype))


def make_looped(shape: dict, seed: int, kind: str = "random", max_t: int = 128):
    """(x0 (B, T, D), sig, plen, real (B, T), thr (B, T), Weights), options: all loops of a random block."""
    g = _gen(seed)
    fmt = "normal" if seed % 2 else "reversed"
    idx, sig, plen = addition_rows(shape["B"], _digits_for(min(shape["T"], max_t)), fmt, seed)
    B, T = idx.shape
    D, V = 64 if shape["D"] < 96 else 128, len(ADDITION)          # powers of two the kernel holds
    H = 2 if shape["H"] < 3 else 4                                # head sizes 32 or 16..64
    loops = 1 + seed % 5
    w = random_weights(D, H, V, loops - seed % 3, g)    # step table rows: sometimes fewer than the loops
                                                        # (past its rows, a loop reuses the last one)
    real = idx != ADDITION.pad_id
    thr = torch.rand(B, T, generator=g) * 1.5
    if kind == "extreme":       # attention scores of ~100 (exp overflows unless shifted), one loop: at
        w = w._replace(qkv=w.qkv * 20)             # near one-hot attention, loops amplify rounding
        loops = 1
    bits = shape.get("flags")
    flag = lambda i, by_seed: bool(bits >> i & 1) if bits is not None else by_seed  # noqa: E731
    kw = {"loops": loops, "halting": flag(0, bool(seed % 2)) or kind == "extreme", "min_loops": 1 + seed % 3,
          "window": (None, 1)[seed % 2], "clip": 3, "use_bias": flag(1, bool(seed % 3)),
          "prefix": flag(2, seed % 4 == 1), "reinject": flag(3, seed % 5 != 2), "step_emb": flag(4, seed % 7 == 3)}
    return (torch.randn(B, T, D, generator=g), sig, plen, real, thr, w), kw


def make_tiled(shape: dict, seed: int, kind: str = "random"):
    """The looped block's inputs at any length (the tiled kernel has no row limit). Every third
    seed cuts the rows to an exact multiple of the query tile (16, 32 or 64 rows): no ragged last
    tile, the boundary a grid of cdiv(T, tile) blocks must not overrun."""
    (x0, sig, plen, real, thr, w), kw = make_looped(shape, seed, kind, max_t=shape["T"])
    T = x0.shape[1]
    if seed % 3 == 0 and T >= 16:
        tile = min(looped_tiled.TILE, 1 << (T.bit_length() - 1))   # the kernel's tile at the cut length
        T = T // tile * tile
        x0, sig, real, thr = x0[:, :T].contiguous(), sig[:, :T].contiguous(), real[:, :T], thr[:, :T]
        plen = plen.clamp(max=T)
    return (x0, sig, plen, real, thr, w), kw


def model_inputs(idx: torch.Tensor, fmt: str):
    """(sig, plen, real) of token rows, as the model computes them."""
    return significance(idx, ADDITION, fmt), prompt_length(idx, ADDITION), idx != ADDITION.pad_id


def make_mask(shape: dict, seed: int, kind: str = "random"):
    """(sig, pos, seq, plen (G, R) int32, bias (H, 2*clip+2) or None), options: arbitrary rows
    (non-digits, empty slots, prompts of any length), so every branch of the rule is taken."""
    g = _gen(seed)
    G, R, H = shape["G"], 1 << max(4, (shape["R"] - 1).bit_length()), shape["H"]
    clip = 1 + seed % 4
    r = lambda lo, hi: torch.randint(lo, hi, (G, R), generator=g, dtype=torch.int32)  # noqa: E731
    sig, pos, seq, plen = r(-1, 9), r(0, 40), r(-1, 3), r(0, 30)
    if kind == "arange":        # distinct table entries, every position its own: a misplaced element shows
        pos = torch.arange(G * R, dtype=torch.int32).view(G, R) % R
        bias = torch.arange(H * (2 * clip + 2), dtype=torch.float32).view(H, -1) + 1
    else:
        bias = torch.randn(H, 2 * clip + 2, generator=g) * (1e30 if kind == "extreme" else 1)
    return (sig, pos, seq, plen, None if seed % 4 == 3 and kind != "arange" else bias), \
        {"window": (None, 0, 1, 3)[seed // 4 % 4], "clip": clip, "prefix": bool(seed % 3 == 1)}
