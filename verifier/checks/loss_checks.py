"""The training loss: which loops' predictions it reaches (supervision_schedule), and whether its
value is the declared objective recomputed from those predictions (objective). Both trace one
training-mode forward: every loop's output carries a zero probe, so each prediction (and each
learned-gate logit) is attributed to the loop whose state it reads, whatever the code's order."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..registry import Params, check
from ..result import Margins, failed, passed
from ..target import Target
from .common import batch, ignore_index, tensors
from .model_checks import loops_for


class SupervisionParams(Params):
    n_loops: Optional[int] = None     # default: the declared L


def expected_loops(kind, L: int) -> set[int]:
    """The loops a supervision schedule names, written from its definition."""
    if isinstance(kind, list):
        return {i for i in kind if i < L}
    return {"last": {L - 1}, "half": set(range(L // 2, L)), "all": set(range(L)),
            "weighted": set(range(L))}[kind]


def expected_weights(kind, L: int) -> list[float]:
    """Each loop's weight in the loss (Design.supervision's definition), summing to 1."""
    raw = [float(k + 1) for k in range(L)] if kind == "weighted" else \
        [1.0 if k in expected_loops(kind, L) else 0.0 for k in range(L)]
    total = sum(raw)
    return [w / total for w in raw]


def _latest_loop(head_input, probes: list) -> int | None:
    """The latest loop whose output `head_input` depends on: loop k's output carries a zero
    probe (a scalar leaf times a random direction added to it), and a prediction read from loop
    k's state depends on the probes of loops 0..k only."""
    r = torch.randn(head_input.shape, generator=torch.Generator().manual_seed(0)).to(head_input.device)
    grads = torch.autograd.grad((head_input * r).sum(), probes, allow_unused=True, retain_graph=True)
    hit = [k for k, g in enumerate(grads) if g is not None and float(g.abs()) > 0]
    return max(hit) if hit else None


@dataclass
class Traced:
    """One forward with probes: its loss, and per watched module the (input, output) of each call."""
    loss: Any
    probes: list
    calls: dict = field(default_factory=dict)     # name -> [(input, output), ...]

    def by_loop(self, name: str) -> dict[int, Any]:
        """loop -> the output of the `name` call reading that loop's state (the last such call)."""
        out = {}
        for inp, o in self.calls.get(name, []):
            k = _latest_loop(inp, self.probes)
            if k is not None:
                out[k] = o
        return out


def traced_forward(sys, model, idx, tgt, L: int, watch: dict) -> Traced:
    """forward(idx, tgt, loops=L) in the model's mode, with a zero probe on every loop's output and
    the calls of each module in `watch` (name -> module) recorded."""
    t = Traced(None, [])

    def on_loop(mod, args, out):
        # the same values, one more leaf to ask about, entering along a fixed random direction: a
        # constant shift would vanish in a layer norm (the final one), leaving only rounding
        t.probes.append(torch.zeros((), device=out.device, requires_grad=True))
        u = torch.randn(out.shape, generator=torch.Generator().manual_seed(len(t.probes))).to(out.device, out.dtype)
        return out + t.probes[-1] * u

    def recorder(name):
        def on_call(mod, args, out):
            if out.requires_grad:
                out.retain_grad()
            t.calls.setdefault(name, []).append((args[0], out))
        return on_call
    hooks = [m.register_forward_hook(on_loop) for m in sys.loop_modules(model)]
    hooks += [m.register_forward_hook(recorder(n)) for n, m in watch.items()]
    try:
        _, t.loss, _ = sys.forward(model, idx, tgt, loops=L)
    finally:
        for h in hooks:
            h.remove()
    return t


def supervised_loops(sys, model, idx, tgt, L: int) -> set[int]:
    """The loops whose predictions the loss reaches: each call of the head is attributed to the
    loop whose state it reads; a loop is supervised when a prediction read from it gets gradient
    from the loss."""
    t = traced_forward(sys, model, idx, tgt, L, {"head": sys.head_module(model)})
    t.loss.backward(retain_graph=True)
    return {k for inp, out in t.calls.get("head", []) if out.grad is not None and float(out.grad.abs().sum()) > 0
            for k in [_latest_loop(inp, t.probes)] if k is not None}


