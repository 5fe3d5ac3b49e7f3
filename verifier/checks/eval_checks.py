"""The problem sets research figures are reported on: each set is what it is named for (the
system's own statement of the set's defining property, checked on every drawn problem), every
problem is a correct example, the draw is a function of its seed, and held-out problems never
appear in the training stream."""
from __future__ import annotations

import itertools
import math
from typing import Optional

import torch

from ..registry import Params, check
from ..result import Margins, failed, passed
from ..target import Target
from .common import ignore_index, real_tokens, target_loss, tensors
from .data_checks import layout, row_tokens, split_examples
from .taught import PER_GROUP, example_rows, taught

# how far a reported figure may sit from the check's recomputation from forward(): the same rows
# through the same path agree to rounding (loss) or exactly (loop counts); a wrong aggregate
# (dropped positions, a sum for a mean) misses by far more
LOSS_RTOL, STEPS_ATOL, SAVED_ATOL = 1e-3, 0.05, 1e-3
CLAIM_PER_GROUP = 64


class SetsParams(Params):
    problems: int = 200           # per set and seed
    train_batches: int = 16       # of 64 rows, scanned for held-out problems
    seeds: list[int] = [0, 1]
    population: int = 4000        # problems of the whole space, to measure the held-out share


def _examples(sys, problems: list, end: str) -> list[tuple[str, str]]:
    out = []
    for prob in problems:
        prompt, answer = sys.render(prob)
        out.append((prompt, answer[: -len(end)] if end and answer.endswith(end) else answer))
    return out


def _set_problem(sys, name: str, spec, p: SetsParams, seed: int, lay) -> tuple[Optional[str], list]:
    """(why eval set `name` is not what it claims, or None; its (prompt, answer) texts per seed)."""
    draw, claim = spec["draw"], spec.get("claim")
    per_seed = [draw(p.problems, seed + s) for s in p.seeds]
    if any(len(ps) != p.problems for ps in per_seed):
        return f"eval set '{name}' drew {[len(ps) for ps in per_seed]} problems, not {p.problems} per seed", []
    again = draw(p.problems, seed + p.seeds[0])
    texts = [_examples(sys, ps, lay.end) for ps in per_seed]
    if _examples(sys, again, lay.end) != texts[0]:
        return f"eval set '{name}' is not a function of its seed: two draws at seed {seed + p.seeds[0]} differ", texts
    if len(p.seeds) > 1 and texts[0] == texts[1]:
        return f"eval set '{name}' draws the same problems at seeds {p.seeds}: the seed is ignored", texts
    spread = spec.get("spread")
    why = spread([q for ps in per_seed for q in ps]) if spread is not None else None
    if why:
        return f"eval set '{name}' is narrower than it claims over {len(p.seeds) * p.problems} problems: {why}", texts
    for prob, (prompt, answer) in zip(itertools.chain(*per_seed), itertools.chain(*texts)):
        if not sys.check_example(prompt, answer):
            return f"eval set '{name}': {prompt}{answer} is not a correct example", texts
        why = claim(prob) if claim is not None else None
        if why:
            return f"eval set '{name}': {prompt}{answer} is not what the set is named for: {why}", texts
    return None, texts


@check("eval.problem_sets", SetsParams)
def problem_sets(target: Target, p: SetsParams):
    """Every declared eval set (adversarial ones included), drawn at two seeds: the same seed
    draws the same problems and another seed others; every problem is a correct example and
    meets the set's stated property (`eval_sets()[name]['claim']`), and the draws together cover
    what the set claims to vary (`'spread'`); no held-out problem of the plain set appears in the
    training batches, and each side of the split is where the system's rule puts it."""
    sys = target.need("eval_sets")
    target.need("eval")
    target.need("task")
    lay = layout(target)
    sets = sys.eval_sets()
    if not sets:
        return failed("eval_sets() declares no set: nothing a research figure reports on can be checked")
    plain: set[str] = set()
    prompts: list[str] = []
    for name, spec in sets.items():
        problem, texts = _set_problem(sys, name, spec, p, target.seed, lay)
        if problem:
            return failed(problem)
        if name == "random":
            plain = {q + a for q, a in itertools.chain(*texts)}
            prompts = [q for q, _ in itertools.chain(*texts)]
    trained = _trained_examples(sys, lay, target.seed, p.train_batches)
    seen = {q + a for q, a in trained}
    leaked = sorted(plain & seen)
    if leaked:
        return failed(f"{len(leaked)} held-out problem(s) of the plain eval set appear in the training batches "
                      f"(e.g. {leaked[0]!r}): the split leaks", leaked=len(leaked))
    problem = split_problem(sys, prompts, [q for q, _ in trained]) or \
        share_problem(sys, sets.get("random", {}), p.population, target.seed)
    if problem:
        return failed(problem)
    return passed(f"{len(sets)} eval sets ({', '.join(sets)}) x {len(p.seeds)} seeds x {p.problems} problems: "
                  f"seeded, correct, each what it is named for; none of {len(plain)} held-out problems among "
                  f"{len(seen)} training examples", sets=len(sets), train_examples=len(seen))


