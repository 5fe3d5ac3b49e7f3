"""Training, through the system's own training step and loop: a
smoke run of the real step (gradients, clipping, schedule, parameters held), one batch
memorised, and a resumed run equal to an uninterrupted one. Budgets are steps, never seconds."""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from ..registry import Params, check
from ..result import Margins, failed, passed
from ..target import Target
from .common import batch, dtype_problem, output_dtypes


def peak_step(schedule) -> int:
    """The step at which the declared schedule's learning rate peaks (the end of warm-up):
    learnability is judged there, whatever the run's length (a 20-step run with 50 warm-up
    steps never reaches it, but its model and data should still be learnable)."""
    return schedule.warmup if schedule is not None else 0


def declared_lr(schedule, step: int) -> float:
    """The declared schedule's learning rate at 0-based `step`, from its definition."""
    if schedule.kind == "constant":
        return schedule.lr
    if step < schedule.warmup:
        return schedule.lr * (step + 1) / schedule.warmup
    progress = min(1.0, (step - schedule.warmup) / max(1, schedule.total - schedule.warmup))
    return schedule.min_lr + (schedule.lr - schedule.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


class _StepWatch:
    """What the optimizer sees right before each update: grads (after clipping), lrs."""

    def __init__(self, opt):
        self.norms, self.lrs, self.with_grad = [], [], set()
        self.handle = opt.register_step_pre_hook(self._seen)

    def _seen(self, opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads]))) if grads else 0.0)
        self.lrs.append([g["lr"] for g in opt.param_groups])
        self.with_grad |= {id(p) for g in opt.param_groups for p in g["params"]
                           if p.grad is not None and bool(p.grad.abs().sum() > 0)}


class SmokeParams(Params):
    steps: int = 32
    batch_size: int = 16


