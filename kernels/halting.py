"""Halting update: per-token entropy of the prediction, halt decision, step count, masked state.

    halting_update(logits, new_state, state, active, steps, threshold)
        -> (state', active', steps', entropy)

    logits     (M, V)  float   the loop's predictions for M tokens over the real vocabulary
    new_state  (M, D)  float   the block's output for every token this loop
    state      (M, D)  float   the state entering the loop
    active     (M,)    bool    tokens still thinking at the start of the loop
    steps      (M,)    int32   loops applied so far
    threshold  (M,)    float32 per-token entropy threshold (nats); wait-to-think raises it per token

    state'  = where(active, new_state, state)      halted tokens keep their state
    steps'  = steps + active                       this loop counted for tokens that ran it
    entropy = H(softmax(logits)) in nats, never NaN:
              -inf logits are impossible tokens (0 * log 0 = 0, bug 6: no (-inf) - (-inf));
              a row with +inf logits is uniform over them; a row with no finite logit at all
              has entropy log(V) (nothing known, so it does not halt)
    active' = active & !(entropy < threshold)

The kernel pads V to a power of two inside the tile (bug 8) and masks the padded columns by
the real V before exp (bug 5); its loads index the tile space, never element offsets (bug 7).
"""
import math

import torch

from .tile import ct, next_pow2, tile_kernel

ConstInt = ct.Constant[int]
ConstBool = ct.Constant[bool]
INF = math.inf
BLOCK_M = 64      # tokens per block (H100, 1M tokens, V=14, D=128: 32 -> 0.65 ms, 64 -> 0.63, 128 -> 1.01)
MAX_BLOCK_D = 128  # state columns per tile; wider states loop over column tiles
# Blocks per SM the compiler plans for. Without it the compiler gives every thread 255 registers,
# one block runs per SM and the update takes 1.02 ms (56% of copy bandwidth); with 4 it is 64
# registers and 0.63 ms (91%); 2 -> 0.74 ms, 8 -> 1.02 (python -m bench.kernels_gpu, halting.sweep).
# 128-token blocks do not fit 64 registers, so the compiler falls back to 255 (hence 1.01 ms).
OCCUPANCY = 4
GATHER = True     # load logits with a gather (rows of V floats are rarely 16-byte aligned)
MAX_ENTROPY_TILE = 4096  # elements of one entropy tile (BLOCK_M x BLOCK_V)
MAX_V = 8192      # one tile holds the padded vocabulary; wider vocabularies use the reference


def row_entropy(logits, V, log_v, BLOCK_V):
    """(rows, BLOCK_V) logits padded past V -> (rows, 1) entropy in nats, never NaN.
    A plain helper: cuTile compiles it as a tile function where a kernel calls it.
    Three row reductions (max, sum e, sum e*z): +inf rows fold into the same sums, since
    z = 0 on their +inf columns and -inf elsewhere gives s = n_inf, sum e*z = 0, H = log n_inf
    (an earlier form with a separate +inf count and more selects ran 4x slower on the H100)."""
    x = ct.astype(logits, ct.float32)
    real = ct.arange(BLOCK_V, dtype=ct.int32)[None, :] < V             # columns >= V are padding (bug 5)
    x = ct.where(real, x, -INF)
    m = ct.max(x, axis=1, keepdims=True)                               # +inf, finite, or -inf (no logit)
    inf_row = m == INF
    z = ct.where(inf_row, ct.where(x == INF, 0.0, -INF), x - ct.where(m > -INF, m, 0.0))
    e = ct.exp(z)                                                      # exp(-inf) = 0
    s = ct.sum(e, axis=1, keepdims=True)                               # >= 1 unless no logit at all
    ez = ct.sum(ct.where(e > 0.0, e * z, 0.0), axis=1, keepdims=True)  # 0 * (-inf) would be NaN (bug 6)
    h = ct.where(m > -INF, ct.log(s) - ez / s, log_v)                  # no logit at all: log V
    return ct.maximum(h, 0.0)