def _trained_examples(sys, lay, seed: int, batches: int) -> list[tuple[str, str]]:
    """(prompt, answer) of every example in the first training batches (64 rows each)."""
    out = []
    for batch in itertools.islice(sys.train_batches(64, seed), batches):
        for row in tensors(batch)[0]:
            out += split_examples(row_tokens(sys, lay, row), lay)[0]
    return out


def split_problem(sys, plain: list[str], trained: list[str]) -> Optional[str]:
    """Why the plain eval set or the training stream is on the wrong side of the system's stated
    held-out rule (None: each is where it belongs, or the system states no rule). Disjointness
    alone passes a swapped split; the rule tells which side is which."""
    rule = getattr(sys, "held_out", None)
    if rule is None:
        return None
    outside = [q for q in plain if not rule(q)]
    if outside:
        return (f"{len(outside)}/{len(plain)} problems of the plain eval set are not held out by the system's own "
                f"rule (e.g. {outside[0]!r}): the eval measures problems training may draw")
    inside = [q for q in trained if rule(q)]
    if inside:
        return (f"{len(inside)}/{len(trained)} training examples are held out by the system's own rule "
                f"(e.g. {inside[0]!r}): training draws the eval's problems")
    return None


def share_problem(sys, plain: dict, n: int, seed: int) -> Optional[str]:
    """Why the held-out rule does not hold out the share the plain set declares of the problem
    space (`'share'`, measured on `'population'`: problems drawn from the whole space, either side
    of the split), or None (or nothing declared). A split can stay disjoint and on its sides while
    holding out half the space, leaving training a fraction of it. Limit: 5 binomial sigmas."""
    rule, share, population = getattr(sys, "held_out", None), plain.get("share"), plain.get("population")
    if rule is None or share is None or population is None:
        return None
    got = sum(rule(sys.render(q)[0]) for q in population(n, seed)) / n
    limit = 5 * math.sqrt(share * (1 - share) / n) + 1 / n
    if abs(got - share) > limit:
        return (f"the held-out rule holds out {got:.4f} of {n} problems drawn from the whole space; the plain set "
                f"declares a share of {share:.4f} (limit +-{limit:.4f}): training draws from "
                f"{1 - got:.1%} of the space, not {1 - share:.1%}")
    return None


def _per_group(sys, target: Target, model, groups: dict, thr, L: int) -> dict:
    """Each group's figures from forward() on its problems' rows: answer loss, per-problem mean
    loops on target and on other real positions, loops run and real tokens."""
    out = {}
    for g, probs in groups.items():
        idx, tgt = tensors(example_rows(sys, [sys.render(q) for q in probs], target))
        with torch.no_grad():
            logits, _, steps = sys.forward(model, idx, tgt, loops=L, threshold=thr)
        loss = target_loss(target, logits, tgt)
        real, ans = real_tokens(target, idx), tgt != ignore_index(target)
        steps = steps.float()
        per = lambda m: (steps * m).sum(1) / m.sum(1).clamp_min(1)   # noqa: E731  (B,) mean over m
        out[g] = {"loss": float(loss), "answer": per(ans).tolist(), "prompt": per(real & ~ans).tolist(),
                  "used": float((steps * real).sum()), "tokens": float(real.sum())}
    return out


