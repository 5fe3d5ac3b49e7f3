"""Kernels on the CPU: references vs float64 oracles, and the kernels themselves (same source,
run by the cuTile emulator) vs the references, on hypothesis-drawn shapes, outputs poisoned with
NaN. The dispatcher's backend choice."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import attention as A
from kernels import dispatch, emulator
from kernels import halting as K
from kernels import key_tiles as KT
from kernels import looped_block as LB
from kernels import looped_tiled as LT
from kernels import packed_mask as PM
from tests.kernel_cases import cases, entropy_oracle
from verifier.compare import assert_close

NAN = float("nan")


@settings(max_examples=60)
@given(cases("halting"))
def test_entropy_reference_matches_float64_and_is_never_nan(c):
    (logits, *_), _, case = c
    got = K.entropy_reference(logits)
    assert not torch.isnan(got).any()
    assert_close("entropy_reference", got, entropy_oracle(logits), torch.float32, **case["shape"])


@settings(max_examples=40)
@given(cases("halting", kinds=("random", "extreme", "arange")))
def test_halting_kernel_matches_reference(c):
    args, _, case = c
    M = args[0].shape[0]
    out = (torch.full_like(args[2], NAN), ~args[3], args[4] + 99, torch.full((M,), NAN))   # poisoned
    got = K.halting_update_cutile(*args, out=out)
    want = K.halting_update_reference(*args)
    for name, g, w in zip(("state", "active", "steps", "entropy"), got, want):
        if g.dtype in (torch.bool, torch.int32):
            assert torch.equal(g, w), f"halting_update {name} {case}"
        else:
            assert_close(f"halting_update.{name}", g, w, torch.float32, **case["shape"])


@settings(max_examples=40)
@given(cases("attention"))
def test_attention_reference_matches_float64(c):
    (q, k, v, sig, plen, bias), kw, case = c
    got = A.loop_attention_reference(q, k, v, sig, plen, bias, **kw)
    want = A.loop_attention_reference(q.double(), k.double(), v.double(), sig, plen,
                                      bias.double() if bias is not None else None, **kw)
    assert_close("loop_attention_reference", got, want, torch.float32, **case["shape"])


@settings(max_examples=40)
@given(cases("attention"))
def test_attention_kernel_matches_reference(c):
    args, kw, case = c
    got = A.loop_attention_cutile(*args, **kw, out=torch.full_like(args[0], NAN))
    assert_close("loop_attention", got, A.loop_attention_reference(*args, **kw), torch.float32,
                 **case["shape"], **{k: v for k, v in kw.items() if k != "clip"})


@settings(max_examples=25)
@given(cases("looped"))
def test_looped_block_reference_matches_float64(c):
    (x0, sig, plen, real, thr, w), kw, case = c
    got, steps = LB.looped_block_reference(x0, sig, plen, real, thr, w, **kw)
    w64 = LB.Weights(*(t.double() for t in w))
    want, steps64 = LB.looped_block_reference(x0.double(), sig, plen, real, thr, w64, **kw)
    # with halting too: an fp32 entropy within 1e-6 of a uniform threshold is too rare to meet here
    assert torch.equal(steps, steps64), case
    assert_close("looped_block_reference", got[real], want[real], torch.float32, scaled=True, **case["shape"])


def _looped_vs_reference(kernel, reference, c):
    """A looped kernel (emulated, fp32) against its reference: steps exactly, logits closely."""
    (x0, sig, plen, real, thr, w), kw, case = c
    B, T, _ = x0.shape
    out = (torch.full((B, T, w.wte.shape[0]), NAN), torch.full((B, T), -1, dtype=torch.int32))
    got, steps = kernel(x0, sig, plen, real, thr, w, **kw, out=out)
    want, wsteps = reference(x0, sig, plen, real, thr, w, **kw)
    assert torch.equal(steps, wsteps), case
    assert_close(kernel.__name__, got[real], want[real], torch.float32, scaled=True, **case["shape"])


@settings(max_examples=25)
@given(cases("looped"))
def test_looped_block_kernel_matches_reference(c):
    _looped_vs_reference(LB.looped_block_cutile, LB.looped_block_reference, c)


@settings(max_examples=40)
@given(st.integers(1, 9), st.integers(1, 40), st.sampled_from([64, 128]))
def test_groups_pack_whole_sequences_and_unpack_exactly(B, T, R):
    """to_groups / from_groups: every sequence lands whole in its slot, the last group may be
    partial, every other row is fill; unpacking gives the input back."""
    S = max(1, R // T)
    G = -(-B // S)
    a = torch.randn(B, T, 3)
    g = LB.to_groups(a, S, G, R, NAN)
    assert g.shape == (G, R, 3)
    assert torch.equal(LB.from_groups(g, B, T, S), a)
    for i in range(B):
        assert torch.equal(g[i // S, (i % S) * T:(i % S + 1) * T], a[i])
    assert g.isnan().sum() == (G * R - B * T) * 3


@settings(max_examples=30)
@given(st.integers(1, 3), st.sampled_from([64, 128]), st.sampled_from([None, 0, 1, 3]), st.integers(1, 4),
       st.booleans(), st.booleans(), st.integers(0, 2**31 - 1))
def test_packed_mask_kernel_matches_its_reference(G, R, window, clip, prefix, use_bias, seed):
    """The persistent kernel's attention mask, built by its own kernel, equals the whole-tensor
    rule exactly, on arbitrary rows (positions, slots, empty rows, prompt lengths, non-digits)."""
    g = torch.Generator().manual_seed(seed)
    sig, pos = torch.randint(-1, 9, (G, R), generator=g), torch.randint(0, 40, (G, R), generator=g)
    seq, plen = torch.randint(-1, 3, (G, R), generator=g), torch.randint(0, 30, (G, R), generator=g)
    bias = torch.randn(4, 2 * clip + 2, generator=g) if use_bias else None
    kw = dict(window=window, clip=clip, prefix=prefix)
    want = PM.packed_attention_mask(sig, pos, seq, plen, bias, **kw)
    assert torch.equal(PM.packed_mask_cutile(sig, pos, seq, plen, bias, **kw), want)
    # the persistent kernel's fp16 copy: the same rule, each value rounded once (-inf stays -inf)
    assert torch.equal(PM.packed_mask_cutile(sig, pos, seq, plen, bias, **kw, dtype=torch.float16), want.half())


@settings(max_examples=8)
@given(cases("tiled"))
def test_looped_tiled_kernel_matches_reference(c):
    _looped_vs_reference(LT.looped_tiled_cutile, LT.looped_tiled_reference, c)


@pytest.mark.parametrize("step_emb", [False, True])
def test_tiled_kernel_skips_a_tile_whose_tokens_all_halted(step_emb):
    """A query tile whose tokens have all halted runs no attention, MLP or halting: its frozen
    rows still give every later loop's keys and values, which the live tiles attend to, and the
    logits. The first 64-row tile halts after one loop (threshold above any entropy), the rest
    never (below any): the kernel equals the reference, with the step embedding too (the frozen
    rows' keys then change every loop)."""
    from looplm import kernel_inputs
    (x0, sig, plen, real, _, w), kw = kernel_inputs.make_tiled({"B": 2, "T": 150, "D": 64, "H": 2}, 1)
    kw.update(loops=4, halting=True, min_loops=1, step_emb=step_emb)
    thr = torch.zeros(real.shape)
    thr[:, :LT.TILE] = 1e9
    got, steps = LT.looped_tiled_cutile(x0, sig, plen, real, thr, w, **kw)
    want, wsteps = LT.looped_tiled_reference(x0, sig, plen, real, thr, w, **kw)
    assert torch.equal(steps, wsteps)
    assert steps[:, :LT.TILE][real[:, :LT.TILE]].eq(1).all() and steps[:, LT.TILE:][real[:, LT.TILE:]].eq(4).all()
    assert_close("looped_tiled, a halted tile", got[real], want[real], torch.float32, scaled=True)


@pytest.mark.parametrize("scores", ["tf32", "fp16"])
@settings(max_examples=4)
@given(c=cases("tiled"))
def test_looped_tiled_kernel_with_precise_scores_matches_reference(scores, c):
    """TF32 scores (queries and keys rounded to 10 mantissa bits, keys kept in fp32 buffers) and
    fp16 ones (the same 10 bits, in fp16 buffers): the same logic, so the same steps, and logits
    within the tolerance of the bf16 operands the GPU runs the other products in."""
    (x0, sig, plen, real, thr, w), kw, case = c
    got, steps = LT.looped_tiled_cutile(x0, sig, plen, real, thr, w, **kw, scores=scores)
    want, wsteps = LT.looped_tiled_reference(x0, sig, plen, real, thr, w, **kw)
    assert torch.equal(steps, wsteps), case
    assert_close(f"looped_tiled {scores} scores", got[real], want[real], torch.bfloat16, scaled=True, **case["shape"])


def test_looped_tiled_refuses_an_unknown_score_precision():
    from looplm import kernel_inputs
    (x0, sig, plen, real, thr, w), kw = kernel_inputs.make_tiled({"B": 1, "T": 20, "D": 64, "H": 2}, 0)
    with pytest.raises(ValueError, match="scores must be one of"):
        LT.looped_tiled_cutile(x0, sig, plen, real, thr, w, **kw, scores="fp8")


def test_tf32_and_fp16_scores_keep_the_answer_bf16_scores_tip():
    """The one 1000-digit problem of 500 where the GPU kernels' answer differed from the
    reference's (bench/results/eval-diff-h200.json: problem 432, position 2424, a top-2 logit
    margin of 0.19): the emulated kernel with bf16 matrices reproduces the flip, and with TF32 or
    fp16 scores keeps the reference's digit. Runs the tiled kernel on one 3002-token row (~4 s a run)."""
    from looplm import checkpoint
    from looplm.data import make_batch, problems
    from looplm.fused import weights_of
    from looplm.positions import prompt_length
    model = checkpoint.load("results/checkpoints/looplm_reversed_all_loops.pt", map_location="cpu").model.eval()
    m = model.config.model
    batch = make_batch([problems(500, 1000, 1000, seed=1000, split="val")[432]], model.config.data.format, model.vocab)
    idx, pos = batch.idx, 2424
    with torch.no_grad():
        with dispatch.use("reference"):
            want = model(idx).logits[0, pos].argmax()
        sig = model.significance(idx)
        args = (model.embed(idx, sig), sig, prompt_length(idx, model.vocab), idx != model.vocab.pad_id,
                torch.zeros(idx.shape), weights_of(model, torch.bfloat16))
        kw = dict(loops=m.n_loops, halting=False, window=m.window, clip=m.relative_clip, use_bias=True)
        assert want == batch.targets[0, pos]
        assert LT.looped_tiled_cutile(*args, **kw)[0][0, pos].argmax() != want                    # bf16 scores tip it
        for scores in ("tf32", "fp16"):
            assert LT.looped_tiled_cutile(*args, **kw, scores=scores)[0][0, pos].argmax() == want, scores


@settings(max_examples=40)
@given(cases("attention"), st.sampled_from([16, 32, 64]), st.sampled_from([16, 32, 64]))
def test_key_tiles_list_every_tile_holding_a_visible_key(c, TM, TN):
    """The tiled kernel reads only the listed key tiles: a missed one silently drops keys."""
    (_, _, _, sig, plen, _), kw, _ = c
    B, T = sig.shape
    count, order = LT.key_tiles(sig, plen, TM, TN, window=kw["window"], prefix=kw["prefix"])
    nQ, nK = count.shape[1], order.shape[2]
    listed = torch.zeros(B, nQ, nK, dtype=torch.bool)
    listed.scatter_(2, order.long(), torch.arange(nK)[None, None, :] < count[..., None])
    allowed = torch.zeros(B, nQ * TM, nK * TN, dtype=torch.bool)
    allowed[:, :T, :T] = A.attention_mask(sig.long(), plen.long(), kw["window"], kw["prefix"])[:, 0]
    need = allowed.view(B, nQ, TM, nK, TN).any(2).any(-1)
    assert bool((need <= listed).all()), kw
    assert torch.equal(order.sort(-1).values, torch.arange(nK, dtype=torch.int32).expand(B, nQ, nK))  # a permutation


@settings(max_examples=40)
@given(cases("attention"), st.sampled_from([16, 32, 64]), st.sampled_from([16, 32, 64]),
       st.sampled_from([None, 0, 1, 3]))
def test_key_tiles_kernel_equals_its_reference(c, TM, TN, window):
    """The one-launch key-tile lists (emulated here) equal the PyTorch statement: counts, and the
    whole order (listed tiles first, each part in tile order), for any window and prompt rule."""
    (_, _, _, sig, plen, _), kw, _ = c
    got = KT.key_tiles(sig, plen, TM, TN, window=window, prefix=kw["prefix"])
    want = KT.key_tiles_reference(sig, plen, TM, TN, window=window, prefix=kw["prefix"])
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (TM, TN, window, kw)


@settings(max_examples=40)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_tiled_blocks_run_heaviest_first_and_cover_every_tile(B, nQ, seed):
    """The loop kernel's block order: every (sequence, query tile) once, key-tile counts never
    rising (a tile run twice or skipped leaves rows of the state stale)."""
    count = torch.randint(0, 9, (B, nQ), generator=torch.Generator().manual_seed(seed), dtype=torch.int32)
    work = LT.heaviest_first(count)
    assert work.dtype == torch.int32
    assert torch.equal(work.sort().values, torch.arange(B * nQ, dtype=torch.int32))
    ordered = count.flatten()[work.long()]
    assert bool((ordered[:-1] >= ordered[1:]).all())


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


def test_emulator_reshapes_tiles_as_cutile_documents():
    """permute and extract, which the tiled kernel splits heads with, on cuTile's documented examples."""
    x = emulator.reshape(emulator.arange(8, dtype=torch.int32), (2, 2, 2))
    assert emulator.permute(x, (2, 0, 1)).tolist() == [[[0, 2], [4, 6]], [[1, 3], [5, 7]]]
    y = emulator.reshape(emulator.arange(16, dtype=torch.int32), (4, 4))
    assert emulator.extract(y, (0, 1), shape=(2, 2)).tolist() == [[2, 3], [6, 7]]
    assert emulator.extract(emulator.arange(8, dtype=torch.int32), (1,), shape=(4,)).tolist() == [4, 5, 6, 7]
    with pytest.raises(emulator.TileTypeError):
        emulator.extract(y, (0, 0), shape=(3, 4))


def test_emulator_rounds_to_tf32_as_the_tensor_cores():
    """astype(tfloat32): round to nearest even at 10 mantissa bits; inf and NaN stay."""
    x = torch.tensor([1.0, 1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-10), float("inf"), float("nan"), 1e-3])
    got = emulator.astype(x, emulator.tfloat32)
    assert got[:5].tolist() == [1.0, 1.0, 1 + 2**-9, -(1 + 2**-10), float("inf")]   # ties go to the even neighbour
    assert torch.isnan(got[5]) and got.dtype == torch.float32
    assert abs(float(got[6]) - 1e-3) <= 1e-3 * 2**-11 and float(got[6]) != 1e-3


