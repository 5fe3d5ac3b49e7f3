"""Kernels on the CPU: references vs float64 oracles, and the kernels themselves (same source,
run by the cuTile emulator) vs the references, on hypothesis-drawn shapes. Never NaN."""

import pytest
import torch
from hypothesis import given, settings

from kernels import attention as A
from kernels import emulator
from kernels import halting as K
from kernels import looped_block as LB
from verifier.compare import assert_close
from tests.kernel_cases import (attention_cases, build_attention, build_halting, build_looped, halting_cases,
                                looped_cases)


@settings(max_examples=60)
@given(halting_cases())
def test_entropy_reference_matches_float64_and_is_never_nan(c):
    logits = build_halting(c)[0]
    got = K.entropy_reference(logits)
    assert not torch.isnan(got).any()
    assert_close("entropy_reference", got, K.entropy_oracle(logits), torch.float32, M=c["M"], V=c["V"])


@settings(max_examples=40)
@given(halting_cases())
def test_halting_kernel_matches_reference(c):
    args = build_halting(c)
    got = K.halting_update_cutile(*args)
    want = K.halting_update_reference(*args)
    for name, g, w in zip(("state", "active", "steps", "entropy"), got, want):
        if g.dtype in (torch.bool, torch.int32):
            assert torch.equal(g, w), f"halting_update {name} {c}"
        else:
            assert_close(f"halting_update.{name}", g, w, torch.float32, M=c["M"], V=c["V"], D=c["D"])


@settings(max_examples=40)
@given(attention_cases())
def test_attention_reference_matches_float64(c):
    args, kw = build_attention(c)
    got = A.loop_attention_reference(*args, **kw)
    q, k, v, sig, plen, bias = args
    want = A.loop_attention_reference(q.double(), k.double(), v.double(), sig, plen,
                                      bias.double() if bias is not None else None, **kw)
    assert_close("loop_attention_reference", got, want, torch.float32, **{k: c[k] for k in ("B", "H", "HD")})


@settings(max_examples=40)
@given(attention_cases())
def test_attention_kernel_matches_reference(c):
    args, kw = build_attention(c)
    out = torch.full_like(args[0], float("nan"))                 # poisoned: unwritten elements fail
    got = A.loop_attention_cutile(*args, **kw, out=out)
    assert_close("loop_attention", got, A.loop_attention_reference(*args, **kw), torch.float32,
                 T=args[0].shape[2], **{k: c[k] for k in ("B", "H", "HD", "window", "prefix", "bias")})


@settings(max_examples=25)
@given(looped_cases())
def test_looped_block_reference_matches_float64(c):
    (x0, sig, plen, nreal, thr, w), kw, real = build_looped(c)
    got, steps = LB.looped_block_reference(x0, sig, plen, nreal, thr, w, **kw)
    w64 = LB.Weights(*(t.double() for t in w))
    want, steps64 = LB.looped_block_reference(x0.double(), sig, plen, nreal, thr, w64, **kw)
    if not kw["halting"]:            # with halting, a threshold crossed by rounding may differ
        assert_close("looped_block_reference", got[real], want[real], torch.float32, **c)


@settings(max_examples=25)
@given(looped_cases())
def test_looped_block_kernel_matches_reference(c):
    (x0, sig, plen, nreal, thr, w), kw, real = build_looped(c)
    B, T, _ = x0.shape
    out = (torch.full((B, T, w.wte.shape[0]), float("nan")), torch.full((B, T), -1, dtype=torch.int32))
    got, steps = LB.looped_block_cutile(x0, sig, plen, nreal, thr, w, **kw, out=out)
    want, wsteps = LB.looped_block_reference(x0, sig, plen, nreal, thr, w, **kw)
    assert torch.equal(steps, wsteps), c
    assert_close("looped_block", got[real], want[real], torch.float32, **c)


def test_kernel_variant_changes_only_the_options():
    from kernels.tile import TileKernel
    base = TileKernel(K.halting_update_kernel.body, occupancy=4)
    assert base.variant(occupancy=4) is base                          # unchanged: not compiled again
    assert base.variant(occupancy=None).options == {}                 # None: the compiler's own choice
    other = base.variant(occupancy=2, num_worker_warps=8)
    assert other.body is base.body and other.options == {"occupancy": 2, "num_worker_warps": 8}


def test_emulator_enforces_cutile_rules():
    with pytest.raises(emulator.TileTypeError, match="not a power of two"):
        emulator.load(torch.zeros(10, 14), (0, 0), (4, 14))
    with pytest.raises(emulator.TileTypeError):
        emulator.arange(12, dtype=torch.int32)
    x = torch.arange(10.0)
    assert emulator.load(x, (1,), (4,)).tolist() == [4, 5, 6, 7]            # tile index, not element
    assert emulator.load(x, (2,), (4,), padding_mode=emulator.PaddingMode.NEG_INF).tolist()[-2:] == [float("-inf")] * 2
    assert torch.isnan(emulator.load(x, (2,), (4,))[-1])                       # undetermined: poisoned
    with pytest.raises(IndexError, match="entirely outside"):
        emulator.load(x, (3,), (4,))


def test_looped_kernel_matches_the_model_end_to_end():
    from looplm.config import Config, HaltingConfig
    from looplm.model import LoopLM
    from looplm.positions import prompt_length
    from looplm.tokens import ADDITION
    from tests.kernel_cases import addition_rows
    torch.manual_seed(0)
    model = LoopLM(Config().override(model={"n_loops": 3}), ADDITION).eval()
    with torch.no_grad():
        model.blocks[0].attn.rel_bias.normal_()
        idx, sig, plen = addition_rows(4, 6, "reversed", 1)
        real = idx != ADDITION.pad_id
        for policy in (HaltingConfig(), HaltingConfig(mode="wait", threshold=0.5, wait_threshold=0.05)):
            want = model(idx, halting=policy)
            thr = model.thresholds(idx, policy)
            got, steps = LB.looped_block_cutile(model.embed(idx, sig), sig, prompt_length(idx, ADDITION), real.sum(1),
                                                thr, LB.weights_of(model, torch.float32), loops=3,
                                                halting=policy.mode != "fixed", window=1, use_bias=True)
            assert_close("looped_block vs LoopLM", got[real], want.logits[real], torch.float32, mode=policy.mode)
            assert torch.equal(steps[real], want.halting.steps[real])


def test_dispatcher_respects_forced_backend(monkeypatch):
    from kernels import dispatch
    monkeypatch.setenv("LOOPLM_KERNELS", "reference")
    assert dispatch.backend(torch.zeros(1)) == "reference"
    monkeypatch.setenv("LOOPLM_KERNELS", "cutile")
    with pytest.raises(RuntimeError, match="missing"):
        dispatch.backend(torch.zeros(1))                                   # a CPU tensor cannot run cuTile
    monkeypatch.setenv("LOOPLM_KERNELS", "bogus")
    with pytest.raises(ValueError):
        dispatch.backend(torch.zeros(1))
