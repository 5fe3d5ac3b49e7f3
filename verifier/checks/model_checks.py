"""The model's contracts: return shape, loss in both modes, gradient through every loop, block
and temporal parity with independent references. Everything goes through the system's
contract methods (build, forward, loop_modules, block_pair, unrolled_pair)."""
from __future__ import annotations

import torch

from typing import Optional

from ..registry import Params, check
from ..result import Margins, failed, passed
from ..target import Target
from .common import batch, target_loss, tensors


@check("model.forward_contract")
def forward_contract(target: Target, params):
    """forward(idx, targets) returns (logits, loss, steps) in train and eval mode alike."""
    sys = target.need("model")
    model = sys.build(target.seed)
    idx, tgt = tensors(batch(target))
    seen = {}
    for mode in ("train", "eval"):
        getattr(model, mode)()
        try:
            out = sys.forward(model, idx, tgt)
            logits, loss, steps = out
        except Exception as e:
            return failed(f"{mode} mode: forward(idx, targets) does not give (logits, loss, steps): "
                          f"{type(e).__name__}: {str(e)[:200]}")
        if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(idx.shape):
            return failed(f"{mode} mode: logits shape {tuple(logits.shape)}, want ({', '.join(map(str, idx.shape))}, V)")
        if steps is None or tuple(steps.shape) != tuple(idx.shape):
            return failed(f"{mode} mode: no per-token loop steps of shape {tuple(idx.shape)}")
        if mode == "train" and (loss is None or loss.dim() != 0):    # eval's loss: eval_mode_loss
            return failed("train mode: no scalar loss although targets were given")
        seen[mode] = type(out).__name__
    return passed(f"both modes return (logits, loss, steps) ({seen['train']})", modes=list(seen))


@check("model.eval_mode_loss")
def eval_mode_loss(target: Target, params):
    """In eval mode, forward with targets computes the loss: the cross-entropy of its logits."""
    sys = target.need("model")
    model = sys.build(target.seed).eval()
    idx, tgt = tensors(batch(target))
    with torch.no_grad():
        logits, loss, _ = sys.forward(model, idx, tgt)
    if loss is None:
        return failed("eval mode with targets returned no loss (an estimate_loss would crash)")
    want = target_loss(target, logits, tgt)
    m = Margins()
    if not (torch.isfinite(loss) and m.upper("loss_error", abs(float(loss) - float(want)), 1e-4)):
        return failed(f"eval loss {float(loss):.6f} != cross-entropy of its logits {float(want):.6f}", margins=m)
    return passed(f"eval loss {float(loss):.4f} = cross-entropy of the returned logits", margins=m, loss=float(loss))


class LoopParams(Params):
    n_loops: Optional[int] = None     # default: the declared L (a stack of L blocks runs at most L)


def _block_inputs(modules):
    """Record the tensor entering the loop module(s) on every loop, with gradients kept."""
    inputs = []

    def hook(module, args):
        x = args[0]
        if x.requires_grad:
            x.retain_grad()
        inputs.append(x)
    return inputs, [m.register_forward_pre_hook(hook) for m in modules]


@check("model.autograd_connectivity", LoopParams)
def autograd_connectivity(target: Target, p: LoopParams):
    """The final prediction's loss has a non-zero gradient w.r.t. the state entering every loop
    (full BPTT; with truncated BPTT, every loop of the declared window, and no loop before it)."""
    sys = target.need("model")
    model = sys.build(target.seed).train()
    idx, tgt = tensors(batch(target))
    L = loops_for(target, sys, model, p.n_loops)
    inputs, handles = _block_inputs(sys.loop_modules(model))
    try:
        logits, _, _ = sys.forward(model, idx, tgt, loops=L)
        # the final prediction alone: a per-loop loss (every loop supervised) would hide a cut
        target_loss(target, logits, tgt).backward()
    finally:
        for h in handles:
            h.remove()
    # truncated BPTT over the last k loops cuts the state entering loop L - k: the inputs of the
    # loops after it get gradient, those of every earlier loop none (loop L - k's own input has
    # gradient only where something else, a re-injected x0, is added to the cut state)
    tbptt = target.design.tbptt
    cut = max(0, L - tbptt) if tbptt else 0
    first = min(L, cut + 1) if tbptt else 0
    norms = [float(x.grad.norm()) if x.grad is not None else 0.0 for x in inputs]
    dead = [i for i, g in enumerate(norms) if g == 0.0 and i >= first]
    per_loop = "grad norm per loop: " + ", ".join(f"{g:.2e}" for g in norms)
    if len(inputs) != L or dead:
        return failed(f"loops {dead} get no gradient from the final prediction: the graph is cut "
                      f"({len(inputs)} loop calls for loops={L})", per_loop, grad_norms=norms)
    # the state entering a loop before the window reaches the loss only through the cut
    leaked = [i for i, g in enumerate(norms) if g != 0.0 and i < cut]
    if leaked:
        return failed(f"the state entering loops {leaked} gets gradient, though truncated BPTT over the last "
                      f"{tbptt} of {L} loops cuts it there: the state is not detached where the design says",
                      per_loop, grad_norms=norms)
    return passed(f"the states entering all {L - first} loops after the cut receive gradient"
                  + (f", the {cut} before it none" if cut else ""), per_loop, grad_norms=norms)


def loops_for(target: Target, sys, model, asked: Optional[int]) -> int:
    """The loop count a check runs: `asked`, else the declared L; never more than a stack of
    distinct blocks holds."""
    L = asked or target.design.loops
    modules = sys.loop_modules(model)
    return min(L, len(modules)) if len(modules) > 1 else L


class ParityParams(Params):
    tolerance: float = 1e-5
    n_loops: int = 4


@check("model.block_parity", ParityParams)
def block_parity(target: Target, p: ParityParams):
    """One loop of the block equals a block written out from its definition (the system's own)."""
    sys = target.need("parity")
    model = sys.build(target.seed).eval()
    idx, _ = tensors(batch(target))
    with torch.no_grad():
        got, want = sys.block_pair(model, idx)
    m = Margins()
    diff = float((got - want).abs().max())
    if not m.upper("max_diff", diff, p.tolerance):
        return failed(f"block output differs from the reference by {diff:.2e} (> {p.tolerance})", margins=m,
                      max_diff=diff)
    return passed(f"max |block - reference| = {diff:.1e}", margins=m, max_diff=diff)


def _baseline_loops(target: Target, step_uses, default: int) -> int:
    for use in step_uses:
        if use.startswith("baseline."):
            return next(b.layers for b in target.spec.system.baselines if b.name == use.split(".", 1)[1])
    return default


@check("model.temporal_parity", ParityParams)
def temporal_parity(target: Target, p: ParityParams, step=None):
    """L loops of the shared block equal a stack of L distinct blocks holding its weights
    (L: the layers of the baseline the step uses, else n_loops)."""
    sys = target.need("parity")
    L = _baseline_loops(target, step.uses if step else (), p.n_loops)
    loop, stack = sys.unrolled_pair(target.seed, L)
    idx, _ = tensors(batch(target))
    with torch.no_grad():
        a = sys.forward(loop.eval(), idx)[0]
        b = sys.forward(stack.eval(), idx)[0]
    m = Margins()
    diff = float((a - b).abs().max())
    if not m.upper("max_diff", diff, p.tolerance):
        return failed(f"{L} loops and the unrolled {L}-block stack differ by {diff:.2e}", margins=m, max_diff=diff)
    return passed(f"{L} loops = the unrolled {L}-block stack (max diff {diff:.1e})", margins=m, max_diff=diff)
