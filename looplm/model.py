"""LoopLM: one pre-LN transformer block applied L times ("loops"), with adaptive halting.

The same code is the GPT-L baseline: `tied=False` gives L distinct blocks applied once each,
so a GPT-L whose blocks all hold the shared weights computes exactly what LoopLM does with
x0 re-injection and the step embedding off (tested).

forward(idx, targets=None) -> Output(logits, loss, halting). The state is never written in
place: each loop makes a new tensor, so the loss reaches the state entering every loop
(full BPTT, bug 4). The loss is computed whenever targets are given, in train and eval mode
alike (bugs 10 and 12).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from kernels import dispatch
from kernels.attention import attention_mask, bias_bucket, bias_matrix
from .config import Config, HaltingConfig
from .data import IGNORE
from .fused import fused_forward
from .positions import apply_rope, prompt_length, rope_tables, significance
from .tokens import Vocab


class Halting(NamedTuple):
    steps: torch.Tensor          # (B, T) loops applied to each token
    entropy: torch.Tensor        # (L, B, T) prediction entropy after each loop, nats (detached);
                                 # (0, B, T) when not recorded (fixed depth without trace=True)
    applications: torch.Tensor   # () block-token applications the non-pad tokens needed
    max_applications: torch.Tensor  # () ... and what running every token for all L loops would use
    ponder: Optional[torch.Tensor] = None  # learned gate: (L, B, T) halting distribution


class Output(NamedTuple):
    logits: torch.Tensor         # (B, T, V)
    loss: Optional[torch.Tensor]
    halting: Halting


class Context(NamedTuple):
    """What attention needs about positions, computed once per forward for all loops."""
    allowed: Optional[torch.Tensor]   # (B, 1, T, T) bool, None = plain causal
    bucket: Optional[torch.Tensor]    # (B, T, T) relative-bias bucket, None = no bias
    rope: Optional[tuple[torch.Tensor, torch.Tensor]]
    sig: torch.Tensor                 # (B, T) significance; with plen, what the cuTile kernel takes
    plen: torch.Tensor                # (B,) prompt length (tokens up to the first '=')
    window: Optional[int]
    clip: int
    prefix: bool
    backend: str                      # 'reference', 'cutile' or 'emulator' (decided once per forward)


class Attention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, n_buckets: int, dropout: float):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)
        # per-head bias by significance difference (relative / windowed schemes)
        self.rel_bias = nn.Parameter(torch.zeros(n_head, n_buckets)) if n_buckets else None

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)  # (B, H, T, hd)
        if ctx.rope is not None:
            q, k = apply_rope(q, *ctx.rope), apply_rope(k, *ctx.rope)
        if not self.training and ctx.backend != "reference":
            y = dispatch.loop_attention(q, k, v, ctx.sig, ctx.plen, self.rel_bias if ctx.bucket is not None else None,
                                        window=ctx.window, clip=ctx.clip, prefix=ctx.prefix, name=ctx.backend)
            return self.proj(y.transpose(1, 2).reshape(B, T, C))
        mask = None
        if ctx.bucket is not None:
            bias = bias_matrix(self.rel_bias, ctx.bucket)             # (B, H, T, T)
            mask = bias.masked_fill(~ctx.allowed, -math.inf).to(q.dtype)
        elif ctx.allowed is not None:
            mask = ctx.allowed
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """Pre-LN: h + attn(ln1(h)), then + mlp(ln2(.))."""

    def __init__(self, n_embd: int, n_head: int, mlp_ratio: int, n_buckets: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = Attention(n_embd, n_head, n_buckets, dropout)
        self.ln2 = nn.LayerNorm(n_embd)
        # tanh-GELU (as GPT-2): the cuTile kernels compute exactly this (tile code has tanh, no erf)
        self.mlp = nn.Sequential(nn.Linear(n_embd, mlp_ratio * n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * n_embd, n_embd), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, ctx: Context) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), ctx)
        return x + self.mlp(self.ln2(x))


def supervision_weights(kind: str, L: int) -> list[float]:
    """Loss weight of each loop's prediction (sums to 1). half = the later half (bug 11)."""
    if kind == "last":
        w = [0.0] * (L - 1) + [1.0]
    elif kind == "half":
        w = [0.0 if l < L // 2 else 1.0 for l in range(L)]
    elif kind == "all":
        w = [1.0] * L
    else:  # weighted: later loops count more
        w = [float(l + 1) for l in range(L)]
    total = sum(w)
    return [x / total for x in w]


class LoopLM(nn.Module):
    def __init__(self, config: Config, vocab: Vocab):
        super().__init__()
        m = config.model
        if len(vocab) != m.vocab_size:
            raise ValueError(f"vocabulary has {len(vocab)} tokens, config says vocab_size={m.vocab_size}")
        self.config, self.vocab = config, vocab
        D = m.n_embd
        n_buckets = 2 * m.relative_clip + 2 if m.position in ("relative", "windowed") else 0
        self.wte = nn.Embedding(m.vocab_size, D)
        self.wpe = nn.Embedding(m.max_seq_len, D) if m.position == "learned" else None
        self.abacus = nn.Embedding(m.max_seq_len + m.abacus_max_offset, D) if m.position == "abacus" else None
        self.step_emb = nn.Embedding(m.n_loops, D) if m.step_embedding else None
        self.adapter = nn.Linear(2 * D, D, bias=False) if m.reinject == "adapter" else None
        self.blocks = nn.ModuleList(Block(D, m.n_head, m.mlp_ratio, n_buckets, m.dropout)
                                    for _ in range(1 if m.tied else m.n_loops))
        self.ln_f = nn.LayerNorm(D)
        self.lm_head = nn.Linear(D, m.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight     # tied input/output embedding, as in nanoGPT
        self.halt_head = nn.Linear(D, 1) if config.halting.mode == "gate" else None
        self.drop = nn.Dropout(m.dropout)
        self.apply(self._init)
        if self.adapter is not None:              # start as "add": W [h; x0] = h + x0
            with torch.no_grad():
                self.adapter.weight.copy_(torch.cat([torch.eye(D), torch.eye(D)], dim=1))

    @staticmethod
    def _init(mod: nn.Module) -> None:
        if isinstance(mod, nn.Linear):
            nn.init.normal_(mod.weight, std=0.02)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Embedding):
            nn.init.normal_(mod.weight, std=0.02)

    # ---- pieces ---------------------------------------------------------------------------
    def context(self, idx: torch.Tensor, sig: torch.Tensor, backend: str = "reference") -> Context:
        m = self.config.model
        windowed = m.position == "windowed"
        bias = m.position in ("relative", "windowed")
        plen = prompt_length(idx, self.vocab)
        allowed = None
        if windowed or bias or m.prefix_bidirectional or m.answer_isolated:
            allowed = attention_mask(sig, plen, m.window if windowed else None, m.prefix_bidirectional)
        if m.downward_window and windowed:
            # a digit key above the query's significance is hidden: a carry flows up and nothing
            # flows down, so no column can learn how far below the top it sits (a 1-4 digit
            # normal-order model counted that distance and ended long answers by it). No kernel
            # takes this rule: the reference runs.
            up = (sig[:, None, :] > sig[:, :, None]) & (sig[:, None, :] >= 0)              # (B, T, T)
            allowed = allowed & ~up[:, None]
            backend = "reference"
        if m.answer_isolated:
            # an answer key is seen by its own query only: under teacher forcing an answer token
            # that sees the answer before it can count its place there and end the answer by
            # count (as 1-4 digit normal-order models did: bench/answer_positions.py).
            # No kernel takes this rule: the reference runs.
            T = idx.shape[1]
            pos = torch.arange(T, device=idx.device)
            answer_key = pos[None, None, :] >= plen[:, None, None]                       # (B, 1, T)
            allowed = allowed & (~answer_key | torch.eye(T, dtype=torch.bool, device=idx.device))[:, None]
            backend = "reference"
        bucket = bias_bucket(sig, m.relative_clip) if bias else None
        rope = rope_tables(idx.shape[1], m.n_embd // m.n_head, idx.device) if m.position == "rope" else None
        return Context(allowed, bucket, rope, sig, plen, m.window if windowed else None, m.relative_clip,
                       m.prefix_bidirectional, backend)

    def significance(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) each token's significance under this model's format and position options."""
        return significance(idx, self.vocab, self.config.data.format, self.config.model.operators_top)

    def embed(self, idx: torch.Tensor, sig: torch.Tensor) -> torch.Tensor:
        """x0 (B, T, D): token embedding plus the scheme's absolute position information."""
        x = self.wte(idx)
        m = self.config.model
        if self.wpe is not None:
            if idx.shape[1] > m.max_seq_len:
                raise ValueError(f"sequence of {idx.shape[1]} tokens > max_seq_len {m.max_seq_len}")
            x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        if self.abacus is not None:
            offset = (torch.randint(0, m.abacus_max_offset + 1, (idx.shape[0], 1), device=idx.device)
                      if self.training else torch.zeros(idx.shape[0], 1, dtype=torch.long, device=idx.device))
            index = (sig + offset).clamp(0, self.abacus.num_embeddings - 1)
            x = x + self.abacus(index) * (sig >= 0).unsqueeze(-1)
        return self.drop(x)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.ln_f(h))

    def block_input(self, h: torch.Tensor, x0: torch.Tensor, loop: int) -> torch.Tensor:
        reinject = self.config.model.reinject
        if reinject == "add":
            h = h + x0
        elif reinject == "adapter":
            h = self.adapter(torch.cat([h, x0], dim=-1))
        if self.step_emb is not None:
            h = h + self.step_emb.weight[min(loop, self.step_emb.num_embeddings - 1)]
        return h

    def thresholds(self, idx: torch.Tensor, policy: HaltingConfig) -> torch.Tensor:
        """(B, T) entropy threshold per token; wait-to-think: stricter at and after the trigger."""
        thr = torch.full(idx.shape, policy.threshold, device=idx.device)
        if policy.mode == "wait" and policy.trigger in self.vocab.chars:
            after = (idx == self.vocab.id(policy.trigger)).long().cumsum(dim=1) > 0
            thr = torch.where(after, torch.full_like(thr, policy.wait_threshold), thr)
        return thr

    # ---- the loop -------------------------------------------------------------------------
    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, *,
                loops: Optional[int] = None, halting: Optional[HaltingConfig] = None, trace: bool = False,
                start: Optional[tuple[torch.Tensor, int]] = None) -> Output:
        """idx (B, T) -> Output. `loops` and `halting` override the config at test time; `trace`
        records every loop's entropy even at fixed depth (halting records it anyway). `start`
        (h (B, T, D), n) runs the `loops` loops from the state after n loops (`loop_state`) instead
        of from the beginning: the progressive loss's second pass.
        Nothing in the loop waits for the GPU: counts stay tensors (CUDA graphs can capture it)."""
        L = self._depth(loops)
        policy = halting or self.config.halting
        backend = "reference" if self.training else dispatch.backend(idx)
        fused = None
        if backend != "reference" and not torch.is_grad_enabled() and not trace and start is None:
            fused = fused_forward(self, idx, L, policy)            # all loops in one kernel launch
        if fused is not None:
            logits, steps, used = fused
            return Output(logits, self._ce(logits, targets) if targets is not None else None,
                          Halting(steps, torch.empty(0, *idx.shape, device=idx.device), used,
                                  (idx != self.vocab.pad_id).sum() * L))
        if not dispatch.per_loop_kernels(backend):
            backend = "reference"                                  # faster where one launch cannot run
        sig = self.significance(idx)
        x0 = self.embed(idx, sig)
        real = idx != self.vocab.pad_id                            # (B, T) tokens that count
        h, steps, applications, entropies, losses, halt_logits = self._loops(
            idx, x0, self.context(idx, sig, backend), real, targets, L, policy, trace, start)
        logits = self.head(h)
        loss, ponder = self._loss(logits, targets, losses, halt_logits, L, policy)
        ent = torch.stack(entropies) if entropies else torch.empty(0, *idx.shape, device=idx.device)
        halt = Halting(steps, ent, applications, real.sum() * L, ponder)
        return Output(logits, loss, halt)

    def _depth(self, loops: Optional[int]) -> int:
        L = loops or self.config.model.n_loops
        if len(self.blocks) > 1 and L > len(self.blocks):
            raise ValueError(f"GPT-L with {len(self.blocks)} blocks cannot run {L} loops")
        return L

    def loop_state(self, idx: torch.Tensor, loops: int) -> torch.Tensor:
        """(B, T, D) state after `loops` loops at fixed depth (the reference path, no head)."""
        sig = self.significance(idx)
        x0 = self.embed(idx, sig)
        return self._loops(idx, x0, self.context(idx, sig), idx != self.vocab.pad_id, None, self._depth(loops),
                           HaltingConfig(), False)[0]

    def _loops(self, idx, x0, ctx: Context, real, targets, L: int, policy: HaltingConfig, trace: bool,
               start: Optional[tuple[torch.Tensor, int]] = None):
        """Apply the block L times -> (h, steps, applications, entropies, losses, halt_logits):
        the final state, loops per token, block-token applications, and per loop the entropy
        (halting or trace), the supervised loops' losses and the learned gate's logits (training).
        Inference with halting freezes halted tokens (see _halt). Plain tensors and tuples only:
        torch.compile traces the loop."""
        cfg = self.config
        dynamic = not self.training and policy.mode != "fixed"
        gate = policy.mode == "gate" and self.halt_head is not None
        thr = self.thresholds(idx, policy) if dynamic and not gate else None
        h = x0 if cfg.model.reinject == "none" else torch.zeros_like(x0)
        h, first = start if start is not None else (h, 0)   # loop indices (step embedding) continue from n
        active, survive = real.clone(), torch.ones(real.shape, device=real.device)
        steps = torch.zeros(real.shape, dtype=torch.int32, device=real.device)
        weights = supervision_weights(cfg.train.supervision, L)
        applications = torch.zeros((), dtype=torch.long, device=x0.device)
        entropies, losses, halt_logits = [], [], []
        for loop in range(L):
            h_in = h.detach() if self.training and cfg.train.tbptt and loop == L - cfg.train.tbptt else h  # truncated BPTT
            new = self.blocks[first + loop if len(self.blocks) > 1 else 0](self.block_input(h_in, x0, first + loop), ctx)
            new = self._update(h_in, new)              # training with update_skip: some tokens keep h
            applications = applications + active.sum()
            supervised = targets is not None and self.training and (gate or weights[loop] > 0)
            # a loop's own prediction is needed to halt on it, to supervise it, or to trace it
            logits = self.head(new) if (dynamic or supervised or trace) else None
            if dynamic:
                h, active, steps, survive, entropy = self._halt(h, active, steps, survive, new, logits, thr, loop,
                                                                policy, ctx.backend)
            else:
                h, steps = new, steps + real.int()
                entropy = self._entropy(logits, ctx.backend) if trace else None
            if entropy is not None:
                entropies.append(entropy.detach())
            if gate and self.training:
                halt_logits.append(self.halt_head(new).squeeze(-1))
            if supervised:
                losses.append((weights[loop], self._ce(logits, targets, reduce=not gate)))
        return h, steps, applications, entropies, losses, halt_logits

    def _update(self, h: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """The state after a loop: `new`, except in training with update_skip > 0, where each
        token keeps `h` with that probability, so how far information travels in k loops varies
        and a state waiting on it must hold. Drawn from torch's CPU generator, which checkpoints
        save (exact resume)."""
        p = self.config.train.update_skip
        if not (self.training and p):
            return new
        keep = (torch.rand(h.shape[:2]) < p).to(h.device)[..., None]          # (B, T, 1)
        return torch.where(keep, h, new)

    def _entropy(self, logits: torch.Tensor, backend: str) -> torch.Tensor:
        """(B, T, V) -> (B, T) prediction entropy in nats (detached)."""
        return dispatch.entropy(logits.detach().flatten(0, 1), backend).view(logits.shape[:2])

    def _halt(self, h, active, steps, survive, new, logits, thr, loop: int, policy: HaltingConfig, backend: str):
        """One loop's halting update for inference -> (h, active, steps, survive, entropy): halted
        tokens keep their state; a token halts once its entropy is below its threshold (or, with
        the learned gate, once its cumulative halting probability passes gate_threshold), never
        before min_loops."""
        B, T, D = new.shape
        if policy.mode == "gate":
            survive = survive * (1 - torch.sigmoid(self.halt_head(new).squeeze(-1).float()))
            h, steps = torch.where(active[..., None], new, h), steps + active.int()
            if loop + 1 >= policy.min_loops:
                active = active & ~((1 - survive) >= policy.gate_threshold)
            return h, active, steps, survive, self._entropy(logits, backend)
        if loop + 1 < policy.min_loops:
            thr = torch.full_like(thr, -1.0)                      # nothing halts before min_loops
        h, active, steps, entropy = dispatch.halting_update(
            logits.reshape(B * T, -1), new.reshape(B * T, D), h.reshape(B * T, D),
            active.reshape(-1), steps.reshape(-1), thr.reshape(-1), backend)
        return h.view(B, T, D), active.view(B, T), steps.view(B, T), survive, entropy.view(B, T)

    def _loss(self, logits, targets, losses, halt_logits, L: int, policy: HaltingConfig):
        """(loss, ponder): the final prediction's loss at inference; in training the supervised
        loops' losses by their weights, or the learned gate's ponder loss."""
        if targets is None:
            return None, None
        if not self.training:
            return self._ce(logits, targets), None
        if halt_logits:
            return self._ponder_loss([l for _, l in losses], halt_logits, targets, policy)
        return sum(w * l for w, l in losses), None

    def _ce(self, logits: torch.Tensor, targets: torch.Tensor, reduce: bool = True) -> torch.Tensor:
        flat = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE, reduction="mean" if reduce else "none")
        return flat if reduce else flat.view(targets.shape)

    def _ponder_loss(self, losses, halt_logits, targets, policy: HaltingConfig):
        """PonderNet: expected loss under the halting distribution + beta * KL(p || geometric)."""
        lam = torch.sigmoid(torch.stack(halt_logits).float())                 # (L, B, T)
        L = lam.shape[0]
        lam = torch.cat([lam[:-1], torch.ones_like(lam[-1:])])                 # halt at the last loop
        survive = torch.cumprod(torch.cat([torch.ones_like(lam[:1]), 1 - lam[:-1]]), dim=0)
        p = lam * survive                                                      # (L, B, T), sums to 1
        mask = (targets != IGNORE).float()
        n = mask.sum().clamp_min(1.0)
        expected = (p * torch.stack(losses) * mask).sum() / n
        prior = policy.gate_prior * (1 - policy.gate_prior) ** torch.arange(L, device=p.device)
        prior = (prior / prior.sum()).view(L, 1, 1)
        kl = (p * (torch.log(p.clamp_min(1e-9)) - torch.log(prior))).sum(dim=0)
        return expected + policy.gate_beta * (kl * mask).sum() / n, p.detach()

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
