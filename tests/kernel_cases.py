"""Hypothesis strategies for kernel inputs, shared by the CPU tests (emulator, references) and the
GPU tests: shapes drawn from each kernel's dims in looplm.kernel_inputs (one place caps the sizes),
seeds, and input kinds. `bucketed` draws what sets a kernel's compile-time constants (tile sizes,
the flags the seed or the `flags` dim picks) from a few joint combinations, so a GPU run compiles
a handful of variants instead of one per example."""
from __future__ import annotations

import math

import torch

from hypothesis import strategies as st

from looplm import kernel_inputs as KI

CASES = {"halting": (KI.HALTING_DIMS, KI.make_halting), "attention": (KI.ATTENTION_DIMS, KI.make_attention),
         "looped": (KI.LOOPED_DIMS, KI.make_looped), "tiled": (KI.TILED_DIMS, KI.make_tiled)}
# What sets each kernel's compile-time constants, drawn jointly from a few combinations: each
# combination is one JIT compile per dtype on a GPU, so a cold GPU run stays within minutes.
#   halting   V -> BLOCK_V, D -> BLOCK_D, the seed -> the input's flags (every pairing: small kernel)
#   attention D -> the head size, T -> the tile, the seed -> window / bias / bidirectional prompt
#   looped    T -> the rows per block (T = 99 fills 128 rows: the 32-digit workload), D and H the
#             widths, flags -> halting, bias, re-injection, step embedding; the seed -> window.
#             Every option on with the window, then every option off without it: both sides of
#             every branch, in two compiles (each takes ~30 s on the H200)
#   tiled     the same options, at rows of five and four 64-row tiles (the last one ragged; longer
#             than the CPU draws, TILED_DIMS, which the emulator runs)
COMBOS = {"halting": [{"V": v, "D": d, "seed": s} for v in (14, 65, 1000) for d in (7, 64, 300) for s in range(4)],
          "attention": [{"D": 16, "T": 40, "seed": 1}, {"D": 32, "T": 150, "seed": 2}, {"D": 32, "T": 40, "seed": 3}],
          "looped": [{"T": 99, "D": 128, "H": 4, "flags": 31, "seed": 1}, {"T": 99, "D": 128, "H": 4, "flags": 0, "seed": 2}],
          "tiled": [{"T": 300, "D": 128, "H": 4, "flags": 31, "seed": 1}, {"T": 201, "D": 128, "H": 4, "flags": 0, "seed": 2}]}


@st.composite
def cases(draw, kernel: str, bucketed: bool = False, kinds=("random", "extreme")):
    """(args, kwargs, case) for `kernel` ('halting', 'attention', 'looped', 'tiled'); `bucketed` draws the
    compile-time choices from COMBOS, the other dims freely."""
    dims, make = CASES[kernel]
    fixed = dict(draw(st.sampled_from(COMBOS[kernel]))) if bucketed else {}
    seed = fixed.pop("seed") if bucketed else draw(st.integers(0, 2**31 - 1))
    shape = {d: fixed[d] if d in fixed else draw(st.integers(lo, hi)) for d, (lo, hi) in dims.items()}
    kind = draw(st.sampled_from(list(kinds)))
    args, kw = make(shape, seed, kind)
    return args, kw, {"shape": shape, "seed": seed, "kind": kind}


def entropy_oracle(logits: torch.Tensor) -> torch.Tensor:
    """float64 ground truth (same definition, double precision, via softmax/log_softmax)."""
    x = logits.double()
    posinf = torch.isposinf(x)
    n = posinf.sum(-1)
    finite = torch.where(posinf, torch.full_like(x, -math.inf), x)
    m = finite.amax(-1, keepdim=True)
    ok = torch.isfinite(m)
    z = torch.where(ok, finite - torch.where(ok, m, 0.0), torch.full_like(x, -math.inf))
    p = torch.softmax(z, dim=-1)
    h = -(torch.where(p > 0, p * torch.log_softmax(z, dim=-1), torch.zeros_like(p))).sum(-1)
    h = torch.where(ok.squeeze(-1), h, torch.full_like(h, math.log(x.shape[-1])))
    return torch.where(n > 0, torch.log(n.clamp_min(1).double()), h).clamp_min(0.0)