def declared_loops(design, step: int) -> set[int]:
    """The loop counts the declared depth policy allows at `step`, from its definition (with a
    progressive loss, the loops of its second pass added: Design.progressive)."""
    d = design.depth
    if d is None or d.kind == "fixed":
        depths = {d.loops if d is not None else design.loops}
    elif d.kind == "curriculum":
        n = len(d.stages)
        depths = {d.stages[min(n - 1, step * n // d.total)]}
    else:
        depths = set(range(d.low, d.high + 1))
    if design.progressive is None:
        return depths
    full = 0 if design.progressive.weight == 1 else 1     # the full pass is left out at weight 1 only
    return {full * L + j for L in depths for j in range(1, L + 1)}


def depth_problems(design, steps_run: list[int], ran: list[int]) -> list[str]:
    """Why the loops each step ran break the declared depth policy (a random depth must vary)."""
    out = [f"step {s}: the training step ran the loop {k} times, the declared depth policy says "
           f"{sorted(declared_loops(design, s))}" for s, k in zip(steps_run, ran) if k not in declared_loops(design, s)]
    d = design.depth
    if d is not None and d.kind == "random" and d.high > d.low and len(set(ran)) < 2:
        out.append(f"random depth {d.low}..{d.high} ran {ran[0]} loops at all {len(ran)} steps: it is not drawn")
    return out


def _smoke_problems(model, opt, watch, before, frozen, clip, schedule, steps_run) -> list[str]:
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and n not in frozen}
    out = [f"the optimizer does not hold {n}" for n, p in model.named_parameters() if n in trainable and id(p) not in held]
    out += [f"{n} never got a gradient" for n, p in model.named_parameters() if n in trainable and id(p) not in watch.with_grad]
    out += [f"{n} did not change" for n, p in model.named_parameters() if n in trainable and torch.equal(p.detach(), before[n])]
    out += [f"frozen {n} changed" for n, p in model.named_parameters() if n in frozen and not torch.equal(p.detach(), before[n])]
    if clip is not None:
        out += [f"step {s}: gradient norm {g:.4g} after clipping exceeds the clip {clip}"
                for s, g in zip(steps_run, watch.norms) if g > clip * (1 + 1e-4)]
    if schedule is not None:
        for s, lrs in zip(steps_run, watch.lrs):
            want = declared_lr(schedule, s)
            bad = [lr for lr in lrs if abs(lr - want) > 1e-9 + 1e-6 * want]
            if bad:
                out.append(f"step {s}: learning rate {bad[0]:.6g}, the declared schedule says {want:.6g}")
    return out


@check("train.step_smoke", SmokeParams)
def step_smoke(target: Target, p: SmokeParams):
    """A few steps of the system's own training step on one fixed batch: the loss is finite and
    falls; every trainable parameter is held by the optimizer, gets a gradient and changes
    (frozen ones do not); the gradient norm after clipping is at most the clip; the learning
    rate follows the declared schedule. The schedule's first steps, points of its decay, then
    its peak."""
    sys = target.need("training")
    d = target.design
    model = sys.build(target.seed).train()
    opt = sys.optimizer(model)
    b = batch(target, p.batch_size)
    before = {n: q.detach().clone() for n, q in model.named_parameters()}
    watch = _StepWatch(opt)
    calls = [0]              # loop-module calls in the current step: the loops its forward ran
    counters = [m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
                for m in sys.loop_modules(model)]
    # the schedule's first steps (a depth policy draws a new loop count at each), three points of
    # its decay (half way, three quarters, the last step), then its peak
    total = d.schedule.total if d.schedule is not None else 0
    decay = sorted({s for s in (total // 2, 3 * total // 4, total - 1) if s >= p.steps // 2})
    steps_run = list(range(p.steps // 2)) + decay + [peak_step(d.schedule)] * (p.steps - p.steps // 2 - len(decay))
    losses, ran = [], []
    try:
        for s in steps_run:
            calls[0] = 0
            losses.append(float(sys.train_step(model, opt, b, s)))
            ran.append(calls[0])
    finally:
        watch.handle.remove()
        for h in counters:
            h.remove()
    problems = _smoke_problems(model, opt, watch, before, set(d.frozen), d.grad_clip, d.schedule, steps_run)
    problems += depth_problems(d, steps_run, ran)
    if not all(math.isfinite(x) for x in losses):
        problems.insert(0, f"non-finite loss: {losses}")
    m = Margins()
    if not m.upper("loss_ratio", losses[-1] / losses[0] if losses[0] > 0 else 0.0, 0.9):
        problems.append(f"the loss did not fall: {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps")
    curve = ", ".join(f"{x:.3f}" for x in losses)
    if problems:
        return failed(f"{len(problems)} problem(s) with the training step: {problems[0]}",
                      "\n".join(problems) + f"\nloss per step: {curve}", margins=m, losses=losses)
    return passed(f"{len(losses)} real steps: loss {losses[0]:.3f} -> {losses[-1]:.3f}; every parameter trained, "
                  f"clipped to {d.grad_clip}, schedule and depth ({_depth_name(d)}) as declared",
                  f"loss per step: {curve}\nloops per step: {ran}", margins=m, losses=losses, loops=ran)


def _depth_name(design) -> str:
    d = design.depth
    if d is None or d.kind == "fixed":
        return f"fixed {d.loops if d else design.loops}"
    return f"curriculum {d.stages}" if d.kind == "curriculum" else f"random {d.low}..{d.high}"


class OverfitParams(Params):
    steps: int = 300
    target_loss: float = 0.1
    batch_size: int = 16


@check("train.overfit_batch", OverfitParams)
def overfit_batch(target: Target, p: OverfitParams):
    """One fixed batch, trained with the system's own step at the schedule's peak learning rate,
    must be memorised (loss < target) within N steps (a budget in steps, not seconds); if not,
    there is a bug."""
    sys = target.need("training")
    model = sys.build(target.seed).train()
    opt = sys.optimizer(model)
    b = batch(target, p.batch_size, offset=0)
    peak = peak_step(target.design.schedule)
    losses = []
    for step in range(p.steps):
        losses.append(float(sys.train_step(model, opt, b, peak)))
        if losses[-1] < p.target_loss:
            m = Margins()
            m.lower("step_budget", p.steps, step + 1)
            return passed(f"loss {losses[-1]:.3f} < {p.target_loss} after {step + 1} of {p.steps} steps", margins=m,
                          steps=step + 1, loss=losses[-1])
    curve = ", ".join(f"{x:.2f}" for x in losses[:: max(1, p.steps // 10)])
    return failed(f"loss still {losses[-1]:.3f} after {p.steps} steps (target {p.target_loss}): a bug, not a tuning problem",
                  f"loss every {max(1, p.steps // 10)} steps: {curve}", steps=p.steps, loss=losses[-1])


class ResumeParams(Params):
    first: int = 6
    then: int = 6
    tolerance: float = 1e-6


class _Progress:
    """What a run reports through `progress`: the training steps and the evaluations."""

    def __init__(self):
        self.steps: list[int] = []
        self.evals: list[int] = []
        self.accuracy: dict[int, float] = {}
        self.totals: set = set()

    def __call__(self, *, step, total=None, **kw):
        (self.evals if "accuracy" in kw else self.steps).append(int(step))
        if "accuracy" in kw:
            self.accuracy[int(step)] = float(kw["accuracy"])
        self.totals.add(total)

    def reached(self, stop: Optional[float]) -> Optional[int]:
        """The first evaluation whose accuracy reaches the declared early stop (None: none)."""
        return next((s for s in self.evals if stop is not None and self.accuracy[s] >= stop), None)


def expected_evals(steps: range, total: int, ends: bool, every: Optional[int]) -> Optional[list[int]]:
    """The evaluations a call training `steps` owes: after every `every`-th step and after the
    schedule's last (None: only the last is owed, and others are allowed)."""
    if every is None:
        return None
    return sorted({s for s in steps if s % every == 0} | ({total} if ends else set()))


def run_accounting(name: str, got: _Progress, steps: range, total: int, ends: bool,
                   every: Optional[int] = None, stop: Optional[float] = None) -> Optional[str]:
    """Why a call's reports break the run's accounting (None: they keep it): it trains the steps
    it was asked for, each reported once and in order, against the schedule's length, ending
    early only at an evaluation that reached the declared stop accuracy; a call that ends the
    schedule evaluates its final weights, and with a declared interval it evaluates after
    exactly the steps the interval names."""
    early = got.reached(stop)
    if early is not None:
        steps, ends = range(steps.start, early + 1), False
    if got.steps and got.steps[-1] < steps.stop - 1 and got.steps[-1] in got.accuracy and early is None:
        last = got.steps[-1]
        return (f"the {name} run stopped at step {last}, whose evaluation ({got.accuracy[last]:.3f}) did not reach "
                f"the declared stop accuracy {stop}, with steps up to {steps.stop - 1} still owed")
    if got.steps != list(steps):
        shown = got.steps if len(got.steps) <= 14 else got.steps[:6] + ["..."] + got.steps[-6:]
        return f"the {name} run reported training steps {shown}, not {steps.start}..{steps.stop - 1} once each"
    if got.totals - {total}:
        return f"the {name} run reported a schedule of {sorted(got.totals - {total}, key=str)} steps, not {total}"
    if ends and (not got.evals or got.evals[-1] != total):
        return f"the {name} run ended at step {total} without evaluating its final weights (evals at {got.evals})"
    want = expected_evals(steps, total, ends, every)
    if want is not None and got.evals != want:
        return f"the {name} run evaluated after steps {got.evals}, not {want} (every {every} steps, declared)"
    return None


def log_problem(name: str, summary, evals: list[int], design, total: int,
                wall: Optional[float] = None) -> Optional[str]:
    """Why the run's own log (summary['log'], JSON lines) disagrees with the evaluations it
    reported, or (for a run of one call lasting `wall` seconds) gives times that did not pass
    (None: it agrees, or the system keeps no log)."""
    path = summary.get("log") if isinstance(summary, dict) else None
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        return f"the {name} run names its log {path}, which it never wrote"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    stepped = [r for r in rows if isinstance(r, dict) and "step" in r]
    logged = [int(r["step"]) for r in stepped]
    if logged != evals:
        return f"the {name} run's log records evaluations at steps {logged}, it reported {evals}"
    times = [float(r["time_s"]) for r in stepped if "time_s" in r]
    if wall is not None and times and (times != sorted(times) or not all(within_call(t, wall) for t in times)):
        return (f"the {name} run's log gives times {times[:4]} s for a call that lasted {wall:.1f} s: the clock it "
                f"logs (and stops on) is not the elapsed time")
    return logged_schedule_problem(name, stepped, design, total)


def within_call(seconds: float, wall: float) -> bool:
    """A time a run reports for a call the check timed at `wall` s: 1 s of slack for a clock the
    system starts before, or reads after, the check's own."""
    return 0 <= seconds <= wall + 1.0


def summary_problem(name: str, summary, wall: float) -> Optional[str]:
    """Why the run's summary misstates what the call measured (None: it does not, or it states
    nothing): 'time_s' within the call's wall clock, 'peak_memory_mb' more than nothing and no more
    than the machine holds."""
    if not isinstance(summary, dict):
        return None
    t, mem = summary.get("time_s"), summary.get("peak_memory_mb")
    if t is not None and not within_call(float(t), wall):
        return f"the {name} run reports {t} s for a call that lasted {wall:.1f} s"
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    if mem is not None and not 0 < float(mem) <= ram:
        return f"the {name} run reports a peak memory of {mem} MiB; a process uses more than 0 and at most {ram:.0f}"
    return None


def logged_schedule_problem(name: str, rows: list[dict], design, total: int) -> Optional[str]:
    """Why a log row's 'lr' or 'loops' (the last step before that evaluation, 0-based step - 1)
    is not what the declared schedule and depth give at that step of a `total`-step run (None:
    they agree, or the log holds neither). What a user later plots must be what ran."""
    schedule = design.schedule.model_copy(update={"total": total}) if design.schedule is not None else None
    depth = design.depth.model_copy(update={"total": total}) if design.depth is not None else None
    for r in rows:
        s = int(r["step"]) - 1
        if "lr" in r and schedule is not None and not math.isclose(float(r["lr"]), declared_lr(schedule, s),
                                                                    rel_tol=1e-6, abs_tol=1e-12):
            return (f"the {name} run's log gives lr {r['lr']:.6g} at step {s + 1}; the declared schedule's rate for "
                    f"that step is {declared_lr(schedule, s):.6g}")
        allowed = declared_loops(design.model_copy(update={"depth": depth}), s)
        if "loops" in r and int(r["loops"]) not in allowed:
            return (f"the {name} run's log gives {r['loops']} loops at step {s + 1}; the declared depth allows "
                    f"{sorted(allowed)}")
    return None


def _refuses_finished(sys, out_dir: Path, total: int) -> Optional[str]:
    """Resuming a run whose schedule has ended must raise (None: it does)."""
    try:
        sys.train_run(out_dir, small=True, steps=total, resume=True)
    except Exception:
        return None
    return (f"resuming the finished run (all {total} steps done) returned instead of refusing: "
            f"a run that trains nothing reads as success")


@check("train.resume_equivalence", ResumeParams)
def resume_equivalence(target: Target, p: ResumeParams):
    """N + M steps of the system's own training loop equal N steps, a checkpoint, and M more
    from it (weights, optimizer state, schedule position and data stream all carried over); each
    call reports the steps it trained, once each and in order, evaluates where the declared
    interval says and after the schedule's end (the run's accounting, through `progress`); the
    run's log, where it keeps one, records those evaluations; resuming the finished run is
    refused."""
    sys = target.need("run")
    target.need("checkpoint")
    total = p.first + p.then
    seen = {"straight": _Progress(), "first": _Progress(), "resumed": _Progress()}
    with tempfile.TemporaryDirectory(prefix="looplm-resume-") as tmp:
        with output_dtypes() as dtypes:
            t0 = time.perf_counter()
            straight = sys.train_run(Path(tmp) / "straight", small=True, steps=total, progress=seen["straight"])
            wall = time.perf_counter() - t0
        sys.train_run(Path(tmp) / "resumed", small=True, steps=total, stop_after=p.first, progress=seen["first"])
        resumed = sys.train_run(Path(tmp) / "resumed", small=True, steps=total, stop_after=p.then, resume=True,
                                progress=seen["resumed"])
        a, b = sys.load(straight["checkpoint"]), sys.load(resumed["checkpoint"])
        problem = (dtype_problem(dtypes, target.design.compute_dtype, "the training loop")
                   or summary_problem("straight", straight, wall)
                   or log_problem("straight", straight, seen["straight"].evals, target.design, total, wall)
                   or log_problem("resumed", resumed, seen["first"].evals + seen["resumed"].evals, target.design, total)
                   or _refuses_finished(sys, Path(tmp) / "resumed", total))
    if problem:
        return failed(problem)
    reports = any(r.steps or r.evals for r in seen.values())      # a loop may report nothing at all
    every = target.design.eval_every
    for name, steps, ends in (("straight", range(1, total + 1), True), ("first", range(1, p.first + 1), False),
                              ("resumed", range(p.first + 1, total + 1), True)):
        problem = run_accounting(name, seen[name], steps, total, ends, every,
                                 target.design.stop_accuracy) if reports else None
        if problem:
            return failed(problem + ": the training loop does not run the schedule it reports")
    sa, sb = a.state_dict(), b.state_dict()
    diffs = {k: float((sa[k].float() - sb[k].float()).abs().max()) for k in sa if k in sb}
    worst = max(diffs.values(), default=0.0)
    m = Margins()
    if set(sa) != set(sb) or not m.upper("max_weight_diff", worst, p.tolerance):
        far = sorted(diffs, key=diffs.get, reverse=True)[:3]
        return failed(f"{total} straight steps and {p.first} + {p.then} resumed steps end {worst:.3g} apart "
                      f"(largest in {', '.join(far)}): resume does not continue the run", margins=m, max_diff=worst)
    return passed(f"{p.first} steps + resume + {p.then} = {total} straight steps (max weight diff {worst:.1e}); "
                  + ("every step reported once, evaluations where declared" if reports else
                     "the loop reports no progress, so its step accounting was not checked")
                  + ("; the log agrees" if straight.get("log") else "") + "; resuming the finished run is refused",
                  margins=m, max_diff=worst)
