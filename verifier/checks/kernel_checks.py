"""Kernels against their references, run through the functions the spec names: on the GPU
through cuTile (--device cuda), elsewhere through the CPU emulator of the same kernel source.

Every run NaN-poisons the kernel's outputs first (floats NaN, integers offset, booleans
inverted), so an element the kernel never writes fails the comparison. The catalogued probes
(padded vocabulary, NaN guard, tile index) are differential runs on the inputs that expose
their bug; `kernel.differential` adds every declared shape and hypothesis-drawn shapes that
span several tiles in every tiled dimension.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Optional

import torch

from ..binding import BoundKernel
from ..compare import mismatch
from ..contract import KernelCase, MissingCapability, validated
from ..kernel_build import compile_all, cutile_installed, tile_problems
from ..registry import Params, check
from ..result import failed, passed, skipped
from ..target import Target
from .common import to

_DTYPE = {"float32": torch.float32, "bfloat16": torch.float32, "float16": torch.float32}  # fp32 inputs


def used_kernels(target: Target, step) -> list[tuple[BoundKernel, KernelCase]]:
    """The kernels the step `uses` (all declared ones if it names none), with their cases."""
    names = [u.split(".", 1)[1] for u in (step.uses if step else ()) if u.startswith("kernel.")]
    names = names or list(target.kernels)
    if names and target.only_kernels is not None:
        names = [n for n in names if n in target.only_kernels]
        if not names:
            raise MissingCapability("kernels", target.system, f"the step uses none of {list(target.only_kernels)}")
    if not names:
        raise MissingCapability("kernels", target.system, "the spec declares no kernels")
    cases = target.need("kernels").kernel_cases()
    out = []
    for name in names:
        bk = target.kernels[name]
        if bk.function is None or bk.reference is None or name not in cases:
            raise MissingCapability("kernels", target.system, f"kernel '{name}' lacks a function, a reference "
                                    f"or a case in kernel_cases()")
        out.append((bk, validated(KernelCase, cases[name], f"kernel_cases()['{name}']")))
    return out


def poison(want: Any) -> Any:
    """Output buffers shaped like the reference's, filled so that an unwritten element shows."""
    if isinstance(want, (tuple, list)):
        return tuple(poison(w) for w in want)
    if want.is_floating_point():
        return torch.full_like(want, float("nan"))
    if want.dtype == torch.bool:
        return ~want
    return want + 12345


def _flat(x: Any) -> list:
    return list(x) if isinstance(x, (tuple, list)) else [x]


def run_case(bk: BoundKernel, case: KernelCase, shape: dict, seed: int, kind: str, device: str,
             own_outputs: bool = False) -> Optional[str]:
    """Kernel vs reference on one input: None, or what differs. The kernel writes into poisoned
    buffers (`out=`), or with `own_outputs` into the buffers it allocates (the model's call)."""
    args, kw = case.make(dict(shape), seed, kind)
    args = to(args, torch.device(device))
    want = bk.reference(*args, **kw)
    got = bk.function(*args, **kw) if own_outputs else bk.function(*args, **kw, out=poison(want))
    if case.compare is not None:
        return case.compare(_cpu(got), _cpu(want), _cpu(args))
    for i, (g, w) in enumerate(zip(_flat(got), _flat(want))):
        g, w = g.detach().cpu(), w.detach().cpu()
        if w.is_floating_point():
            problem = mismatch(f"{bk.spec.name}[{i}]", g, w, _DTYPE[bk.spec.dtype], scaled=case.scaled, **shape)
        else:
            problem = None if torch.equal(g, w) else f"{bk.spec.name}[{i}]: {int((g != w).sum())} elements differ"
        if problem:
            return problem
    return None


def _cpu(x: Any) -> Any:
    return to(x, torch.device("cpu"))


def declared_shapes(bk: BoundKernel, case: KernelCase, device: str) -> list[dict]:
    """The spec's shapes; on the emulator each dim is capped at the top of the case's drawing
    range (which spans several tiles of every tiled dim), so that a CPU run takes seconds."""
    shapes = [dict(s) for s in bk.spec.shapes] or [{d: hi for d, (lo, hi) in case.dims.items()}]
    if device == "cuda":
        return shapes
    return [{d: min(v, case.dims[d][1]) if d in case.dims else v for d, v in s.items()} for s in shapes]


