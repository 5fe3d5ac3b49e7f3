"""GPU: the cuTile kernels against their references on hypothesis-drawn shapes, outputs
poisoned with NaN before each launch; the verifier's kernel probes on the device.
Marked `gpu`: skipped with a reason where no GPU is present."""
import torch
from hypothesis import given, settings

from kernels import attention as A
from kernels import halting as K
from kernels import looped_block as LB
from verifier.compare import assert_close
from tests.kernel_cases import (attention_cases, build_attention, build_halting, build_looped, halting_cases,
                                looped_cases)

import pytest

pytestmark = pytest.mark.gpu
NAN = float("nan")


@settings(max_examples=30, deadline=None)     # each new shape is a JIT compile (about a second)
@given(halting_cases())
def test_halting_kernel_on_gpu(c):
    args = build_halting(c, "cuda")
    M, D = c["M"], c["D"]
    out = ((torch.full((M, D), NAN, device="cuda"), torch.zeros(M, dtype=torch.bool, device="cuda"),
            torch.full((M,), -1, dtype=torch.int32, device="cuda")), torch.full((M,), NAN, device="cuda"))
    (state, active, steps), entropy = K._launch(*args, True, out=out)
    want = K.halting_update_reference(*(a.cpu() for a in args))
    assert_close("halting_update.state", state, want[0], torch.float32, **c)
    assert torch.equal(active.cpu(), want[1]) and torch.equal(steps.cpu(), want[2])
    assert_close("halting_update.entropy", entropy, K.entropy_oracle(args[0].cpu()), torch.float32, **c)


@settings(max_examples=30, deadline=None)
@given(attention_cases())
def test_attention_kernel_on_gpu(c):
    for dtype in (torch.float32, torch.bfloat16):
        args, kw = build_attention(c, "cuda", dtype)
        out = torch.full_like(args[0], NAN)
        got = A.loop_attention_cutile(*args, **kw, out=out)
        want = A.loop_attention_reference(*(a.cpu().float() if a is not None and a.is_floating_point() else
                                            (a.cpu() if a is not None else None) for a in args), **kw)
        assert_close("loop_attention", got, want, dtype, **c)


@settings(max_examples=6, deadline=None)   # every new option mix is a fresh JIT compile (~10 s)
@given(looped_cases())
def test_looped_block_kernel_on_gpu(c):
    for dtype in (torch.float32, torch.bfloat16):
        (x0, sig, plen, nreal, thr, w), kw, real = build_looped(c, "cuda", dtype)
        B, T, _ = x0.shape
        out = (torch.full((B, T, w.wte.shape[0]), NAN, device="cuda"),
               torch.full((B, T), -1, dtype=torch.int32, device="cuda"))
        got, steps = LB.looped_block_cutile(x0, sig, plen, nreal, thr, w, **kw, out=out)
        want, wsteps = LB.looped_block_reference(x0, sig, plen, nreal, thr, w, **kw)
        real = real.cuda()
        if not kw["halting"]:
            assert torch.equal(steps, wsteps)
        assert_close("looped_block", got[real], want[real], dtype, scaled=dtype == torch.bfloat16, **c)


def test_verifier_kernel_probes_on_gpu():
    import dsl
    from verifier import Target, run
    spec = dsl.load(dsl.BUNDLED)
    report = run(Target(spec=spec, device="cuda"),
                 only=["padded_vocab_mask", "nan_guard", "tile_index_probe"])
    assert report.passed, [(s.id, s.message) for s in report.steps]
    assert all("cuTile on the GPU" in s.message for s in report.steps)


def test_graphed_cutile_inference_matches_the_plain_call():
    """The persistent path captured in a CUDA graph (looplm.graphs, the benchmark's `cutile`):
    no host sync inside, and every replay computes on the input it is given."""
    from looplm.config import Config, HaltingConfig
    from looplm.data import make_batch, problems
    from looplm.graphs import Graphed
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    torch.manual_seed(0)
    model = LoopLM(Config().override(model={"n_embd": 128, "n_head": 4, "n_loops": 4}), ADDITION).cuda().eval()
    idx = [make_batch(problems(37, 5, 5, seed=s), "reversed").idx.cuda() for s in range(2)]
    for policy in (HaltingConfig(), HaltingConfig(mode="entropy", threshold=0.5)):
        def run(x):
            with torch.no_grad():
                return model(x, halting=policy).logits
        with torch.no_grad():
            assert model(idx[0], halting=policy).halting.entropy.shape[0] == 0, "the persistent path did not run"
        graphed = Graphed(run, idx[0])
        for x in (idx[1], idx[0]):
            got = graphed(x).clone()
            assert torch.equal(got, run(x)), policy.mode