def figure_problems(sys, target: Target, model, rep: dict, wide: dict, m: Margins) -> list[str]:
    """Why the report's optional figures disagree with forward() (empty: they agree, or it
    states none); each comparison is recorded in `m`. Group claims are checked on `wide`, a
    report of CLAIM_PER_GROUP problems per group (a rare stray problem shows there)."""
    groups = {str(k): v for k, v in rep["problems"].items()}
    out = []
    for g, n in {str(k): v for k, v in (rep.get("counts") or {}).items()}.items():
        if int(n) != len(groups.get(g, ())):
            out.append(f"group {g}: the report says it scored {n} problems, it was given {len(groups.get(g, ()))}")
    claim = rep.get("claim")
    for g, probs in ({str(k): v for k, v in wide["problems"].items()} if claim else {}).items():
        why = next((f"{sys.render(q)[0]}: {w}" for q in probs for w in [claim and claim(g, q)] if w), None)
        if why:
            out.append(f"group {g} holds a problem that is not what the group is named for: {why}")
    if "threshold" not in rep or "loops" not in rep:
        return out
    L, want = int(rep["loops"]), _per_group(sys, target, model, groups, rep["threshold"], int(rep["loops"]))
    close = lambda name, got, exp, tol: m.upper(name, abs(float(got) - exp), tol)  # noqa: E731
    for g, w in want.items():
        if "loss" in rep and not close(f"loss_{g}", rep["loss"][g], w["loss"], LOSS_RTOL * max(1.0, w["loss"])):
            out.append(f"group {g}: reported answer loss {float(rep['loss'][g]):.4f}, forward gives {w['loss']:.4f}")
        exp = sum(w["answer"]) / len(w["answer"])
        if "steps_answer" in rep and not close(f"steps_answer_{g}", rep["steps_answer"][g], exp, STEPS_ATOL):
            out.append(f"group {g}: reported {float(rep['steps_answer'][g]):.3f} loops per answer token, "
                       f"forward ran {exp:.3f}")
    rows = [x for w in want.values() for x in w["prompt"]]
    if "steps_prompt" in rep and not close("steps_prompt", rep["steps_prompt"], sum(rows) / len(rows), STEPS_ATOL):
        out.append(f"reported {float(rep['steps_prompt']):.3f} loops per prompt token, forward ran "
                   f"{sum(rows) / len(rows):.3f}")
    saved = 1 - sum(w["used"] for w in want.values()) / (L * sum(w["tokens"] for w in want.values()))
    if "applications_saved" in rep and not close("applications_saved", rep["applications_saved"], saved, SAVED_ATOL):
        out.append(f"reported {float(rep['applications_saved']):.4f} of block applications saved, "
                   f"forward saved {saved:.4f}")
    return out


def _stated(rep: dict) -> Optional[str]:
    figs = [k for k in ("claim", "counts", "loss", "steps_answer", "steps_prompt", "applications_saved") if k in rep]
    if not figs:
        return None
    return ", ".join(figs) + ("" if "threshold" in rep or set(figs) <= {"claim", "counts"} else
                              " (only claim and counts checked: the report states no halting forward() takes)")


@check("eval.report_consistency")
def report_consistency(target: Target, params):
    """The system's eval report states, for every group it reports, the mean of the eval's own
    exact match over the n problems of that group: on a model that answers some of them (trained
    on every other one, verifier.checks.taught), so a report that floors, drops or mislabels a
    group cannot agree by both being 0%."""
    sys = target.need("report")
    target.need("eval")
    t = taught(target)
    rep = sys.eval_report(t.model, PER_GROUP, target.seed + 11)
    acc, groups = {str(k): v for k, v in rep["accuracy"].items()}, {str(k): v for k, v in rep["problems"].items()}
    if not groups:
        return failed("the eval report scored no group of problems")
    if set(acc) != set(groups):
        return failed(f"the report states accuracy for groups {sorted(acc)}, it scored groups {sorted(groups)}")
    mixed = 0
    for g, probs in sorted(groups.items()):
        if len(probs) != PER_GROUP:
            return failed(f"group {g}: the report scored {len(probs)} problems, {PER_GROUP} were asked for")
        right = sys.exact_match(t.model, list(probs))
        want = sum(right) / len(right)
        if abs(float(acc[g]) - want) > 1e-9:
            return failed(f"group {g}: the report says {float(acc[g]):.4f}, the eval's exact match gives {want:.4f} "
                          f"({sum(right)} of {len(right)}): the figure is not what was measured")
        mixed += 0 < want < 1
    m = Margins()
    wide = sys.eval_report(t.model, CLAIM_PER_GROUP, target.seed + 12) if "claim" in rep else {}
    bad = figure_problems(sys, target, t.model, rep, wide, m)
    if bad:
        return failed(f"{len(bad)} reported figure(s) are not what forward() computes: {bad[0]}", "\n".join(bad),
                      margins=m)
    figs = _stated(rep)
    return passed(f"{len(groups)} groups x {PER_GROUP} problems: every reported accuracy is the mean of exact match "
                  f"({mixed} group(s) part right, part wrong, on a model taught half of them)"
                  + (f"; recomputed from forward(): {figs}" if figs else ""), margins=m, mixed_groups=mixed)
