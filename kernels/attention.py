"""Loop-step attention: causal attention with a digit-significance bias and a hard window,
online-softmax (flash) style, for every position scheme the model uses.

    loop_attention(q, k, v, sig, plen, bias=None, *, window=None, clip=3, prefix=False) -> out

    q, k, v  (B, H, T, HD)  bf16 or fp32; HD a power of two (16, 32, 64, 128)
    sig      (B, T)  int32  digit significance, -1 for non-digits (looplm.positions.significance)
    plen     (B,)    int32  prompt length (tokens up to and including the first '=')
    bias     (H, 2*clip+2) fp32 per-head bias by clipped significance difference; the last
                            bucket is for non-digit keys (None: no bias)
    window   keys that are digits are visible only within +-window significance places (None: all)
    prefix   prompt tokens attend to each other both ways (normal-order addition)
    out      (B, H, T, HD)  same dtype as q

Mask: key <= query (or both in the prompt, with prefix), and within the window unless the key
is not a digit. A query tile whose keys are all masked so far keeps m = -inf; the exponentials
use m = 0 then, so no (-inf) - (-inf) NaN appears (bug 6).
"""
import math

import torch
import torch.nn.functional as F

from .tile import ct, next_pow2, tile_kernel

ConstInt = ct.Constant[int]
ConstBool = ct.Constant[bool]
INF = math.inf
LOG2E = math.log2(math.e)   # softmax in base 2: exp(x) = exp2(x * LOG2E)
MAX_TILE, MIN_TILE = 64, 16   # query/key tiles: the power of two covering T, clamped to these


def bias_values(BIAS, h, CLIP, USE_BIAS, unit=1.0):
    """Head h's row of the (H, 2*CLIP+2) bias table as a tuple of scalars, loaded once per head
    before the key loop (an empty tuple without the bias), times `unit` (LOG2E: scores in base 2)."""
    vals = ()
    for k in ct.static_iter(range(2 * CLIP + 2 if USE_BIAS else 0)):
        vals += (ct.load(BIAS, index=(h, k), shape=()) * unit,)
    return vals


def bias_tile(bvals, d, key_digit, CLIP, WINDOW):
    """bias[h, bucket] for a (rows, keys) tile of significance differences d, from the head's
    scalars `bias_values`: one select per bucket a visible key can fall in, unrolled (with a
    window W < CLIP, digit keys past W places are masked, so only buckets CLIP-W..CLIP+W and the
    non-digit one). Bucket CLIP+k for a digit key k places apart (clipped), 2*CLIP+1 for a
    non-digit key. Why not `ct.gather(BIAS, (h, bucket))`: on the
    H200 that gather, once per element and key tile, cost as much as the rest of the tiled looped
    block's loop kernel (`python -m bench.tiled_profile`, window+bias against window)."""
    if 0 <= WINDOW <= CLIP:
        # every visible digit key is within the window, so in one of its buckets and unclipped;
        # what a masked element gets does not matter (`masked_biased` makes it -inf)
        out = ct.full(d.shape, bvals[2 * CLIP + 1], dtype=ct.float32)
        for k in ct.static_iter(range(CLIP - WINDOW, CLIP + WINDOW + 1)):
            out = ct.where(key_digit & (d == k - CLIP), bvals[k], out)
        return out
    dc = ct.minimum(ct.maximum(d, -CLIP), CLIP)
    out = ct.where(key_digit, ct.full(d.shape, 0.0, dtype=ct.float32), bvals[2 * CLIP + 1])
    for k in ct.static_iter(range(2 * CLIP + 1) if WINDOW < 0 else
                            range(CLIP - min(WINDOW, CLIP), CLIP + min(WINDOW, CLIP) + 1)):
        out = ct.where(key_digit & (dc == k - CLIP), bvals[k], out)
    return out


def position_ok(q_pos, k_pos, q_prompt, k_prompt, PREFIX):
    """(rows, keys) bool: the key is at or before the query, or, with a bidirectional prompt,
    both are prompt tokens. q_pos, q_prompt (rows, 1) and k_pos, k_prompt (1, keys) tiles."""
    ok = k_pos <= q_pos
    if PREFIX:
        ok = ok | (q_prompt & k_prompt)
    return ok


