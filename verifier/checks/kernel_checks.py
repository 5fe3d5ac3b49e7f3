"""Kernel invariants, checked by running the kernels themselves: on the GPU through cuTile,
elsewhere through the CPU emulator (same source), plus ahead-of-time compilation."""
from __future__ import annotations

import math
import time

import torch

from kernels import aot as AOT
from kernels import halting as K
from kernels import tile as TL

from ..registry import Params, check
from ..result import failed, passed, skipped
from ..target import Target


def _device(target: Target) -> str:
    return "cuda" if target.device == "cuda" and torch.cuda.is_available() else "cpu"


def _where(target: Target) -> str:
    return "cuTile on the GPU" if _device(target) == "cuda" else "the CPU emulator"


class VocabParams(Params):
    vocab: list[int] = [14, 65, 1000]
    rows: int = 96
    tolerance: float = 1e-4


@check("kernel.padded_vocab_mask", VocabParams)
def padded_vocab_mask(target: Target, p: VocabParams):
    """Entropy over a vocabulary padded to a power of two equals the unpadded float64 entropy."""
    dev, gen, worst = _device(target), target.generator(), {}
    for V in p.vocab:
        logits = (torch.randn(p.rows, V, generator=gen) * 3).to(dev)
        got = K.entropy_cutile(logits).double().cpu()
        want = K.entropy_oracle(logits.cpu())
        worst[V] = float((got - want).abs().max())
        if not worst[V] <= p.tolerance:
            pad = TL.next_pow2(V) - V
            return failed(f"V={V} (padded by {pad} columns): entropy off by {worst[V]:.3g} nats; padded columns "
                          f"leak into the softmax sum (exp(0)=1 per zero-padded column)", max_error=worst)
    return passed(f"entropy matches float64 for V={p.vocab} on {_where(target)}", max_error=worst)


@check("kernel.nan_guard")
def nan_guard(target: Target, params):
    """Rows of -inf, +-1e30, +inf and mixes give finite entropy and sane halt decisions."""
    dev, V = _device(target), 14
    rows = torch.randn(8, V)
    rows[0] = -math.inf                       # nothing possible: must not halt
    rows[1, 5:] = -math.inf                   # some columns impossible
    rows[2] = 1e30                            # huge and equal: uniform
    rows[3, 0] = 1e30                         # one huge: certain
    rows[4, 0] = math.inf                     # +inf: certain
    rows[5, :2] = math.inf                    # two +inf: uniform over them
    rows[6] = -1e30
    rows[7, 1:] = -math.inf                   # exactly one possible token: certain
    M, D = rows.shape[0], 8
    state = torch.arange(M * D, dtype=torch.float32).view(M, D)
    args = (rows.to(dev), (state + 1000).to(dev), state.to(dev), torch.ones(M, dtype=torch.bool, device=dev),
            torch.zeros(M, dtype=torch.int32, device=dev), torch.full((M,), 0.1, device=dev))
    _, active, steps, ent = (t.cpu() for t in K.halting_update_cutile(*args))
    want = K.entropy_oracle(rows)
    if torch.isnan(ent).any():
        return failed(f"NaN entropy for rows {torch.isnan(ent).nonzero().flatten().tolist()}: (-inf) - (-inf) "
                      f"reaches the comparison, and NaN < threshold makes tokens halt at step 0",
                      entropy=[float(x) for x in ent])
    halted = (~active).tolist()
    expect = [False, None, False, True, True, False, False, True]   # None: depends on the random row
    wrong = [i for i, (h, e) in enumerate(zip(halted, expect)) if e is not None and h != e]
    err = float((ent.double() - want).abs().max())
    if wrong or err > 1e-5 or not (steps == 1).all():
        return failed(f"halt decisions wrong for rows {wrong} or entropy off by {err:.2g}",
                      entropy=[float(x) for x in ent], halted=halted)
    return passed(f"finite entropy for -inf/+inf/1e30 rows on {_where(target)}; halt decisions sane",
                  max_error=err, halted=halted)


