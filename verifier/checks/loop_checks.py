"""General properties of every correct looped system, on the reference path and (where the
system has kernels) the kernel path:

    loop accounting    forward(loops=k) applies the loop block k times; per-token steps count
                       exactly the loops a token ran, halting off and on
    causality          perturbing tokens after position t never changes outputs at <= t, and
                       perturbing one row never changes another
    halting semantics  a token halts exactly when its declared score crosses the threshold,
                       its state stays frozen after, and kernel and reference agree
"""
from __future__ import annotations

from typing import Optional

import torch

from ..contract import MissingCapability, provides
from ..registry import Params, check
from ..result import Margins, failed, passed
from ..target import Target
from .common import batch, counting_calls, extremes, halts, real_tokens, score64, tensors


def _backends(target: Target) -> list[str]:
    """'reference', and 'kernel' where the system has kernels (the emulator off the GPU)."""
    return ["reference", "kernel"] if provides(target.system, "kernels") else ["reference"]


def _on(target: Target, model, idx):
    """model and idx on the target's device (kernels on the GPU with --device cuda)."""
    dev = target.torch_device()
    return model.to(dev), idx.to(dev)


class AccountingParams(Params):
    rows: int = 8


def _loop_counts(target: Target, L: int, untied: bool) -> list[int]:
    """1, L and 2L (a stack of L distinct blocks cannot run 2L)."""
    return sorted({1, L} if untied else {1, L, 2 * L})


@check("model.loop_accounting", AccountingParams)
def loop_accounting(target: Target, p: AccountingParams):
    """forward(loops=k) applies the loop block exactly k times; each real token's steps is k
    without halting, min_loops when every token halts at once, k when none halts."""
    sys = target.need("model")
    d = target.design
    model = sys.build(target.seed).eval()
    idx, _ = tensors(batch(target, p.rows))
    real = real_tokens(target, idx)
    modules = sys.loop_modules(model)
    problems, runs = [], 0
    policies = [(None, "fixed depth", None)]
    if d.halting is not None:
        always, never = extremes(d.halting.halts_when)
        policies += [(always, "every token halts at once", "min"), (never, "no token halts", "k")]
    for backend in _backends(target):
        m, x = _on(target, model, idx)
        for k in _loop_counts(target, d.loops, len(modules) > 1):
            for threshold, what, expect in policies:
                with counting_calls(modules) as calls, torch.no_grad():
                    steps = sys.forward(m, x, loops=k, threshold=threshold, backend=backend)[2].cpu()
                runs += 1
                want = min(d.halting.min_loops, k) if expect == "min" else k
                got = sorted(set(steps[real].tolist()))
                if got != [want]:
                    problems.append(f"{backend}, loops={k}, {what}: real tokens report steps {got[:6]}, want {want}")
                if backend == "reference" and threshold is None and sum(calls) != k:
                    problems.append(f"loops={k}: the loop block ran {sum(calls)} times, want {k}")
    if problems:
        return failed(f"{len(problems)} loop-count violation(s): {problems[0]}", "\n".join(problems), runs=runs)
    return passed(f"{runs} runs ({', '.join(_backends(target))} path): loops and per-token steps as declared",
                  runs=runs)


class CausalityParams(Params):
    rows: int = 8
    tolerance: float = 1e-5
    halting_quantile: float = 0.5


