"""Training behaviour: which loops the loss supervises, and the single-batch overfit test."""
from __future__ import annotations

import time

import torch

from looplm import data as D
from looplm import model as M
from looplm import train as TR

from ..registry import Params, check
from ..result import failed, passed
from ..target import Target


class SupervisionParams(Params):
    n_loops: int = 8


def expected_loops(kind: str, L: int) -> set[int]:
    """Written from the definitions, independently of the model's own weights."""
    return {"last": {L - 1}, "half": set(range(L // 2, L)), "all": set(range(L)),
            "weighted": set(range(L))}[kind]


@check("train.supervision_schedule", SupervisionParams)
def supervision_schedule(target: Target, p: SupervisionParams):
    """The loss reaches the prediction of exactly the loops the configured schedule names."""
    cfg = target.small(n_loops=p.n_loops)
    if target.config.halting.mode == "gate":
        return passed("learned gate: the ponder loss weighs every loop by its halting probability")
    torch.manual_seed(target.seed)
    model = M.LoopLM(cfg, target.vocab).train()
    outs = []
    handle = model.ln_f.register_forward_hook(lambda mod, a, out: (out.retain_grad(), outs.append(out)) and None)
    d = cfg.data
    b = D.make_batch(D.problems(16, d.min_digits, d.max_digits, seed=3, split="train"), d.format)
    try:  # trace=True makes every loop predict (detached entropy): each loop's head output exists
        model(b.idx, b.targets, loops=p.n_loops, trace=True).loss.backward()
    finally:
        handle.remove()
    per_loop = outs[:p.n_loops]  # one head call per loop; the final call re-reads the last state
    got = {i for i, o in enumerate(per_loop) if o.grad is not None and float(o.grad.abs().sum()) > 0}
    kind = cfg.train.supervision
    want = expected_loops(kind, p.n_loops)
    if got != want:
        return failed(f"supervision '{kind}' should put loss on loops {sorted(want)}, it reaches {sorted(got)}",
                      supervised=sorted(got), expected=sorted(want))
    return passed(f"'{kind}': loss on loops {sorted(got)} of {p.n_loops}", supervised=sorted(got))


class OverfitParams(Params):
    steps: int = 300
    target_loss: float = 0.1
    batch_size: int = 16
    lr: float = 3e-3


@check("train.overfit_batch", OverfitParams)
def overfit_batch(target: Target, p: OverfitParams):
    """One fixed batch must be memorized (loss < target) within N steps; if not, there is a bug."""
    cfg = target.small()
    torch.manual_seed(target.seed)
    model = M.LoopLM(cfg, target.vocab).train()
    d = cfg.data
    batch = next(D.train_batches(p.batch_size, d.min_digits, d.max_digits, d.format, seed=target.seed))
    opt = TR.optimizer(model, cfg.train.model_copy(update={"weight_decay": 0.0}))
    for g in opt.param_groups:
        g["lr"] = p.lr
    t0, losses = time.perf_counter(), []
    for step in range(p.steps):
        loss = model(batch.idx, batch.targets).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < p.target_loss:
            return passed(f"loss {losses[-1]:.3f} < {p.target_loss} after {step + 1} steps "
                          f"({time.perf_counter() - t0:.1f} s)", steps=step + 1, loss=losses[-1])
    curve = ", ".join(f"{x:.2f}" for x in losses[:: max(1, p.steps // 10)])
    return failed(f"loss still {losses[-1]:.3f} after {p.steps} steps (target {p.target_loss}): a bug, not a tuning problem",
                  f"loss every {max(1, p.steps // 10)} steps: {curve}", steps=p.steps, loss=losses[-1])
