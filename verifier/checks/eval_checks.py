"""The problem sets research figures are reported on: each set is what it is named for (the
system's own statement of the set's defining property, checked on every drawn problem), every
problem is a correct example, the draw is a function of its seed, and held-out problems never
appear in the training stream."""
from __future__ import annotations

import itertools

from ..registry import Params, check
from ..result import failed, passed
from ..target import Target
from .common import tensors
from .data_checks import layout, row_tokens, split_examples
from .taught import PER_GROUP, taught


class SetsParams(Params):
    problems: int = 200           # per set and seed
    train_batches: int = 16       # of 64 rows, scanned for held-out problems
    seeds: list[int] = [0, 1]


def _examples(sys, problems: list, end: str) -> list[tuple[str, str]]:
    out = []
    for prob in problems:
        prompt, answer = sys.render(prob)
        out.append((prompt, answer[: -len(end)] if end and answer.endswith(end) else answer))
    return out


@check("eval.problem_sets", SetsParams)
def problem_sets(target: Target, p: SetsParams):
    """Every declared eval set (adversarial ones included), drawn at two seeds: the same seed
    draws the same problems and another seed others; every problem is a correct example and
    meets the set's stated property (`eval_sets()[name]['claim']`); no held-out problem of the
    plain set appears in the training batches."""
    sys = target.need("eval_sets")
    target.need("eval")
    target.need("task")
    lay = layout(target)
    sets = sys.eval_sets()
    if not sets:
        return failed("eval_sets() declares no set: nothing a research figure reports on can be checked")
    plain: set[str] = set()
    for name, spec in sets.items():
        draw, claim = spec["draw"], spec.get("claim")
        per_seed = [draw(p.problems, target.seed + s) for s in p.seeds]
        if any(len(ps) != p.problems for ps in per_seed):
            return failed(f"eval set '{name}' drew {[len(ps) for ps in per_seed]} problems, not {p.problems} per seed")
        again = draw(p.problems, target.seed + p.seeds[0])
        texts = [_examples(sys, ps, lay.end) for ps in per_seed]
        if _examples(sys, again, lay.end) != texts[0]:
            return failed(f"eval set '{name}' is not a function of its seed: two draws at seed "
                          f"{target.seed + p.seeds[0]} differ")
        if len(p.seeds) > 1 and texts[0] == texts[1]:
            return failed(f"eval set '{name}' draws the same problems at seeds {p.seeds}: the seed is ignored")
        for prob, (prompt, answer) in zip(itertools.chain(*per_seed), itertools.chain(*texts)):
            if not sys.check_example(prompt, answer):
                return failed(f"eval set '{name}': {prompt}{answer} is not a correct example")
            why = claim(prob) if claim is not None else None
            if why:
                return failed(f"eval set '{name}': {prompt}{answer} is not what the set is named for: {why}")
        if name == "random":
            plain = {q + a for q, a in itertools.chain(*texts)}
    seen = set()
    for batch in itertools.islice(sys.train_batches(64, target.seed), p.train_batches):
        for row in tensors(batch)[0]:
            seen.update(q + a for q, a in split_examples(row_tokens(sys, lay, row), lay)[0])
    leaked = sorted(plain & seen)
    if leaked:
        return failed(f"{len(leaked)} held-out problem(s) of the plain eval set appear in the training batches "
                      f"(e.g. {leaked[0]!r}): the split leaks", leaked=len(leaked))
    return passed(f"{len(sets)} eval sets ({', '.join(sets)}) x {len(p.seeds)} seeds x {p.problems} problems: "
                  f"seeded, correct, each what it is named for; none of {len(plain)} held-out problems among "
                  f"{len(seen)} training examples", sets=len(sets), train_examples=len(seen))


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
    return passed(f"{len(groups)} groups x {PER_GROUP} problems: every reported accuracy is the mean of exact match "
                  f"({mixed} group(s) part right, part wrong, on a model taught half of them)", mixed_groups=mixed)