def _cuts(target: Target, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(B,) a position t per row: in the answer when the prompt attends both ways (its positions
    may see the whole prompt), anywhere before the last token otherwise."""
    lay = target.design.layout
    T = idx.shape[1]
    lo = torch.zeros(idx.shape[0], dtype=torch.long)
    if lay is not None and lay.bidirectional_prompt:
        end = target.need("data").encode(lay.prompt_end)[0]
        lo = (idx == end).int().argmax(dim=1)
    return lo + (torch.rand(idx.shape[0], generator=g) * (T - 1 - lo).clamp_min(0)).long()


def _threshold(target: Target, sys, model, x) -> Optional[float]:
    """A threshold at which some tokens halt after the first loop and some do not: the middle of
    the widest gap between the scores of the middle half of the tokens, so that no token sits
    within rounding of it."""
    d = target.design
    if d.halting is None or d.halting.score == "learned":
        return None
    with torch.no_grad():
        s = score64(sys.forward(model, x, loops=1)[0].cpu(), d.halting.score)
    return _widest_gap(s[real_tokens(target, x.cpu())])


def _widest_gap(values: torch.Tensor) -> Optional[float]:
    """The middle of the widest gap between the middle half of `values` (sorted, distinct): a
    threshold some tokens cross and some do not, with none within rounding of it."""
    s = torch.unique(values)          # sorted
    if len(s) < 2:
        return float(s[0]) if len(s) else None
    lo, hi = len(s) // 4, max(len(s) // 4 + 1, 3 * len(s) // 4)
    i = lo + int((s[lo + 1:hi + 1] - s[lo:hi]).argmax())
    return float((s[i] + s[i + 1]) / 2)


@check("model.causality", CausalityParams)
def causality(target: Target, p: CausalityParams):
    """Outputs at positions <= t do not change when tokens after t change; one row's outputs do
    not change when another row changes: halting off and on, reference and kernel paths."""
    sys = target.need("model")
    model = sys.build(target.seed).eval()
    idx, _ = tensors(batch(target, p.rows))
    g = torch.Generator().manual_seed(target.seed + 5)
    V = None
    m = Margins()
    worst, where = 0.0, ""
    for backend in _backends(target):
        mm, x = _on(target, model, idx)
        thr = _threshold(target, sys, mm, x)
        for threshold in (None, thr) if thr is not None else (None,):
            with torch.no_grad():
                base, _, steps = sys.forward(mm, x, threshold=threshold, backend=backend)
            V = V or base.shape[-1]
            cut = _cuts(target, idx, g)
            later = torch.arange(idx.shape[1])[None, :] > cut[:, None]
            noise = torch.randint(0, V, idx.shape, generator=g)
            other = idx.clone()
            other[later] = noise[later]
            other[0] = noise[0]                                 # row 0 changes entirely
            with torch.no_grad():
                pert, _, psteps = sys.forward(mm, other.to(x.device), threshold=threshold, backend=backend)
            keep = ~later
            keep[0] = False
            keep_rows = torch.ones(idx.shape[0], dtype=torch.bool)
            keep_rows[0] = False
            diff = float((base.cpu() - pert.cpu()).abs().amax(-1)[keep].max())
            moved = int((steps.cpu() != psteps.cpu())[keep].sum())
            if diff > worst or moved:
                worst, where = diff, f"{backend}, halting {'on' if threshold is not None else 'off'}"
            if moved:
                return failed(f"{moved} token(s) at or before the cut changed their loop count when later tokens "
                              f"or another row changed ({where})", max_diff=diff)
    if not m.upper("max_diff", worst, p.tolerance):
        return failed(f"outputs at or before position t change by {worst:.3g} when later tokens or another row "
                      f"change ({where}): information flows backwards or across rows", margins=m, max_diff=worst)
    return passed(f"no output moved by more than {worst:.1e} ({', '.join(_backends(target))}; halting off"
                  f"{' and on' if target.design.halting else ''})", margins=m, max_diff=worst)


class HaltingParams(Params):
    rows: int = 16
    tolerance: float = 1e-5
    ambiguous: float = 1e-4      # scores this close to the threshold are not judged (rounding)


def _prefix_runs(sys, model, x, L: int, thr: float, backend: str):
    """logits and steps of forward(loops=k) for k = 1..L with halting at `thr` (a run cut after
    k loops is the first k loops of the L-loop run)."""
    out = []
    with torch.no_grad():
        for k in range(1, L + 1):
            logits, _, steps = sys.forward(model, x, loops=k, threshold=thr, backend=backend)
            out.append((logits.cpu(), steps.cpu()))
    return out


def _first_crossing(scores: list, min_loops: int, crosses, real, near) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps each token must report, mask of tokens whose verdict is unambiguous) from per-loop
    scores (k = 1..L): the first loop k >= min_loops (k < L) whose score `crosses`, else L; a
    token still running at a loop whose score is `near` the threshold is not judged."""
    L = len(scores)
    want = torch.full(real.shape, L, dtype=torch.long)
    decided = torch.zeros(real.shape, dtype=torch.bool)
    judged = torch.ones(real.shape, dtype=torch.bool)
    for k in range(max(min_loops, 1), L):
        s = scores[k - 1]
        live = real & ~decided
        judged &= ~(live & near(s))
        stop = live & crosses(s)
        want[stop] = k
        decided |= stop
    return want, judged & real


def _expected_steps(runs, thr: float, decl, real, ambiguous: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The rule applied to each loop's prediction: its score crosses the threshold."""
    scores = [score64(logits, decl.score) for logits, _ in runs]
    return _first_crossing(scores, decl.min_loops, lambda s: halts(s, thr, decl.halts_when), real,
                           lambda s: (s - thr).abs() < ambiguous)


def _gate_run(sys, model, x, L: int, thr: float, backend: str):
    """(steps (B, T), the learned gate's logits (B, T) of every loop) of forward(loops=L) halting
    at `thr`. Until a token halts its state is the fixed-depth one, so its gate values are too."""
    gates = []
    hook = sys.gate_module(model).register_forward_hook(
        lambda mod, args, out: gates.append(out.detach().double().reshape(out.shape[0], out.shape[1]).cpu()))
    try:
        with torch.no_grad():
            _, _, steps = sys.forward(model, x, loops=L, threshold=thr, backend=backend)
    finally:
        hook.remove()
    return steps.cpu(), gates


def _gate_halted(gates: list) -> torch.Tensor:
    """(L, B, T) probability that a token has halted by loop k: 1 - prod_(j<=k) (1 - sigmoid(g_j))."""
    return 1 - torch.cumprod(1 - torch.sigmoid(torch.stack(gates)), dim=0)


def _gate_threshold(sys, model, x, L: int, decl, real) -> float:
    """A threshold some tokens cross at loop min_loops and some do not (the widest gap of the
    middle half of their halting probabilities there), read from a run that halts nothing."""
    _, gates = _gate_run(sys, model, x, L, 0.999, "reference")
    thr = _widest_gap(_gate_halted(gates)[min(decl.min_loops, L) - 1][real])
    return 0.5 if thr is None else min(max(thr, 0.001), 0.999)


def _gate_expected(gates: list, thr: float, decl, real, ambiguous: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The rule under a learned gate: the probability of having halted reaches the threshold."""
    return _first_crossing(list(_gate_halted(gates)), decl.min_loops, lambda s: s >= thr, real,
                           lambda s: (s - thr).abs() < ambiguous)


def _gate_problem(target: Target, sys, model, x, real, p) -> Optional[str]:
    """Why a learned gate's halting is not its declared rule (None: it is)."""
    d = target.design
    thr = _gate_threshold(sys, model, x, d.loops, d.halting, real)
    for backend in _backends(target):
        steps, gates = _gate_run(sys, model, x, d.loops, thr, backend)
        if len(gates) < d.loops:
            return f"{backend}: the gate ran {len(gates)} times in {d.loops} loops"
        want, judged = _gate_expected(gates[:d.loops], thr, d.halting, real, p.ambiguous)
        wrong = int((steps.long() != want)[judged].sum())
        if wrong:
            return (f"{backend}: {wrong}/{int(judged.sum())} tokens halt at another loop than the one where their "
                    f"learned gate's probability of having halted first reaches {thr:.4g}")
    return None


@check("model.halting_semantics", HaltingParams)
def halting_semantics(target: Target, p: HaltingParams):
    """With halting on: a token halts at the first loop (from min_loops) whose prediction's
    declared score crosses the threshold; a halted token's output stays what it was when it
    halted; the kernel path reports the same per-token steps as the reference."""
    sys, d = target.need("model"), target.design
    if d.halting is None:
        raise MissingCapability("design", target.system, "design() declares no halting")
    model = sys.build(target.seed).eval()
    idx, _ = tensors(batch(target, p.rows))
    real = real_tokens(target, idx)
    model, x = _on(target, model, idx)
    thr = _threshold(target, sys, model, x)
    if thr is None:
        thr = 0.5
    L, m = d.loops, Margins()
    steps_by, judged_by = {}, {}
    for backend in _backends(target):
        runs = _prefix_runs(sys, model, x, L, thr, backend)
        final_logits, steps = runs[-1]
        steps_by[backend] = steps
        frozen = max((float((final_logits - logits).abs().amax(-1)[(steps == k) & real].max())
                      for k, (logits, _) in enumerate(runs[:-1], start=1) if ((steps == k) & real).any()), default=0.0)
        if not m.upper(f"frozen_{backend}", frozen, p.tolerance):
            return failed(f"{backend}: a halted token's output moved by {frozen:.3g} after it halted", margins=m)
        if d.halting.score != "learned":
            want, judged = _expected_steps(runs, thr, d.halting, real, p.ambiguous)
            judged_by[backend] = judged
            wrong = int((steps.long() != want)[judged].sum())
            if wrong:
                return failed(f"{backend}: {wrong}/{int(judged.sum())} tokens halt at another loop than the one "
                              f"where their {d.halting.score} first crosses {thr:.4g}", margins=m, wrong=wrong)
        halted = int(((steps < L) & real).sum())
    if d.halting.score == "learned" and provides(target.system, "gate"):
        problem = _gate_problem(target, sys, model, x, real.cpu(), p)
        if problem:
            return failed(problem, margins=m)
    if len(steps_by) == 2:
        clear = judged_by.get("reference", real) & judged_by.get("kernel", real)
        differ = int((steps_by["reference"] != steps_by["kernel"])[clear].sum())
        if differ:
            return failed(f"the kernel path and the reference report different steps for {differ} tokens", margins=m)
    return passed(f"{halted}/{int(real.sum())} tokens halted early at threshold {thr:.3g}, each at its declared "
                  f"loop, outputs frozen after ({', '.join(steps_by)})", margins=m, halted=halted)
