"""The model's contracts: return shape, loss in both modes, gradient through every loop,
frozen halted tokens, block and temporal parity with independent references."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from looplm import model as M
from looplm.config import HaltingConfig
from looplm.data import IGNORE, make_batch, problems

from ..registry import Params, check
from ..result import failed, passed
from ..target import Target


def _batch(target: Target, n: int = 16):
    d = target.config.data
    return make_batch(problems(n, d.min_digits, d.max_digits, seed=target.seed + 1, split="train"), d.format)


def _model(target: Target, **model):
    torch.manual_seed(target.seed)
    return M.LoopLM(target.small(**model), target.vocab)


@check("model.forward_contract")
def forward_contract(target: Target, params):
    """forward(idx, targets) returns (logits, loss, halting) in train and eval mode alike."""
    model, b = _model(target), _batch(target)
    seen = {}
    for mode in ("train", "eval"):
        getattr(model, mode)()
        try:
            out = model(b.idx, b.targets)
            logits, loss, halting = out
        except (ValueError, TypeError) as e:
            return failed(f"{mode} mode: forward's return does not unpack as (logits, loss, halting): {e}")
        if tuple(logits.shape) != (*b.idx.shape, len(target.vocab)):
            return failed(f"{mode} mode: logits shape {tuple(logits.shape)}, want {(*b.idx.shape, len(target.vocab))}")
        if not hasattr(halting, "steps") or tuple(halting.steps.shape) != tuple(b.idx.shape):
            return failed(f"{mode} mode: the halting result lacks per-token steps")
        seen[mode] = type(out).__name__
    if seen["train"] != seen["eval"]:
        return failed(f"train returns {seen['train']}, eval returns {seen['eval']}")
    return passed(f"both modes return {seen['train']}(logits, loss, halting)", modes=list(seen))


@check("model.eval_mode_loss")
def eval_mode_loss(target: Target, params):
    """In eval mode, forward with targets still computes the loss (and the right one)."""
    model, b = _model(target).eval(), _batch(target)
    with torch.no_grad():
        out = model(b.idx, b.targets)
    if out.loss is None:
        return failed("model.eval() with targets returned no loss (estimate_loss would crash)")
    want = F.cross_entropy(out.logits.float().reshape(-1, out.logits.shape[-1]), b.targets.reshape(-1),
                           ignore_index=IGNORE)
    if not torch.isfinite(out.loss) or abs(float(out.loss) - float(want)) > 1e-4:
        return failed(f"eval loss {float(out.loss):.6f} != cross-entropy of its logits {float(want):.6f}")
    return passed(f"eval loss {float(out.loss):.4f} = cross-entropy of the returned logits", loss=float(out.loss))


class LoopParams(Params):
    n_loops: int = 6


def _block_inputs(model):
    """Record the tensor entering the shared block on every loop (with gradients kept)."""
    inputs = []

    def hook(module, args):
        x = args[0]
        if x.requires_grad:
            x.retain_grad()
        inputs.append(x)
    handles = [b.register_forward_pre_hook(hook) for b in model.blocks]
    return inputs, handles


@check("model.autograd_connectivity", LoopParams)
def autograd_connectivity(target: Target, p: LoopParams):
    """The loss has a non-zero gradient w.r.t. the state entering every loop (full BPTT)."""
    # loss on the last loop only, no learned exit: the recurrence alone must carry the gradient
    # back (with every loop supervised, each loop's own loss would hide a cut between loops)
    cfg = target.small(n_loops=p.n_loops).override(train={"supervision": "last"}, halting={"mode": "fixed"})
    torch.manual_seed(target.seed)
    model, b = M.LoopLM(cfg, target.vocab).train(), _batch(target)
    inputs, handles = _block_inputs(model)
    try:
        model(b.idx, b.targets, loops=p.n_loops).loss.backward()
    finally:
        for h in handles:
            h.remove()
    tbptt = target.config.train.tbptt
    first = p.n_loops - tbptt if tbptt else 0
    norms = [float(x.grad.norm()) if x.grad is not None else 0.0 for x in inputs]
    dead = [i for i, g in enumerate(norms) if g == 0.0 and i >= first]
    if len(inputs) != p.n_loops or dead:
        return failed(f"loops {dead} get no gradient: the graph is cut (only later loops learn)",
                      "grad norm per loop: " + ", ".join(f"{g:.2e}" for g in norms), grad_norms=norms)
    return passed(f"all {p.n_loops} loops receive gradient", grad_norms=norms)


@check("model.halted_state_frozen")
def halted_state_frozen(target: Target, params):
    """A halted token keeps the state it halted with; applications are counted per token."""
    model, b = _model(target, n_loops=4).eval(), _batch(target, 32)
    real = b.idx != target.vocab.pad_id
    with torch.no_grad():
        ent = model(b.idx, loops=4, trace=True).halting.entropy
        policy = HaltingConfig(mode="entropy", threshold=float(ent[0][real].median()))
        out = model(b.idx, loops=4, halting=policy)
        # a run cut after k loops is a prefix of the 4-loop run: a token that halted at loop k
        # must end with exactly the prediction it had when that prefix ended
        prefix = [model(b.idx, loops=k, halting=policy).logits for k in range(1, 4)]
    steps = out.halting.steps
    moved = 0
    for k in range(1, 4):
        stopped = (steps == k) & real
        if stopped.any():
            moved += int((out.logits[stopped] - prefix[k - 1][stopped]).abs().amax(dim=-1).gt(1e-5).sum())
    counted = int(steps[real].sum())
    halted = int(((steps < 4) & real).sum())
    if not 0 < halted < int(real.sum()):
        return failed(f"with the median threshold, {halted}/{int(real.sum())} tokens halted early: halting does not act per token")
    if moved or counted != out.halting.applications:
        return failed(f"{moved} halted tokens changed after halting, or applications miscounted "
                      f"({out.halting.applications} reported, {counted} counted)")
    saved = 1 - counted / (int(real.sum()) * 4)
    return passed(f"{halted} tokens halted early and kept their state; {saved:.0%} of block-token applications saved",
                  halted=halted, applications=counted, saved=saved)


class ParityParams(Params):
    tolerance: float = 1e-5
    n_loops: int = 4


def _reference_block(block, x, mask, bias):
    """A pre-LN block written from its definition, with the block's own weights."""
    h = F.layer_norm(x, (x.shape[-1],), block.ln1.weight, block.ln1.bias)
    B, T, C = h.shape
    H = block.attn.n_head
    q, k, v = (h @ block.attn.qkv.weight.T).split(C, dim=-1)
    q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
    if bias is not None:
        att = att + bias
    att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
    y = (att @ v).transpose(1, 2).reshape(B, T, C) @ block.attn.proj.weight.T
    x = x + y
    h2 = F.layer_norm(x, (C,), block.ln2.weight, block.ln2.bias)
    lin1, _, lin2, _ = block.mlp
    return x + F.gelu(h2 @ lin1.weight.T + lin1.bias, approximate="tanh") @ lin2.weight.T + lin2.bias