def masked_biased(s, ok, d, key_digit, bvals, CLIP, WINDOW, USE_BIAS):
    """A (rows, keys) score tile -> plus the head's bias where the key is visible, -inf where not:
    `ok` (position rules) narrowed by the significance window, which digit keys only obey. d the
    significance differences, key_digit the keys that are digits, `bvals` from `bias_values`.
    The one tile-side statement of the mask and bias rule: the attention and tiled kernels use
    it through `key_tile_step`, the persistent kernel through its mask kernel; the whole-tensor
    statement is `attention_mask` with `bias_bucket`."""
    if WINDOW >= 0:
        ok = ok & ((ct.abs(d) <= WINDOW) | ~key_digit)
    if USE_BIAS:
        s = s + bias_tile(bvals, d, key_digit, CLIP, WINDOW)
    return ct.where(ok, s, -INF)


def key_tile_mask(SIG, b, j, q_pos, sig_q, plen, T, BLOCK_N, PREFIX):
    """What key tile j of sequence b lets a query tile see, before the window: (ok, d, key_digit),
    (rows, keys) tiles of the position rule (and keys past T masked), the significance
    differences and the keys that are digits; `masked_biased` applies the window and the bias.
    q_pos, sig_q (rows,) the query rows' positions and significance."""
    k_pos = j * BLOCK_N + ct.arange(BLOCK_N, dtype=ct.int32)
    sig_k = ct.reshape(ct.load(SIG, index=(b, j), shape=(1, BLOCK_N), padding_mode=ct.PaddingMode.ZERO), (BLOCK_N,))
    ok = position_ok(q_pos[:, None], k_pos[None, :], q_pos[:, None] < plen, k_pos[None, :] < plen, PREFIX)
    return ok & (k_pos[None, :] < T), sig_q[:, None] - sig_k[None, :], sig_k[None, :] >= 0


def reciprocal(x):
    """1 / x of a (rows, 1) tile, approximate (MUFU.RCP, within 1 ulp), for softmax normalisations:
    a row's reciprocal then one multiply per output element, where an IEEE division per element
    costs a check, a reciprocal, two refinement FMAs and a slow-path call (36 CALLs in the tiled
    loop kernel's SASS)."""
    return ct.truediv(1.0, x, rounding_mode=ct.RoundingMode.APPROX, flush_to_zero=True)


def softmax_step(s, v, m_i, l_i, acc):
    """Masked scores s (rows, keys) in base 2 (times LOG2E: the caller folds it into its score
    scale and `bias_values`, so each element costs one exp2) and values v (keys, HD) into a query
    tile's online softmax -> (m_i, l_i, acc): m_i, l_i (rows, 1) the running max (base 2) and
    sum, acc (rows, HD) the unnormalised output. A row whose keys are all masked so far keeps
    m = -inf and exponentiates against 0 (bug 6). exp2 flushes subnormal results to zero: a
    weight below 2^-126 of the row's largest changes no sum in fp32."""
    m_new = ct.maximum(m_i, ct.max(s, axis=1, keepdims=True))
    m_use = ct.where(m_new > -INF, m_new, 0.0)
    p = ct.exp2(s - m_use, flush_to_zero=True)
    alpha = ct.exp2(m_i - m_use, flush_to_zero=True)
    l_i = l_i * alpha + ct.sum(p, axis=1, keepdims=True)
    acc = ct.mma(ct.astype(p, v.dtype), v, acc * alpha)
    return m_new, l_i, acc


def key_tile_step(q, K, V, SIG, bvals, b, h, j, q_pos, sig_q, plen, T, m_i, l_i, acc, scale,
                  BLOCK_M, BLOCK_N, HD, CLIP, WINDOW, USE_BIAS, PREFIX):
    """Key tile j of head h of sequence b into a query tile's online softmax -> (m_i, l_i, acc).
    q (BLOCK_M, HD) in the matrices' dtype; q_pos, sig_q (BLOCK_M,) its rows' positions and
    significance; m_i, l_i, acc as `softmax_step`. The mask and bias of the module docstring.
    A plain helper: cuTile compiles it as a tile function."""
    k = ct.reshape(ct.load(K, index=(b, h, j, 0), shape=(1, 1, BLOCK_N, HD), padding_mode=ct.PaddingMode.ZERO),
                   (BLOCK_N, HD))
    v = ct.reshape(ct.load(V, index=(b, h, j, 0), shape=(1, 1, BLOCK_N, HD), padding_mode=ct.PaddingMode.ZERO),
                   (BLOCK_N, HD))
    s = ct.mma(q, ct.transpose(k), ct.full((BLOCK_M, BLOCK_N), 0.0, dtype=ct.float32)) * (scale * LOG2E)
    ok, d, key_digit = key_tile_mask(SIG, b, j, q_pos, sig_q, plen, T, BLOCK_N, PREFIX)
    return softmax_step(masked_biased(s, ok, d, key_digit, bvals, CLIP, WINDOW, USE_BIAS), v, m_i, l_i, acc)


