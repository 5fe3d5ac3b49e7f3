"""Halting update: per-token entropy of the prediction, halt decision, step count, masked state.

    halting_update(logits, new_state, state, active, steps, threshold)
        -> (state', active', steps', entropy)

    logits     (M, V)  float   the loop's predictions for M tokens over the real vocabulary
    new_state  (M, D)  float   the block's output for every token this loop
    state      (M, D)  float   the state entering the loop
    active     (M,)    bool    tokens still thinking at the start of the loop
    steps      (M,)    int32   loops applied so far
    threshold  (M,)    float   per-token entropy threshold (nats); wait-to-think raises it per token

    state'  = where(active, new_state, state)      halted tokens keep their state
    steps'  = steps + active                       this loop counted for tokens that ran it
    entropy = H(softmax(logits)) in nats, never NaN:
              -inf logits are impossible tokens (0 * log 0 = 0, bug 6: no (-inf) - (-inf));
              a row with +inf logits is uniform over them; a row with no finite logit at all
              has entropy log(V) (nothing known, so it does not halt)
    active' = active & !(entropy < threshold)

The cuTile kernel pads V to a power of two inside (bug 8) and masks the padded columns by the
real V before exp (bug 5); it loads with tile indices, never element offsets (bug 7).
"""
from __future__ import annotations

import math

import torch


def entropy_reference(logits: torch.Tensor) -> torch.Tensor:
    """(M, V) -> (M,) float32 entropy in nats, NaN-free for any non-NaN input."""
    x = logits.float()
    posinf = torch.isposinf(x)
    n_posinf = posinf.sum(dim=-1)
    finite_or_neg = torch.where(posinf, torch.full_like(x, -math.inf), x)
    m = finite_or_neg.amax(dim=-1, keepdim=True)
    has_finite = torch.isfinite(m)
    z = torch.where(has_finite, finite_or_neg - torch.where(has_finite, m, 0.0), torch.full_like(x, -math.inf))
    e = z.exp()                                                   # exp(-inf) = 0
    s = e.sum(dim=-1)
    ez = torch.where(e > 0, e * z, torch.zeros_like(e))           # 0 * (-inf) would be NaN
    h = torch.log(s.clamp_min(1e-38)) - ez.sum(dim=-1) / s.clamp_min(1e-38)
    h = torch.where(has_finite.squeeze(-1), h, torch.full_like(h, math.log(x.shape[-1])))
    h = torch.where(n_posinf > 0, torch.log(n_posinf.clamp_min(1).float()), h)
    return h.clamp_min(0.0)


def halting_update_reference(logits: torch.Tensor, new_state: torch.Tensor, state: torch.Tensor,
                             active: torch.Tensor, steps: torch.Tensor, threshold: torch.Tensor):
    """PyTorch reference of the halting update (same signature as the cuTile wrapper)."""
    entropy = entropy_reference(logits)
    state = torch.where(active[:, None], new_state, state)
    steps = steps + active.to(steps.dtype)
    active = active & ~(entropy < threshold)
    return state, active, steps, entropy