@check("model.block_parity", ParityParams)
def block_parity(target: Target, p: ParityParams):
    """One loop of the shared block equals a pre-LN block written out by hand."""
    if target.config.model.position == "rope":
        return passed("rope: parity covered by temporal_parity (rotary is applied inside attention)")
    model, b = _model(target).eval(), _batch(target)
    with torch.no_grad():
        sig = M.significance(b.idx, target.vocab, target.config.data.format)
        ctx = model.context(b.idx, sig)
        x = model.embed(b.idx, sig)
        T = b.idx.shape[1]
        mask = ctx.allowed if ctx.allowed is not None else torch.ones(T, T, dtype=torch.bool).tril()[None, None]
        bias = model.blocks[0].attn.rel_bias[:, ctx.bucket].permute(1, 0, 2, 3) if ctx.bucket is not None else None
        got = model.blocks[0](x, ctx)
        want = _reference_block(model.blocks[0], x, mask, bias)
    diff = float((got - want).abs().max())
    if diff > p.tolerance:
        return failed(f"block output differs from the reference by {diff:.2e} (> {p.tolerance})", max_diff=diff)
    return passed(f"max |block - reference| = {diff:.1e}", max_diff=diff)


@check("model.temporal_parity", ParityParams)
def temporal_parity(target: Target, p: ParityParams):
    """LoopLM with L loops equals a GPT-L whose L blocks all hold the shared block's weights."""
    # the looped model itself, whatever the target trains (a GPT-L target is compared the same way)
    cfg = target.small(n_loops=p.n_loops, reinject="none", step_embedding=False, tied=True)
    cfg = cfg.override(train={"depth": "fixed"})
    torch.manual_seed(target.seed)
    loop = M.LoopLM(cfg, target.vocab).eval()
    gpt = M.LoopLM(cfg.override(model={"tied": False}), target.vocab).eval()
    shared = loop.state_dict()
    gpt.load_state_dict({k: shared["blocks.0." + k.split(".", 2)[2]] if k.startswith("blocks.") else shared[k]
                         for k in gpt.state_dict()})
    b = _batch(target)
    with torch.no_grad():
        diff = float((loop(b.idx).logits - gpt(b.idx).logits).abs().max())
    if diff > p.tolerance:
        return failed(f"LoopLM-{p.n_loops} and tied GPT-{p.n_loops}L differ by {diff:.2e}", max_diff=diff)
    return passed(f"LoopLM-{p.n_loops} = tied GPT-{p.n_loops}L (max diff {diff:.1e})", max_diff=diff)