def _probe(target: Target, runs, skip: str, fail: str, ok: str, **measured):
    """The verdict of a catalogued probe: skipped with `skip` if there is nothing to run, else
    failed with `fail` and the first difference, else passed with `ok`."""
    if not runs:
        return skipped(skip)
    problem = _first_failure(target, runs)
    if problem:
        return failed(f"{fail}: {problem}")
    return passed(ok, runs=len(runs), **measured)


def _first_failure(target: Target, runs, own_outputs: bool = False) -> Optional[str]:
    for bk, case, shape, seed, kind in runs:
        problem = run_case(bk, case, shape, seed, kind, target.device, own_outputs)
        if problem:
            return f"{bk.spec.name} {shape} (seed {seed}, {kind} inputs{', own outputs' if own_outputs else ''}): {problem}"
    return None


class VocabParams(Params):
    vocab: list[int] = [14, 65, 1000]
    rows: int = 96


@check("kernel.padded_vocab_mask", VocabParams)
def padded_vocab_mask(target: Target, p: VocabParams, step=None):
    """With the masked dimension (the vocabulary) at sizes that are not powers of two, the kernel
    equals its unpadded reference: padded columns never leak into the softmax."""
    runs = []
    for bk, case in used_kernels(target, step):
        dim = bk.spec.mask_columns_by
        if dim:
            base = declared_shapes(bk, case, target.device)[0]
            rows = next(iter(base))                      # a shape's first dim counts its rows
            runs += [(bk, case, {**base, rows: p.rows, dim: v}, target.seed + v, "random") for v in p.vocab]
    return _probe(target, runs, "no used kernel declares `mask_columns_by`",
                  "padded vocabulary columns change the result",
                  f"{len(runs)} runs at vocabulary {p.vocab} equal the reference on {target.where}")


@check("kernel.nan_guard")
def nan_guard(target: Target, params, step=None):
    """Inputs of -inf, +inf and +-1e30 (whole rows impossible) give finite outputs equal to the
    reference's: no (-inf) - (-inf) = NaN reaches a comparison."""
    runs = [(bk, case, declared_shapes(bk, case, target.device)[0], target.seed + i, "extreme")
            for i, (bk, case) in enumerate(used_kernels(target, step)) if "extreme" in case.kinds]
    return _probe(target, runs, "no used kernel takes extreme inputs", "extreme inputs",
                  f"finite, reference-equal outputs for -inf/+inf/1e30 inputs on {target.where}")


@check("kernel.tile_index_probe")
def tile_index_probe(target: Target, params, step=None):
    """At shapes spanning several tiles in every tiled dimension (a ragged last tile included),
    with distinct ordered inputs and poisoned outputs, every output element comes back where it
    belongs: tile indices are not multiplied by the tile size."""
    runs = [(bk, case, {d: hi for d, (lo, hi) in case.dims.items()}, target.seed,
             "arange" if "arange" in case.kinds else "random") for bk, case in used_kernels(target, step)]
    return _probe(target, runs, "no used kernel", "outputs missing or misplaced",
                  f"{len(runs)} multi-tile probes complete and in order on {target.where}", shapes=[r[2] for r in runs])


class DifferentialParams(Params):
    examples: int = 8         # hypothesis-drawn shapes per kernel on the emulator
    gpu_examples: int = 2     # ... on the GPU, where every new shape's constants are a JIT compile


