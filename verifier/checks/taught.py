"""A model that answers some held-out problems and not others, for checks that an untrained
model passes vacuously (0% exact match agrees with every way of counting it).

The system's own training step memorises every other problem of a held-out set, written as
training rows the way the declared layout says rows are (one example per row: the prompt and
answer without its last token as input, position t targeting token t + 1 where that token is
part of the answer). The problems come from the system's eval report where it has one (so the
report's groups are part right, part wrong), else from `eval_problems`. Built once per run
(`Target.memo`), at the schedule's peak learning rate, for a budget of steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from ..contract import provides
from ..target import Target
from .data_checks import layout
from .train_checks import peak_step

PER_GROUP, PROBLEMS, STEPS, LOSS = 8, 24, 300, 0.05


@dataclass
class Taught:
    model: object
    problems: list          # the held-out problems drawn
    known: list[bool]       # which of them it was trained on (every other one)


def example_rows(sys, pairs: list[tuple[str, str]], target: Target):
    """(idx, targets) (B, T): one (prompt, answer + end) example per row, right-padded, in the
    form the system's own batches take (attributes .idx/.targets, or a pair)."""
    lay = layout(target)
    pad = sys.encode(lay.pad)[0]
    seqs = [(sys.encode(q + a), len(sys.encode(q))) for q, a in pairs]
    T = max(len(s) for s, _ in seqs) - 1
    idx = torch.full((len(seqs), T), pad, dtype=torch.long)
    tgt = torch.full((len(seqs), T), lay.ignore_index, dtype=torch.long)
    for i, (s, plen) in enumerate(seqs):
        row = torch.tensor(s)
        idx[i, :len(s) - 1] = row[:-1]
        tgt[i, plen - 1:len(s) - 1] = row[plen:]
    own = next(iter(sys.train_batches(1, target.seed)))
    return SimpleNamespace(idx=idx, targets=tgt) if hasattr(own, "idx") else (idx, tgt)


def held_out(target: Target) -> list:
    sys = target.system
    if provides(sys, "report"):
        groups = sys.eval_report(sys.build(target.seed).eval(), PER_GROUP, target.seed + 11)["problems"]
        return [q for g in sorted(groups, key=str) for q in groups[g]]
    return list(sys.eval_problems(PROBLEMS, target.seed + 11))


def taught(target: Target) -> Taught:
    """The run's taught model (built on first use)."""
    if "taught" not in target.memo:
        sys = target.need("training")
        target.need("eval")
        probs = held_out(target)
        known = [i % 2 == 0 for i in range(len(probs))]
        rows = example_rows(sys, [sys.render(q) for q, k in zip(probs, known) if k], target)
        model = sys.build(target.seed).train()
        opt, peak = sys.optimizer(model), peak_step(target.design.schedule)
        for _ in range(STEPS):
            if float(sys.train_step(model, opt, rows, peak)) < LOSS:
                break
        target.memo["taught"] = Taught(model.eval(), probs, known)
    return target.memo["taught"]