@tile_kernel(occupancy=OCCUPANCY)
def halting_update_kernel(logits, new_state, state, active, steps, threshold, state_out, active_out, steps_out,
                          entropy_out, log_v: float, V: ConstInt, BLOCK_M: ConstInt, BLOCK_V: ConstInt,
                          BLOCK_D: ConstInt, WITH_STATE: ConstBool, GATHER: ConstBool):
    """grid (cdiv(M, BLOCK_M),): the whole update for BLOCK_M tokens per block, in one launch.
    Memory-bound: the state is 96% of the bytes; many small blocks per SM (OCCUPANCY) keep
    enough loads in flight while others compute their entropy."""
    bid = ct.bid(0)
    if GATHER:
        # logit rows of V floats are rarely 16-byte aligned (V = 14: 56 bytes), which rules out
        # bulk tile loads; a gather loads each element, out-of-range ones as -inf
        r = bid * BLOCK_M + ct.arange(BLOCK_M, dtype=ct.int32)
        c = ct.arange(BLOCK_V, dtype=ct.int32)
        x = ct.gather(logits, (r[:, None], c[None, :]), padding_value=-INF)
    else:
        # (BLOCK_M, BLOCK_V): tile index (bid, 0), never (bid * BLOCK_M, 0)
        x = ct.load(logits, index=(bid, 0), shape=(BLOCK_M, BLOCK_V), padding_mode=ct.PaddingMode.NEG_INF)
    h = ct.reshape(row_entropy(x, V, log_v, BLOCK_V), (BLOCK_M,))
    ct.store(entropy_out, index=(bid,), tile=h)
    if WITH_STATE:
        act = ct.load(active, index=(bid,), shape=(BLOCK_M,), padding_mode=ct.PaddingMode.ZERO)
        thr = ct.load(threshold, index=(bid,), shape=(BLOCK_M,), padding_mode=ct.PaddingMode.ZERO)
        st = ct.load(steps, index=(bid,), shape=(BLOCK_M,), padding_mode=ct.PaddingMode.ZERO)
        ct.store(steps_out, index=(bid,), tile=st + ct.where(act, 1, 0))
        ct.store(active_out, index=(bid,), tile=ct.where(h < thr, False, act))
        # halted tokens keep their state; plain loads (allow_tma=False) measured fastest
        for j in range(ct.cdiv(new_state.shape[1], BLOCK_D)):
            new = ct.load(new_state, index=(bid, j), shape=(BLOCK_M, BLOCK_D), padding_mode=ct.PaddingMode.ZERO,
                          allow_tma=False)
            old = ct.load(state, index=(bid, j), shape=(BLOCK_M, BLOCK_D), padding_mode=ct.PaddingMode.ZERO,
                          allow_tma=False)
            ct.store(state_out, index=(bid, j), tile=ct.where(act[:, None], new, old))


