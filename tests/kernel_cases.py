"""Inputs for kernel tests: hypothesis draws the shapes and options, `build_*` makes tensors on
any device, so the CPU tests (emulator, references) and the GPU tests share the cases."""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from kernels.looped_block import Weights
from looplm.data import make_batch, problems
from looplm.positions import significance
from looplm.tokens import ADDITION
from tests.strategies import MAX

seeds = st.integers(0, 2**31 - 1)


@st.composite
def halting_cases(draw):
    return {"M": draw(st.integers(1, 300)), "V": draw(st.integers(2, 1500)), "D": draw(st.integers(1, 300)),
            "extreme": draw(st.floats(0, 0.5)), "seed": draw(seeds)}


def build_halting(c: dict, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(c["seed"])
    M, V, D = c["M"], c["V"], c["D"]
    logits = torch.randn(M, V, generator=g) * 4
    pick = torch.rand(M, V, generator=g)
    specials = torch.tensor([-math.inf, math.inf, 1e30, -1e30])
    idx = torch.randint(0, 4, (M, V), generator=g)
    logits = torch.where(pick < c["extreme"] * 0.5, specials[idx], logits)
    logits[torch.rand(M, generator=g) < c["extreme"] * 0.2] = -math.inf        # whole rows impossible
    args = (logits.to(dtype), torch.randn(M, D, generator=g), torch.randn(M, D, generator=g),
            torch.rand(M, generator=g) < 0.7, torch.randint(0, 9, (M,), generator=g, dtype=torch.int32),
            torch.rand(M, generator=g) * 2)
    return tuple(a.to(device) for a in args)


@st.composite
def attention_cases(draw):
    return {"B": draw(st.integers(1, 3)), "H": draw(st.sampled_from([1, 2, 4])), "HD": draw(st.sampled_from([16, 32])),
            "digits": draw(st.integers(1, 40)), "format": draw(st.sampled_from(["reversed", "normal"])),
            "window": draw(st.sampled_from([None, 0, 1, 3])), "bias": draw(st.booleans()),
            "prefix": draw(st.booleans()), "clip": draw(st.integers(1, 4)), "seed": draw(seeds)}


def addition_rows(B: int, digits: int, fmt: str, seed: int):
    b = make_batch(problems(B, 1, digits, seed=seed), fmt)
    return b.idx, significance(b.idx, ADDITION, fmt), b.prompt_len


def build_attention(c: dict, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(c["seed"])
    idx, sig, plen = addition_rows(c["B"], c["digits"], c["format"], c["seed"])
    B, T = idx.shape
    q, k, v = (torch.randn(B, c["H"], T, c["HD"], generator=g).to(dtype) for _ in range(3))
    bias = torch.randn(c["H"], 2 * c["clip"] + 2, generator=g) if c["bias"] else None
    to = lambda t: t.to(device) if t is not None else None  # noqa: E731
    return (to(q), to(k), to(v), to(sig), to(plen), to(bias)), {"window": c["window"], "clip": c["clip"],
                                                              "prefix": c["prefix"]}


@st.composite
def looped_cases(draw):
    return {"B": draw(st.integers(1, 3)), "D": draw(st.sampled_from([64, 128])), "H": draw(st.sampled_from([2, 4])),
            "digits": draw(st.integers(1, 12)), "format": draw(st.sampled_from(["reversed", "normal"])),
            "loops": draw(st.integers(1, 5)), "halting": draw(st.booleans()), "min_loops": draw(st.integers(1, 3)),
            "window": draw(st.sampled_from([None, 1])), "bias": draw(st.booleans()), "prefix": draw(st.booleans()),
            "reinject": draw(st.booleans()), "step_emb": draw(st.booleans()), "seed": draw(seeds)}


def build_looped(c: dict, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(c["seed"])
    idx, sig, plen = addition_rows(c["B"], c["digits"], c["format"], c["seed"])
    B, T = idx.shape
    D, H, V = c["D"], c["H"], len(ADDITION)
    nreal = idx != ADDITION.pad_id
    r = lambda *s, scale=0.05: (torch.randn(*s, generator=g) * scale)  # noqa: E731
    one = lambda: 1 + r(D, scale=0.1)  # noqa: E731
    w = Weights(one(), r(D), r(3 * D, D).to(dtype), r(D, D).to(dtype), one(), r(D), r(4 * D, D).to(dtype), r(4 * D),
                r(D, 4 * D).to(dtype), r(D), one(), r(D), r(V, D, scale=1.0).to(dtype),
                r(H, 8, scale=1.0), r(max(1, c["loops"]), D).to(dtype))
    x0 = torch.randn(B, T, D, generator=g)
    thr = torch.rand(B, T, generator=g) * 1.5
    kw = {"loops": c["loops"], "halting": c["halting"], "min_loops": c["min_loops"], "window": c["window"],
          "clip": 3, "use_bias": c["bias"], "prefix": c["prefix"], "reinject": c["reinject"], "step_emb": c["step_emb"]}
    tensors = (x0, sig, plen, nreal, thr, Weights(*(t.to(device) for t in w)))
    return tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in tensors), kw, idx != ADDITION.pad_id


assert MAX >= 1
