"""GPU: the cuTile kernels against their references on hypothesis-drawn shapes (bucketed, so a
cold run compiles a few variants), outputs poisoned with NaN before each launch; the verifier's
kernel steps on the device; the graphed inference path. Marked `gpu`: skipped with a reason
where no GPU is present."""
import pytest
import torch
from hypothesis import given, settings

from kernels import attention as A
from kernels import halting as K
from kernels import key_tiles as KT
from kernels import looped_block as LB
from kernels import looped_tiled as LT
from tests.kernel_cases import cases, entropy_oracle
from verifier.checks.common import to
from verifier.compare import assert_close

pytestmark = pytest.mark.gpu
NAN = float("nan")
CUDA = torch.device("cuda")


@settings(max_examples=30, deadline=None)
@given(cases("halting", bucketed=True, kinds=("random", "extreme", "arange")))
def test_halting_kernel_on_gpu(c):
    args, _, case = c
    args = to(args, CUDA)
    M = args[0].shape[0]
    out = (torch.full_like(args[2], NAN), ~args[3], args[4] + 99, torch.full((M,), NAN, device=CUDA))
    state, active, steps, entropy = K.halting_update_cutile(*args, out=out)
    want = K.halting_update_reference(*(a.cpu() for a in args))
    assert_close("halting_update.state", state, want[0], torch.float32, **case["shape"])
    near = (want[3] - args[5].cpu()).abs() < 1e-4                   # rounding may flip a decision there
    assert torch.equal((active.cpu() != want[1]) & ~near, torch.zeros_like(near)) and torch.equal(steps.cpu(), want[2])
    assert_close("halting_update.entropy", entropy, entropy_oracle(args[0].cpu()), torch.float32, **case["shape"])


@settings(max_examples=30, deadline=None)     # random inputs: 'extreme' ones (q x 30) make near one-hot
@given(cases("attention", bucketed=True, kinds=("random",)))   # softmax rows that tf32/bf16 cannot match
def test_attention_kernel_on_gpu(c):
    args, kw, case = c
    want = A.loop_attention_reference(*args, **kw)
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = (t.to(CUDA, dtype) for t in args[:3])
        rest = to(args[3:], CUDA)
        got = A.loop_attention_cutile(q, k, v, *rest, **kw, out=torch.full_like(q, NAN))
        assert_close("loop_attention", got, want, dtype, **case["shape"])


@settings(max_examples=8, deadline=None)
@given(cases("attention", bucketed=True, kinds=("random",)))
def test_key_tiles_kernel_on_gpu(c):
    """The key-tile lists the tiled kernel reads, on the device, against the PyTorch statement."""
    (_, _, _, sig, plen, _), kw, _ = c
    for TM, TN in ((64, 64), (32, 16)):
        got = KT.key_tiles(sig.to(CUDA), plen.to(CUDA), TM, TN, window=kw["window"], prefix=kw["prefix"])
        want = KT.key_tiles_reference(sig, plen, TM, TN, window=kw["window"], prefix=kw["prefix"])
        assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1]), (TM, TN, kw)


def _looped_on_gpu(kernel, reference, c):
    """bf16 matrices, as the model runs the looped kernels on a GPU (fp32 ones there would be
    another compile each); random inputs: the 'extreme' ones (q x 30) make near one-hot softmax
    rows that bf16 cannot match (the CPU tests run them on the emulator in fp32)."""
    (x0, sig, plen, real, thr, w), kw, case = c
    wd = LB.Weights(*(t.to(CUDA, torch.bfloat16) if i in (2, 3, 6, 8, 12, 14) else t.to(CUDA) for i, t in enumerate(w)))
    B, T, _ = x0.shape
    out = (torch.full((B, T, w.wte.shape[0]), NAN, device=CUDA), torch.full((B, T), -1, dtype=torch.int32, device=CUDA))
    args = to((x0, sig, plen, real, thr), CUDA)
    got, steps = kernel(*args, wd, **kw, out=out)
    want, wsteps = reference(*args, wd, **kw)
    if not kw["halting"]:
        assert torch.equal(steps, wsteps)
    r = real.to(CUDA)
    assert_close(kernel.__name__, got[r], want[r], torch.bfloat16, scaled=True, **case["shape"])


@settings(max_examples=8, deadline=None)
@given(cases("looped", bucketed=True, kinds=("random",)))
def test_looped_block_kernel_on_gpu(c):
    _looped_on_gpu(LB.looped_block_cutile, LB.looped_block_reference, c)


@settings(max_examples=6, deadline=None)
@given(cases("tiled", bucketed=True, kinds=("random",)))
def test_looped_tiled_kernel_on_gpu(c):
    _looped_on_gpu(LT.looped_tiled_cutile, LT.looped_tiled_reference, c)


@pytest.mark.parametrize("scores", ["tf32", "fp16"])
@settings(max_examples=3, deadline=None)
@given(c=cases("tiled", bucketed=True, kinds=("random",)))
def test_looped_tiled_kernel_with_precise_scores_on_gpu(scores, c):
    """fp16 scores (fp16 key buffers), the tiled kernel's default through dispatch ("auto"), and
    TF32 ones (fp32 key buffers, TF32 tensor-core products): the verifier's differential calls the
    kernel with the matrices' dtype, so this is the GPU check of both."""
    _looped_on_gpu(lambda *a, **kw: LT.looped_tiled_cutile(*a, **kw, scores=scores), LT.looped_tiled_reference, c)


KERNEL_STEPS = ["padded_vocab_mask", "nan_guard", "tile_index_probe", "kernel_differential", "inference_parity",
                "halting_semantics", "causality", "loop_accounting"]


# the differential compiles ~40 variants cold (cuTile compiles one at a time per process): one
# test per kernel, so `python -m bench.gpu_tests` runs them in parallel processes, and for the two
# looped kernels one for the declared shapes and one for the drawn ones; the tiled kernel's
# declared shapes one by one (each an fp32-matrix loop variant, 76-80 s of tileiras in a cold
# parallel run: its declared shard was the run's longest test, 216 s of 223, bench/results/
# gpu-tests-h200.json). The tile-index probe, the next longest (161 s), one test per kernel too.
KERNELS = ("halting_update", "loop_attention", "looped_block", "packed_mask", "looped_tiled")
SHARDS = [(s, None, None) for s in KERNEL_STEPS if s not in ("kernel_differential", "tile_index_probe")] + [
    ("tile_index_probe", k, None) for k in KERNELS] + [
    ("kernel_differential", k, None) for k in ("halting_update", "loop_attention")] + [
    ("kernel_differential", "looped_block", part) for part in ("declared", "drawn")] + [
    ("kernel_differential", "looped_tiled", part) for part in ("declared:0", "declared:1", "drawn")]


@pytest.mark.parametrize("step,kernel,part", SHARDS, ids=["-".join(x for x in shard if x) for shard in SHARDS])
def test_verifier_kernel_steps_on_gpu(step, kernel, part):
    """One step per test (the differential one kernel per test, the looped ones split by declared
    and drawn shapes), so a cold run's streamed log shows where the JIT compiles go."""
    import dsl
    from verifier import load_target, run
    target = load_target(dsl.BUNDLED, device="cuda")
    target.only_kernels = (kernel,) if kernel else None
    target.differential_part = part
    report = run(target, only=[step])
    assert report.passed, [(s.id, s.message) for s in report.steps]
    assert report.kernels_on == "cuTile on the GPU"
    assert all("on cuTile on the GPU" in s.message for s in report.steps if s.check.startswith("kernel."))


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
