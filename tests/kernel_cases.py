"""Hypothesis strategies for kernel inputs, shared by the CPU tests (emulator, references) and the
GPU tests: shapes drawn from each kernel's dims in looplm.kernel_inputs (one place caps the sizes),
seeds, and input kinds. `bucketed` draws what sets a kernel's compile-time constants (tile sizes,
the attention flags the seed picks) from a few values, so a GPU run compiles a handful of
variants instead of one per example."""
from __future__ import annotations

import math

import torch

from hypothesis import strategies as st

from looplm import kernel_inputs as KI

CASES = {"halting": (KI.HALTING_DIMS, KI.make_halting), "attention": (KI.ATTENTION_DIMS, KI.make_attention),
         "looped": (KI.LOOPED_DIMS, KI.make_looped)}
# dims and seeds that pick compile-time constants: V -> BLOCK_V, D -> BLOCK_D, T -> the attention
# tile, the seed -> window / bias / prefix / halting flags (see looplm.kernel_inputs)
BUCKETS = {"halting": {"V": [14, 65, 1000], "D": [7, 64, 300]},
           "attention": {"T": [40, 150], "D": [16, 32]},
           "looped": {"D": [128], "H": [4]}}
SEEDS = {"halting": [0, 1, 2, 3], "attention": [1, 2, 3], "looped": [1, 2]}   # the flags each kernel compiles for


@st.composite
def cases(draw, kernel: str, bucketed: bool = False, kinds=("random", "extreme")):
    """(args, kwargs, case) for `kernel` ('halting', 'attention', 'looped')."""
    dims, make = CASES[kernel]
    buckets = BUCKETS[kernel] if bucketed else {}
    shape = {d: draw(st.sampled_from(buckets[d]) if d in buckets else st.integers(lo, hi)) for d, (lo, hi) in dims.items()}
    seed = draw(st.sampled_from(SEEDS[kernel]) if bucketed else st.integers(0, 2**31 - 1))
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