@check("train.supervision_schedule", SupervisionParams)
def supervision_schedule(target: Target, p: SupervisionParams):
    """The loss reaches the predictions of exactly the loops the declared schedule names."""
    sys = target.need("head")
    target.need("model")
    model = sys.build(target.seed).train()
    idx, tgt = tensors(batch(target))
    L = loops_for(target, sys, model, p.n_loops)
    got = supervised_loops(sys, model, idx, tgt, L)
    kind = target.design.supervision
    want = expected_loops(kind, L)
    if got != want:
        return failed(f"supervision {kind!r} should put loss on loops {sorted(want)}, it reaches {sorted(got)}",
                      supervised=sorted(got), expected=sorted(want))
    return passed(f"{kind!r}: loss on loops {sorted(got)} of {L}", supervised=sorted(got))


def per_token_ce(logits, tgt, ignore: int) -> torch.Tensor:
    """(B, T, V), (B, T) -> (B, T) float64 cross-entropy, 0 where the target is ignored."""
    return torch.nn.functional.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                             ignore_index=ignore, reduction="none").view(tgt.shape)


def ponder_loss(ce: list, gate: list, mask, beta: float, prior: float) -> torch.Tensor:
    """Design.Ponder's definition, in float64: ce and gate are per loop (B, T)."""
    lam = torch.sigmoid(torch.stack([g.double().reshape(mask.shape) for g in gate]))
    lam[-1] = 1.0
    survive = torch.cumprod(torch.cat([torch.ones_like(lam[:1]), 1 - lam[:-1]]), dim=0)
    prob = lam * survive                                                         # (L, B, T)
    q = torch.tensor([prior * (1 - prior) ** k for k in range(len(gate))], dtype=torch.float64)
    q = (q / q.sum()).view(-1, 1, 1).to(prob.device)
    kl = (prob * (torch.log(prob.clamp_min(1e-12)) - torch.log(q))).sum(0)
    n = mask.sum().clamp_min(1.0)
    return ((prob * torch.stack(ce)).sum(0) * mask).sum() / n + beta * (kl * mask).sum() / n


def declared_objective(target: Target, t: Traced, tgt, L: int) -> tuple[Optional[float], str]:
    """(the loss the design declares, recomputed from the traced predictions; or None and why)."""
    d, ignore = target.design, ignore_index(target)
    heads = t.by_loop("head")
    if d.ponder is not None:
        gates = t.by_loop("gate")
        missing = [k for k in range(L) if k not in heads or k not in gates]
        if missing:
            return None, f"the learned gate's loss needs every loop's prediction and gate logit; loops {missing} lack one"
        ce = [per_token_ce(heads[k].detach(), tgt, ignore) for k in range(L)]
        mask = (tgt != ignore).double()
        return float(ponder_loss(ce, [gates[k].detach() for k in range(L)], mask, d.ponder.beta, d.ponder.prior)), "ponder"
    w = expected_weights(d.supervision, L)
    missing = [k for k in range(L) if w[k] > 0 and k not in heads]
    if missing:
        return None, f"supervision {d.supervision!r} weighs loops {missing}, whose predictions no head call reads"
    mask = tgt != ignore
    total = sum(w[k] * float(per_token_ce(heads[k].detach(), tgt, ignore)[mask].mean()) for k in range(L) if w[k] > 0)
    return total, f"supervision {d.supervision!r}"


class ObjectiveParams(Params):
    n_loops: Optional[int] = None     # default: the declared L
    tolerance: float = 1e-4           # relative: float32 logits against a float64 recomputation


@check("train.objective", ObjectiveParams)
def objective(target: Target, p: ObjectiveParams):
    """The training-mode loss equals the declared objective (Design.supervision's weights, or
    Design.ponder), recomputed in float64 from the predictions (and gate logits) it is made of."""
    sys = target.need("head")
    target.need("model")
    model = sys.build(target.seed).train()
    watch = {"head": sys.head_module(model)}
    if target.design.ponder is not None:
        watch["gate"] = target.need("gate").gate_module(model)
    idx, tgt = tensors(batch(target))
    L = loops_for(target, sys, model, p.n_loops)
    t = traced_forward(sys, model, idx, tgt, L, watch)
    want, what = declared_objective(target, t, tgt, L)
    if want is None:
        return failed(what)
    got = float(t.loss.detach())
    m = Margins()
    rel = abs(got - want) / max(abs(want), 1e-12)
    if not m.upper("relative_diff", rel, p.tolerance):
        return failed(f"the training loss is {got:.6g}; {what}'s objective recomputed from its {L} loops' "
                      f"predictions is {want:.6g} (relative difference {rel:.2e})", margins=m, loss=got, declared=want)
    return passed(f"{what}: loss {got:.6g} = the declared objective over {L} loops (relative diff {rel:.1e})",
                  margins=m, loss=got, declared=want)