def key_tile_step_heads(qs, K, V, SIG, bvs, b, j, q_pos, sig_q, plen, T, ms, ls, accs, scale,
                        BLOCK_M, BLOCK_N, HD, CLIP, WINDOW, USE_BIAS, PREFIX, SCORES_TF32):
    """`key_tile_step` for every head at once: qs, bvs, ms, ls, accs are tuples with one entry per
    head (its queries, `bias_values`, running max, sum and output). The key tile's keys and values
    come in one load each for all heads and its mask is built once; the heads' products and
    softmaxes are independent work the compiler can overlap (four per-head passes over the key
    tiles were four chains of dependent loads: the tiled looped block is latency-bound).
    SCORES_TF32: the queries are TF32 and K holds fp32 keys, rounded to TF32 here, so the scores
    carry 10 mantissa bits instead of bf16's 7 (the values stay in K/V's dtype)."""
    H = len(qs)
    kt = ct.load(K, index=(b, 0, j, 0), shape=(1, H, BLOCK_N, HD), padding_mode=ct.PaddingMode.ZERO)
    vt = ct.load(V, index=(b, 0, j, 0), shape=(1, H, BLOCK_N, HD), padding_mode=ct.PaddingMode.ZERO)
    ok, d, key_digit = key_tile_mask(SIG, b, j, q_pos, sig_q, plen, T, BLOCK_N, PREFIX)
    out_m, out_l, out_acc = (), (), ()
    for hh in ct.static_iter(range(H)):
        k = ct.reshape(ct.extract(kt, (0, hh, 0, 0), shape=(1, 1, BLOCK_N, HD)), (BLOCK_N, HD))
        if SCORES_TF32:
            k = ct.astype(k, ct.tfloat32)
        v = ct.reshape(ct.extract(vt, (0, hh, 0, 0), shape=(1, 1, BLOCK_N, HD)), (BLOCK_N, HD))
        s = ct.mma(qs[hh], ct.transpose(k), ct.full((BLOCK_M, BLOCK_N), 0.0, dtype=ct.float32)) * (scale * LOG2E)
        m_i, l_i, acc = softmax_step(masked_biased(s, ok, d, key_digit, bvs[hh], CLIP, WINDOW, USE_BIAS), v,
                                     ms[hh], ls[hh], accs[hh])
        out_m, out_l, out_acc = out_m + (m_i,), out_l + (l_i,), out_acc + (acc,)
    return out_m, out_l, out_acc


@tile_kernel()
def loop_attention_kernel(Q, K, V, SIG, PLEN, BIAS, OUT, scale: float,
                          H: ConstInt, HD: ConstInt, BLOCK_M: ConstInt, BLOCK_N: ConstInt, CLIP: ConstInt,
                          WINDOW: ConstInt, USE_BIAS: ConstBool, PREFIX: ConstBool):
    """grid (cdiv(T, BLOCK_M), B * H): one query tile of one head of one sequence."""
    bm = ct.bid(0)
    b = ct.bid(1) // H
    h = ct.bid(1) % H
    T = Q.shape[2]
    q = ct.reshape(ct.load(Q, index=(b, h, bm, 0), shape=(1, 1, BLOCK_M, HD), padding_mode=ct.PaddingMode.ZERO),
                   (BLOCK_M, HD))
    q_pos = bm * BLOCK_M + ct.arange(BLOCK_M, dtype=ct.int32)
    sig_q = ct.reshape(ct.load(SIG, index=(b, bm), shape=(1, BLOCK_M), padding_mode=ct.PaddingMode.ZERO), (BLOCK_M,))
    plen = ct.load(PLEN, index=(b,), shape=())
    m_i = ct.full((BLOCK_M, 1), -INF, dtype=ct.float32)
    l_i = ct.full((BLOCK_M, 1), 0.0, dtype=ct.float32)
    acc = ct.full((BLOCK_M, HD), 0.0, dtype=ct.float32)
    if PREFIX:
        n_tiles = ct.cdiv(T, BLOCK_N)
    else:
        n_tiles = ct.cdiv(min((bm + 1) * BLOCK_M, T), BLOCK_N)     # causal: later key tiles are masked
    bvals = bias_values(BIAS, h, CLIP, USE_BIAS, LOG2E)
    for j in range(n_tiles):
        m_i, l_i, acc = key_tile_step(q, K, V, SIG, bvals, b, h, j, q_pos, sig_q, plen, T, m_i, l_i, acc, scale,
                                      BLOCK_M, BLOCK_N, HD, CLIP, WINDOW, USE_BIAS, PREFIX)
    out = acc * reciprocal(ct.maximum(l_i, 1e-30))
    ct.store(OUT, index=(b, h, bm, 0), tile=ct.reshape(ct.astype(out, OUT.dtype), (1, 1, BLOCK_M, HD)))