@check("kernel.tile_index_probe")
def tile_index_probe(target: Target, params):
    """An arange input with NaN-poisoned outputs comes back complete and in order."""
    dev = _device(target)
    M, V, D = 5 * K.BLOCK_M + 3, 14, 96            # several blocks, a ragged last one, D not a tile multiple
    logits = (torch.arange(M * V, dtype=torch.float32).view(M, V) % 11).to(dev)
    state = torch.arange(M * D, dtype=torch.float32).view(M, D).to(dev)
    new = -state - 1
    active = (torch.arange(M) % 3 != 0).to(dev)
    steps = torch.arange(M, dtype=torch.int32).to(dev)
    thr = torch.zeros(M, device=dev)
    outs = (torch.full((M, D), math.nan, device=dev), torch.zeros(M, dtype=torch.bool, device=dev),
            torch.full((M,), -7, dtype=torch.int32, device=dev))
    entropy = torch.full((M,), math.nan, device=dev)
    try:
        K._launch(logits, new, state, active, steps, thr, True, out=(outs, entropy))
    except Exception as e:  # an element-scaled tile index walks off the array
        return failed(f"kernel launch failed on the probe: {type(e).__name__}: {str(e)[:200]}")
    got_state, got_steps, ent = outs[0].cpu(), outs[2].cpu(), entropy.cpu()
    want_state = torch.where(active.cpu()[:, None], new.cpu(), state.cpu())
    unwritten = int(torch.isnan(got_state).sum() + torch.isnan(ent).sum() + (got_steps == -7).sum())
    misplaced = int((got_state != want_state).sum()) - int(torch.isnan(got_state).sum())
    if unwritten or misplaced or not torch.equal(got_steps, steps.cpu() + active.cpu().int()):
        bad_rows = sorted(set((torch.isnan(got_state).any(1) | (got_state != want_state).any(1)).nonzero().flatten().tolist()))
        return failed(f"{unwritten} output elements never written, {misplaced} written in the wrong place "
                      f"(rows {bad_rows[:12]}...): tile indices scaled by the tile size skip tiles",
                      unwritten=unwritten, misplaced=misplaced)
    return passed(f"{M} rows x {D} state columns, every element written in order on {_where(target)}", rows=M)


@check("kernel.inference_parity")
def inference_parity(target: Target, params):
    """The fused looped-block path (cuTile, or its emulation here) gives the reference path's
    predictions, and still does after the weights change in place (no stale weight copies)."""
    from kernels import dispatch
    from looplm import model as M
    from looplm.data import make_batch, problems
    dev = _device(target)
    cfg = target.small(n_loops=3)
    m = cfg.model
    if not m.tied or m.reinject == "adapter" or m.position == "rope" or cfg.halting.mode == "gate":
        return skipped("this architecture runs the per-loop path at inference (no fused kernel)")
    torch.manual_seed(target.seed)
    model = M.LoopLM(cfg, target.vocab).to(dev).eval()
    d = cfg.data
    idx = make_batch(problems(24, d.min_digits, d.max_digits, seed=5), d.format).idx.to(dev)
    real = idx != target.vocab.pad_id
    # the training optimizer itself: fused AdamW updates weights without bumping their version
    from looplm.train import optimizer
    opt = optimizer(model, cfg.train.model_copy(update={"lr": 0.05}), fused=True)
    agree = []
    for round_ in range(2):
        with torch.no_grad():
            fused = dispatch.looped_inference(model, idx, 3, cfg.halting)
            if fused is None:
                return skipped(f"shape {tuple(idx.shape)} is outside the fused kernel's limits")
            ref = model(idx, trace=True).logits            # trace=True keeps the reference path
        agree.append(float((fused[0].argmax(-1) == ref.argmax(-1))[real].float().mean()))
        err = float((fused[0] - ref)[real].abs().max())
        if agree[-1] < 0.99 or err > 0.1:
            return failed(f"{'after an in-place weight update, ' if round_ else ''}fused and reference predictions "
                          f"differ: argmax agreement {agree[-1]:.1%}, max |diff| {err:.3g}", agreement=agree)
        model.train()
        model(idx, make_batch(problems(24, d.min_digits, d.max_digits, seed=5), d.format).targets.to(dev)).loss.backward()
        opt.step()                                          # change every weight in place
        opt.zero_grad()
        model.eval()
    return passed(f"fused path = reference path before and after an in-place update (agreement "
                  f"{agree[0]:.1%}, {agree[1]:.1%}) on {_where(target)}", agreement=agree)


class CompileParams(Params):
    archs: list[str] = ["sm_90"]
    quick: bool = True


@check("kernel.compile", CompileParams)
def compile_kernels(target: Target, p: CompileParams):
    """Every declared kernel: power-of-two tiles for every declared shape, spec constants equal
    to the code's, and an ahead-of-time compile (quick: one signature per kernel)."""
    if not target.spec.system.kernels:
        return skipped("the spec declares no kernels")
    problems = AOT.tile_problems(target.spec)
    if problems:
        return failed(f"{len(problems)} tile problem(s): cuTile rejects non-power-of-two tiles (TileTypeError)",
                      "\n".join(problems), problems=len(problems))
    if not TL.HAVE_CUTILE:
        return skipped("tiles are powers of two; cuda.tile is not installed here, so nothing was compiled")
    t0 = time.perf_counter()
    try:
        built = AOT.compile_all(target.spec, p.archs, quick=p.quick)
    except Exception as e:
        return failed(f"a kernel does not compile: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    return passed(f"{len(built)} kernel builds for {p.archs} in {time.perf_counter() - t0:.1f} s; tiles powers of two",
                  builds=len(built), archs=p.archs)