def tiles_for(M: int, V: int, D: int, block_m: int = BLOCK_M, block_d: int = MAX_BLOCK_D) -> dict[str, int]:
    """Tile sizes for a shape: all powers of two; V padded up inside one tile, and the entropy
    tile held to MAX_ENTROPY_TILE elements (64 x 16 for V = 14). For V = 1000 a 256 x 1024 tile
    took 54 s to compile for sm_90 and spilled 10k times; 4 x 1024 takes 0.7 s, no spills
    (python -m bench.kernels_sass)."""
    block_v = next_pow2(V)
    return {"BLOCK_M": min(block_m, max(1, MAX_ENTROPY_TILE // block_v)), "BLOCK_V": block_v,
            "BLOCK_D": min(next_pow2(D), block_d)}


def supported(V: int) -> bool:
    return V <= MAX_V


def _launch(logits, new_state, state, active, steps, threshold, with_state: bool, outs, entropy,
            block_m=BLOCK_M, block_d=MAX_BLOCK_D, gather=GATHER, kernel=None) -> None:
    """One launch over ceil(M / BLOCK_M) blocks, writing `outs` (state', active', steps') and
    `entropy`. The tile sizes, `gather` and `kernel` (another compilation of the same body, e.g.
    another occupancy) are for tuning sweeps."""
    M, V = logits.shape
    D = new_state.shape[1] if with_state else 1
    t = tiles_for(M, V, D, block_m, block_d)
    dev = logits.device
    if with_state:
        ins = (new_state.contiguous(), state.contiguous(), active.contiguous(), steps.contiguous(),
               threshold.float().contiguous())
    else:  # entropy only: the state arguments are neither read nor written
        state1, flag, count = (torch.zeros(1, 1, device=dev), torch.zeros(1, dtype=torch.bool, device=dev),
                               torch.zeros(1, dtype=torch.int32, device=dev))
        ins, outs = (state1, state1, flag, count, torch.zeros(1, device=dev)), (state1, flag, count)
    (kernel or halting_update_kernel).launch((-(-M // t["BLOCK_M"]),), (
        logits.contiguous(), *ins, *outs, entropy, math.log(V), V, t["BLOCK_M"], t["BLOCK_V"],
        t["BLOCK_D"], with_state, gather))


def aot_signatures(M: int, V: int, D: int):
    """(kernel, AOT parameter constraints) for a declared shape: fp32 or bf16 logits (bf16 under
    autocast), with and without the state update."""
    from .tile import array, scalar
    t = tiles_for(M, V, D)
    f32, b8, i32 = torch.float32, torch.bool, torch.int32
    return [(halting_update_kernel, [array(dt, 2), array(f32, 2), array(f32, 2), array(b8, 1), array(i32, 1),
                                     array(f32, 1), array(f32, 2), array(b8, 1), array(i32, 1), array(f32, 1),
                                     scalar(f32), V, t["BLOCK_M"], t["BLOCK_V"], t["BLOCK_D"], with_state, GATHER])
            for dt in (f32, torch.bfloat16) for with_state in (True, False)]


def halting_update_cutile(logits, new_state, state, active, steps, threshold, *, out=None, tuning=None):
    """Host wrapper (same signature as the reference); emulated when the tensors are on the CPU.
    `out=(state', active', steps', entropy)` writes into given buffers (a test poisons them);
    `tuning` passes block_m, block_d, gather or kernel to the launch (benchmark sweeps)."""
    state_out, active_out, steps_out, entropy = out if out is not None else (
        torch.empty_like(state), torch.empty_like(active), torch.empty_like(steps),
        torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device))
    _launch(logits, new_state, state, active, steps, threshold, True, (state_out, active_out, steps_out), entropy,
            **(tuning or {}))
    return state_out, active_out, steps_out, entropy


def entropy_cutile(logits: torch.Tensor, *, out=None) -> torch.Tensor:
    """Host wrapper of the entropy alone (same signature as `entropy_reference`)."""
    entropy = out if out is not None else torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    _launch(logits, None, None, None, None, None, False, None, entropy)
    return entropy


def entropy_reference(logits: torch.Tensor) -> torch.Tensor:
    """(M, V) -> (M,) float32 entropy in nats, NaN-free for any non-NaN input."""
    x = logits.float()
    posinf = torch.isposinf(x)
    n_posinf = posinf.sum(dim=-1)
    finite_or_neg = torch.where(posinf, torch.full_like(x, -math.inf), x)
    m = finite_or_neg.amax(dim=-1, keepdim=True)
    has_finite = torch.isfinite(m)
    z = torch.where(has_finite, finite_or_neg - torch.where(has_finite, m, 0.0), torch.full_like(x, -math.inf))
    e = z.exp()
    s = e.sum(dim=-1).clamp_min(1e-38)
    ez = torch.where(e > 0, e * z, torch.zeros_like(e))
    h = torch.log(s) - ez.sum(dim=-1) / s
    h = torch.where(has_finite.squeeze(-1), h, torch.full_like(h, math.log(x.shape[-1])))
    h = torch.where(n_posinf > 0, torch.log(n_posinf.clamp_min(1).float()), h)
    return h.clamp_min(0.0)


def halting_update_reference(logits, new_state, state, active, steps, threshold):
    """PyTorch reference of the halting update (same signature as the cuTile wrapper)."""
    entropy = entropy_reference(logits)
    state = torch.where(active[:, None], new_state, state)
    steps = steps + active.to(steps.dtype)
    active = active & ~(entropy < threshold)
    return state, active, steps, entropy