def test_looped_kernel_matches_the_model_end_to_end():
    from looplm.config import Config, HaltingConfig
    from looplm.fused import weights_of
    from looplm.kernel_inputs import addition_rows
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    torch.manual_seed(0)
    model = LoopLM(Config().override(model={"n_loops": 3, "step_embedding": True}), ADDITION).eval()
    with torch.no_grad():
        model.blocks[0].attn.rel_bias.normal_()
        idx, sig, plen = addition_rows(4, 6, "reversed", 1)
        real = idx != ADDITION.pad_id
        for policy in (HaltingConfig(), HaltingConfig(mode="wait", threshold=0.5, wait_threshold=0.05)):
            for loops in (3, 7):                          # 7: past the step embedding's 3 rows
                want = model(idx, halting=policy, loops=loops)
                thr = model.thresholds(idx, policy)
                got, steps = LB.looped_block_cutile(model.embed(idx, sig), sig, plen, real, thr,
                                                    weights_of(model, torch.float32), loops=loops,
                                                    halting=policy.mode != "fixed", window=1, use_bias=True,
                                                    step_emb=True)
                assert_close("looped_block vs LoopLM", got[real], want.logits[real], torch.float32, mode=policy.mode)
                assert torch.equal(steps[real], want.halting.steps[real])