def supported(HD: int) -> bool:
    """Head sizes the kernel takes: a power of two that one tile row holds."""
    return HD == next_pow2(HD) and 16 <= HD <= 128


def tiles_for(B: int, H: int, T: int, D: int) -> dict[str, int]:
    """Query and key tiles: powers of two covering T (at least 16, at most 64); HD = D."""
    t = max(MIN_TILE, min(MAX_TILE, next_pow2(T)))
    return {"BLOCK_M": t, "BLOCK_N": t, "HD": next_pow2(D)}


def loop_attention_cutile(q, k, v, sig, plen, bias=None, *, window=None, clip=3, prefix=False, out=None):
    """Host wrapper (same signature as the reference); emulated when the tensors are on the CPU.
    `out` lets a test pass a NaN-poisoned buffer."""
    B, H, T, HD = q.shape
    if not supported(HD):
        raise ValueError(f"head size {HD} is not a power of two in 16..128")
    t = tiles_for(B, H, T, HD)
    out = torch.empty_like(q) if out is None else out
    table = bias.float().contiguous() if bias is not None else torch.zeros(H, 1, device=q.device)
    grid = (-(-T // t["BLOCK_M"]), B * H)
    loop_attention_kernel.launch(grid, (q.contiguous(), k.contiguous(), v.contiguous(), sig.int().contiguous(),
                                        plen.int().contiguous(), table, out, 1.0 / math.sqrt(HD), H, HD,
                                        t["BLOCK_M"], t["BLOCK_N"], clip, -1 if window is None else window,
                                        bias is not None, prefix))
    return out


def attention_mask(sig, plen, window=None, prefix=False, pos=None):
    """(B, 1, T, T) bool: the kernel's mask, written with whole tensors. `pos` (B, T) gives each
    row's position in its sequence and `plen` may then be per row (B, T): packed rows of several
    sequences (the persistent kernel's groups); by default rows are positions 0..T-1."""
    B, T = sig.shape
    if pos is None:
        pos = torch.arange(T, device=sig.device).expand(B, T)
    if plen.dim() == 1:
        plen = plen[:, None]
    ok = pos[:, None, :] <= pos[:, :, None]
    if prefix:
        inp = pos < plen
        ok = ok | (inp[:, :, None] & inp[:, None, :])
    if window is not None:
        near = (sig[:, :, None] - sig[:, None, :]).abs() <= window
        ok = ok & (near | (sig[:, None, :] < 0))
    return ok[:, None]


def bias_bucket(sig, clip):
    """(B, T, T) bucket of each (query, key) pair: 0..2*clip by the clipped significance
    difference for a digit key, 2*clip+1 for a key that is not a digit."""
    d = (sig[:, :, None] - sig[:, None, :]).clamp(-clip, clip) + clip
    return torch.where(sig[:, None, :] >= 0, d, torch.full_like(d, 2 * clip + 1))


def bias_matrix(bias, bucket):
    """(B, H, T, T) float: bias[h, bucket] for a (H, 2*clip+2) table and a `bias_bucket`."""
    return bias[:, bucket].permute(1, 0, 2, 3)


def loop_attention_reference(q, k, v, sig, plen, bias=None, *, window=None, clip=3, prefix=False):
    """scaled_dot_product_attention with the same mask and bias (PyTorch reference)."""
    allowed = attention_mask(sig.long(), plen.long(), window, prefix)
    if bias is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    mask = bias_matrix(bias.float(), bias_bucket(sig.long(), clip)).masked_fill(~allowed, -INF).to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def aot_signatures(B: int, H: int, T: int, D: int):
    from .tile import array, scalar
    t = tiles_for(B, H, T, D)
    out = []
    for dt in (torch.bfloat16,):
        # windowed bias (the headline scheme), plain causal, windowed with a bidirectional prompt
        for window, use_bias, prefix in ((1, True, False), (-1, False, False), (1, True, True)):
            out.append((loop_attention_kernel, [
                array(dt, 4), array(dt, 4), array(dt, 4), array(torch.int32, 2), array(torch.int32, 1),
                array(torch.float32, 2), array(dt, 4), scalar(torch.float32), H, t["HD"], t["BLOCK_M"],
                t["BLOCK_N"], 3, window, use_bias, prefix]))
    return out