def _drawn(target: Target, bk: BoundKernel, case: KernelCase, n: int) -> Optional[str]:
    """n hypothesis-drawn (shape, seed, kind): the first failure with its reproduction, or None."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    shapes = st.fixed_dictionaries({d: st.integers(lo, hi) for d, (lo, hi) in case.dims.items()})
    found: list[str] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(shape=shapes, seed=st.integers(0, 2**16), kind=st.sampled_from([k for k in case.kinds if k != "arange"]))
    def prop(shape, seed, kind):
        problem = run_case(bk, case, shape, seed, kind, target.device)
        if problem:
            found.append(f"{bk.spec.name} {shape} (seed {seed}, {kind}): {problem}; reproduce with "
                         f"kernel_cases()[{bk.spec.name!r}]['make']({shape}, {seed}, {kind!r})")
            raise AssertionError(problem)
    try:
        prop()
    except AssertionError:
        return found[0] if found else "hypothesis reported a failure"
    return None


@check("kernel.differential", DifferentialParams)
def differential(target: Target, p: DifferentialParams, step=None):
    """Every used kernel equals its declared reference at every declared shape and at
    hypothesis-drawn shapes spanning several tiles, random and extreme inputs, outputs poisoned."""
    total, (part, pick) = 0, _shard(target.differential_part)
    for bk, case in used_kernels(target, step):
        shapes = declared_shapes(bk, case, target.device) if part != "drawn" else []
        runs = [(bk, case, s, target.seed + i, "random") for i, s in enumerate(shapes)]
        own = runs[:1]                                  # the first declared shape, into its own outputs
        if pick is not None:                            # its seed and place as in the whole step
            runs, own = runs[pick:pick + 1], own if pick == 0 else []
        problem = _first_failure(target, runs) or _first_failure(target, own, own_outputs=True)
        n = 0 if part == "declared" else p.gpu_examples if target.device == "cuda" else p.examples
        problem = problem or (_drawn(target, bk, case, n) if n else None)
        total += len(runs) + n
        if problem:
            return failed(f"kernel differs from its reference: {problem}")
    if not total:
        return failed(f"differential shard {target.differential_part!r} ran no shape: nothing was compared")
    return passed(f"{total} shapes (declared and drawn) equal their references on {target.where}", runs=total)


def _shard(part: Optional[str]) -> tuple[Optional[str], Optional[int]]:
    """A GPU test's shard of the differential: None (all), 'drawn', 'declared', or 'declared:N'
    (the N-th declared shape alone) -> (part, N)."""
    name, _, index = (part or "").partition(":")
    if part is not None and (name not in ("declared", "drawn") or index and (name != "declared" or not index.isdigit())):
        raise ValueError(f"differential_part must be 'declared', 'declared:N' or 'drawn', not {part!r}")
    return (name or None), (int(index) if index else None)


class CompileParams(Params):
    archs: Optional[list[str]] = None     # default: each kernel's declared archs
    quick: bool = True


@check("kernel.compile", CompileParams)
def compile_kernels(target: Target, p: CompileParams, step=None):
    """Every used kernel: power-of-two tiles for every declared shape, the spec's tile constants
    equal to the code's, and an ahead-of-time compile (quick: one signature per kernel)."""
    bound = [bk for bk, _ in used_kernels(target, step)] if target.kernels else []
    if not bound:
        return skipped("the spec declares no kernels")
    problems = tile_problems(bound)
    if problems:
        return failed(f"{len(problems)} tile problem(s): cuTile rejects non-power-of-two tiles (TileTypeError)",
                      "\n".join(problems), problems=len(problems))
    if not cutile_installed():
        return skipped("tiles are powers of two; cuda.tile is not installed here, so nothing was compiled")
    t0 = time.perf_counter()
    try:
        built = compile_all(bound, p.archs, quick=p.quick)
    except Exception as e:
        return failed(f"a kernel does not compile: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
    # every used kernel must have compiled: one whose module offers no signatures (or an empty
    # list) would otherwise pass this step with nothing built for it
    none = sorted({bk.spec.name for bk in bound} - {b.kernel for b in built})
    if none:
        return failed(f"{len(none)} declared kernel(s) compiled no variant: {', '.join(none)} (their modules' "
                      "aot_signatures(**shape) gave nothing to build at the declared shapes)", missing=none)
    archs = sorted({b.arch for b in built})
    return passed(f"{len(built)} kernel builds for {archs} in {time.perf_counter() - t0:.1f} s; tiles powers of two",
                  builds=len(built), archs=archs)


class ParityParams(Params):
    rows: int = 24
    long_tokens: int = 160        # one round at rows this long: past a persistent kernel's T limit (128)
    tolerance: float = 1e-3       # max |kernel - reference| logit on the emulator (fp32)
    gpu_tolerance: float = 0.05   # the same, relative to max |logit|, on the GPU (bf16 products)
    gpu_flips: float = 0.02       # with halting on the GPU: share of tokens whose step count may differ
                                  # (bf16 rounding moves a score that sits at the threshold in a later loop)
    variants: list[dict[str, Any]] = []   # param overrides (spec names) at the kernels' domain edges


@contextlib.contextmanager
def counting_launches(kernels: dict):
    """Count calls of every declared kernel function (looked up on its module at call time, as
    a dispatcher does) while the block runs."""
    calls = {name: 0 for name in kernels}
    saved = []
    for name, bk in kernels.items():
        if bk.function is None:
            continue

        def counted(*a, _name=name, _fn=bk.function, **kw):
            calls[_name] += 1
            return _fn(*a, **kw)
        saved.append((bk.module, bk.spec.function, bk.function))
        setattr(bk.module, bk.spec.function, counted)
    try:
        yield calls
    finally:
        for module, attr, fn in saved:
            setattr(module, attr, fn)


def _kernel_vs_reference(target: Target, sys, model, idx, threshold=None) -> tuple[float, float, float, int, dict, dict]:
    """(max |diff|, argmax agreement, max |logit|, tokens whose step counts differ, launches per
    declared kernel on the reference path, and on the kernel path) of the kernel path against the
    reference (halting at `threshold`). Logits are compared where both paths ran a token the same
    number of loops: a token whose halting decision flipped is counted, not compared."""
    with torch.no_grad(), counting_launches(target.kernels) as on_ref:
        ref, _, ref_steps = sys.forward(model, idx, threshold=threshold)
    with torch.no_grad(), counting_launches(target.kernels) as on_kernel:
        ker, _, ker_steps = sys.forward(model, idx, threshold=threshold, backend="kernel")
    same = ker_steps == ref_steps
    diff = float((ker - ref).abs()[same].max()) if bool(same.any()) else 0.0
    return (diff, float((ker.argmax(-1) == ref.argmax(-1)).float().mean()), float(ref.abs().max()),
            int((~same).sum()), on_ref, on_kernel)


def _long_rows(target: Target, sys, model, idx, tokens: int):
    """(rows of at least `tokens` tokens, made by joining the check rows end to end, or None;
    a note when the system does not take rows that long). Long rows reach the path a dispatcher
    takes past a kernel's length limit; a system that refuses them (learned positions) says so."""
    k = -(-tokens // idx.shape[1])
    if idx.shape[0] < k:
        return None, f"long rows: fewer than {k} check rows to join"
    x = idx[: idx.shape[0] // k * k].reshape(-1, k * idx.shape[1])
    try:
        with torch.no_grad():
            sys.forward(model, x)
    except Exception as e:
        return None, f"long rows: the system does not take {x.shape[1]} tokens ({type(e).__name__}: {str(e)[:120]})"
    return x, None


def _stated_runs(sys) -> dict[str, Callable[..., bool]]:
    """Declared kernel name -> the system's statement of where its kernel path launches it."""
    cases = sys.kernel_cases()
    out = {}
    for name, case in cases.items():
        runs = validated(KernelCase, case, f"kernel_cases()['{name}']").runs
        if runs is not None:
            out[name] = runs
    return out


def launch_problem(stated: dict, on_ref: dict, on_kernel: dict, model, idx, threshold) -> Optional[str]:
    """Why the launches break the paths' contract (None: they keep it): the reference path
    launches no declared kernel; the kernel path launches each kernel the system states it runs
    here and no other (where it states nothing: at least one)."""
    on_ref = {k: n for k, n in on_ref.items() if n}
    if on_ref:
        return f"the reference path launched declared kernel(s) {on_ref}: it silently runs the kernel's code"
    launched = {k for k, n in on_kernel.items() if n}
    if not stated:
        return None if launched else ("the kernel path launched no declared kernel: it silently runs the "
                                      "reference's code")
    expected = {k for k, runs in stated.items() if runs(model, idx, threshold)}
    missing, extra = expected - launched, (launched & set(stated)) - expected
    if missing:
        return (f"the kernel path did not launch {sorted(missing)}, which the system states it runs at this "
                f"shape (launched: {sorted(launched) or 'none'}): a silent fallback to the reference")
    if extra:
        return f"the kernel path launched {sorted(extra)}, which the system states it does not run at this shape"
    return None


def _parity_rounds(target: Target, sys, p: ParityParams, m, label: str = "") -> tuple[Optional[str], list[str], set]:
    """(why the kernel path breaks parity, or None; one line per round; the kernels it launched)
    for one system (the configured one, or a variant of it)."""
    from .common import tensors
    from .loop_checks import _threshold
    model = sys.build(target.seed).to(target.torch_device()).eval()
    b = next(iter(sys.train_batches(p.rows, target.seed + 4)))
    idx = tensors(b)[0].to(target.torch_device())
    stated, rounds, ran = _stated_runs(sys), [], set()
    halt = _threshold(target, sys, model, idx)
    long_idx, long_note = _long_rows(target, sys, model, idx, p.long_tokens)
    for round_ in ("with halting", "long rows", "as built", "after an in-place update", "after an optimizer step"):
        threshold = halt if round_ in ("with halting", "long rows") else None
        if (round_ == "with halting" and halt is None) or (round_ == "long rows" and long_idx is None):
            continue
        x = long_idx if round_ == "long rows" else idx
        diff, agree, scale, flips, on_ref, on_kernel = _kernel_vs_reference(target, sys, model, x, threshold)
        problem = launch_problem(stated, on_ref, on_kernel, model, x, threshold) if target.kernels else None
        if problem:
            return f"{label}{round_}, {problem}", rounds, ran
        ran |= {k for k, n in on_kernel.items() if n}
        limit = p.tolerance if target.device == "cpu" else p.gpu_tolerance * max(1.0, scale)
        rounds.append(f"{label}{round_}{f' (T = {x.shape[1]})' if x is long_idx else ''}: max diff {diff:.2e}, "
                      f"argmax agreement {agree:.1%}, {flips} step counts differ, "
                      f"kernels {sorted(k for k, n in on_kernel.items() if n) or 'none'}")
        allowed = 0 if target.device == "cpu" else int(p.gpu_flips * x.numel())
        if flips > allowed:       # the emulator runs fp32: there a flip is a wrong halting branch
            return (f"{label}{round_}, {flips} tokens ran a different number of loops on the kernel path (> "
                    f"{allowed}): a wrong halting update"), rounds, ran
        if not m.upper(f"max_diff ({label}{round_})", diff, limit):
            return (f"{label}{round_}, the kernel path and the reference differ by {diff:.3g} (> {limit:.3g}; "
                    f"argmax agreement {agree:.1%}): stale weights or a wrong kernel"), rounds, ran
        _change_weights(sys, model, b, round_)
    if long_note:
        rounds.append(label + long_note)
    return None, rounds, ran


@check("kernel.inference_parity", ParityParams)
def inference_parity(target: Target, p: ParityParams):
    """The kernel inference path predicts what the reference path predicts, also after the
    weights change in place the way a fused optimizer changes them (no version bump) and after
    a step of the system's own optimizer: no stale copy of the weights is ever used. The
    reference path launches no declared kernel, the kernel path the ones the system states it
    runs at this shape (kernel_cases' `runs`): a dispatcher that silently swaps them computes
    the same numbers, so the launches are counted. The same again for each of `variants`: the
    system with those params overridden, at the edges of the kernels' declared domains (a
    dispatcher that launches a kernel outside its domain, or not inside it, fails there)."""
    from ..result import Margins
    target.need("kernels")
    target.need("training")
    target.need("data")
    m, rounds, ran = Margins(), [], set()
    for v in [{}] + [dict(v) for v in p.variants]:
        label = ", ".join(f"{k}={val}" for k, val in v.items())
        try:
            sys = target.variant(v) if v else target.system
        except Exception as e:
            return failed(f"variant {label}: the system refuses it ({type(e).__name__}: {str(e)[:200]})")
        try:
            problem, more, got = _parity_rounds(target, sys, p, m, f"[{label}] " if label else "")
        except Exception as e:
            if not v:
                raise
            # past a kernel's domain a launch may not even run (a tile that is not a power of two)
            problem, more, got = f"[{label}] {type(e).__name__}: {str(e).splitlines()[0][:200]}", [], set()
        rounds += more
        if problem:
            return failed(problem, "\n".join(rounds), m)
        ran |= got if not v else set()
    if target.kernels and not ran:
        return skipped("no declared kernel runs at this model's shapes (the system states so): its kernel path "
                       "is the reference here, so there is nothing to compare")
    return passed(f"kernel path = reference path before and after the weights change, on {target.where}; "
                  f"kernels {sorted(ran)}" + (f"; {len(p.variants)} variants at the kernels' domain edges"
                                              if p.variants else ""), "\n".join(rounds), m)


def _change_weights(sys, model, b, round_: str) -> None:
    if round_ == "as built":
        with torch.no_grad():
            for q in model.parameters():
                q.data.mul_(1.5).add_(0.01)      # `.data`: the parameter's version does not change
    elif round_ == "after an in-place update":
        model.train()
        b = to(b, next(model.parameters()).device)
        sys.train_step(model, sys.optimizer(model), b, 10**6)
        model.eval()