def test_long_rows_run_the_tiled_kernel_and_match_the_model():
    """Past the persistent kernel's 128 tokens the dispatcher runs the tiled looped block (one
    launch per loop), and the model's kernel path still computes what its reference path does."""
    from looplm.config import Config, HaltingConfig
    from looplm.kernel_inputs import addition_rows
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    torch.manual_seed(0)
    model = LoopLM(Config().override(model={"n_loops": 2, "step_embedding": True}), ADDITION).eval()
    idx, _, _ = addition_rows(2, 50, "reversed", 3)                   # T = 153: three 64-row tiles
    assert idx.shape[1] > LB.MAX_T
    calls = []
    real_fn = LT.looped_tiled_cutile
    with torch.no_grad():
        model.blocks[0].attn.rel_bias.normal_()
        # a threshold near the untrained model's entropy (log 14 = 2.64): some tokens halt, some run on
        for policy in (HaltingConfig(), HaltingConfig(mode="entropy", threshold=2.6)):
            with dispatch.use("reference"):
                want = model(idx, halting=policy, loops=3)            # 3: past the step embedding's 2 rows
            LT.looped_tiled_cutile = lambda *a, **k: calls.append(1) or real_fn(*a, **k)  # noqa: E731
            try:
                with dispatch.use("emulator"):
                    got = model(idx, halting=policy, loops=3)
            finally:
                LT.looped_tiled_cutile = real_fn
            real = idx != ADDITION.pad_id
            assert_close("looped_tiled vs LoopLM", got.logits[real], want.logits[real], torch.float32, mode=policy.mode)
            assert torch.equal(got.halting.steps[real], want.halting.steps[real])
            if policy.mode == "entropy":
                assert 1 <= int(want.halting.steps[real].min()) < 3 == int(want.halting.steps[real].max())
    assert len(calls) == 2


def test_dispatcher_backend_is_chosen_explicitly_and_restored(monkeypatch):
    t = torch.zeros(1)
    monkeypatch.delenv("LOOPLM_KERNELS", raising=False)
    assert dispatch.backend(t) == "reference"                             # auto on a CPU tensor
    with dispatch.use("emulator"):
        assert dispatch.backend(t) == "emulator"
        with dispatch.use("reference"):
            assert dispatch.backend(t) == "reference"
        assert dispatch.backend(t) == "emulator"
    assert dispatch.requested() == "auto"                                  # nothing leaks out
    with dispatch.use("cutile"), pytest.raises(RuntimeError, match="missing"):
        dispatch.backend(t)                                                # a CPU tensor cannot run cuTile
    monkeypatch.setenv("LOOPLM_KERNELS", "bogus")
    with pytest.raises(ValueError, match="kernel backend must be one of"):
        dispatch.backend(t)
    with pytest.raises(ValueError):
        with dispatch.use("fast"):
            pass


def test_precise_scores_are_asked_for_and_run_short_rows_on_the_tiled_kernel(monkeypatch):
    """dispatch.scores / LOOPLM_SCORES as dispatch.use / LOOPLM_KERNELS; with TF32 or fp16 scores a
    row the persistent kernel could hold runs on the tiled one (the persistent kernel has no such
    option); "auto" gives the tiled kernel fp16 scores."""
    from looplm.kernel_inputs import addition_rows, random_weights
    from looplm.tokens import ADDITION
    monkeypatch.delenv("LOOPLM_SCORES", raising=False)
    assert dispatch.requested_scores() == "auto"
    with dispatch.scores("tf32"):
        assert dispatch.requested_scores() == "tf32"
    assert dispatch.requested_scores() == "auto"
    monkeypatch.setenv("LOOPLM_SCORES", "fp64")
    with pytest.raises(ValueError, match="score precision must be one of"):
        dispatch.requested_scores()
    monkeypatch.setenv("LOOPLM_SCORES", "tf32")
    idx, sig, plen = addition_rows(2, 4, "reversed", 1)
    g = torch.Generator().manual_seed(0)
    w = random_weights(64, 4, len(ADDITION), 1, g, torch.float32)
    x0 = torch.randn(*idx.shape, 64, generator=g)
    real, thr = idx != ADDITION.pad_id, torch.zeros(idx.shape)
    calls = []
    real_fn = LT.looped_tiled_cutile
    monkeypatch.setattr(LT, "looped_tiled_cutile", lambda *a, **k: calls.append(k["scores"]) or real_fn(*a, **k))
    got, _ = dispatch.looped_block(x0, sig, plen, real, thr, w, loops=2, halting=False, window=1, use_bias=True)
    want, _ = LB.looped_block_reference(x0, sig, plen, real, thr, w, loops=2, halting=False, window=1, use_bias=True)
    assert calls == ["tf32"] and idx.shape[1] <= LB.MAX_T
    assert_close("tf32 scores via dispatch", got[real], want[real], torch.bfloat16, scaled=True)
    # the default: rows the persistent kernel holds stay on it; longer rows get TF32 unless "matrix"
    monkeypatch.delenv("LOOPLM_SCORES")
    ran = []
    monkeypatch.setattr(LB, "looped_block_cutile", lambda *a, **k: ran.append("persistent"))
    monkeypatch.setattr(LT, "looped_tiled_cutile", lambda *a, **k: ran.append(("tiled", k["scores"])))
    too_short = idx.shape[1] - 1                                   # a MAX_T as if the rows were too long
    for max_t, choice, path in ((LB.MAX_T, "auto", "persistent"), (LB.MAX_T, "matrix", "persistent"),
                                (too_short, "auto", ("tiled", "fp16")), (too_short, "matrix", ("tiled", "matrix")),
                                (too_short, "tf32", ("tiled", "tf32")), (LB.MAX_T, "fp16", ("tiled", "fp16"))):
        monkeypatch.setattr(LB, "MAX_T", max_t)
        with dispatch.scores(choice):
            dispatch.looped_block(x0, sig, plen, real, thr, w, loops=1, halting=False, window=1, use_bias=True)
        assert ran[-1] == path, (max_t, choice)
