"""Persistent looped block: one launch runs all L loops of the shared block for a group of
short sequences, with halting inside the kernel.

    looped_block(x0, sig, plen, real, thr, w, *, loops, ...) -> (logits, steps)

    x0     (B, T, D)  fp32   token (+ position) embeddings, the loop's input anchor
    sig    (B, T)     int32  digit significance (-1: not a digit); plen (B,) int32 prompt lengths
    real   (B, T)     bool   tokens that are not padding (padding never runs, never counts)
    thr    (B, T)     fp32   per-token entropy thresholds (halting); unused with halting off
    w      the shared block's weights (see `Weights`): LN1, W_qkv (3D, D), W_proj (D, D), LN2,
           W_1 (4D, D) + b_1, W_2 (D, 4D) + b_2, LN_f, W_te (V, D) (tied head), relative bias (H, NB)
    logits (B, T, V)  fp32   the head's output on the final state
    steps  (B, T)     int32  loops each token ran

One CTA holds the state of a group of whole sequences packed into R = 64 or 128 token rows (T <= 128,
D a power of two <= 128) for all L loops; every loop reads the weights again, from L2 (all CTAs read the same ones),
instead of launching ~10 kernels per loop. Matrix products run in bf16 with fp32
accumulation (fp32 weights: fp32 products); layer norms, softmax and the state stay fp32. Shapes outside `supported` fall
back to the per-loop path.
"""
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .attention import LOG2E, attention_mask, bias_bucket, bias_matrix, reciprocal
from .halting import entropy_reference, row_entropy
from . import packed_mask   # called through the module: a check may count its launches
from .tile import ct, next_pow2, tile_kernel

ConstInt = ct.Constant[int]
ConstBool = ct.Constant[bool]
INF = math.inf
# one block holds a (ROWS, D) state: D=256 spills (9 MB cubin, 80 s compile); a sequence of up to
# MAX_ROWS tokens fills one 128-row group by itself (T = 99 for 32-digit problems), longer ones run
# on the reference path (kernels/dispatch.py)
MAX_T, MAX_D = 128, 128
# Tunings measured on the H100 (bench/results/kernels-h100.json, L=32, no halting, graphed path):
# packed token rows per block: ROWS, or MAX_ROWS where that wastes fewer rows (T=39: 3 sequences
# fill 91% of 128 rows, 1 fills 61% of 64): 4.8 ms vs 5.4 although 128 rows spill some
ROWS, MAX_ROWS = 64, 128
CHUNK = 128    # MLP hidden columns per step: 32 -> 5.0 ms, 64 -> 5.0, 128 -> 4.8
# worker warps: cuTile's default 4 gives the 128-row kernel 2.6 KB of spilled stack per thread and
# takes 16.5 ms; 8 cut it to 0.8 KB (python -m bench.kernels_sass [--option num_worker_warps=4])
# 16 (tileiras 13.5 bytecode, `tile.compile_options`) halve the registers (128
# instead of 255 for the tiled loop kernel) but ran slower on the H200 at every shape measured
# (1.16-1.67x the time, 2026-12-03)
WORKER_WARPS = 8


class Weights(NamedTuple):
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    qkv: torch.Tensor      # (3D, D)  rows: q heads, then k heads, then v heads
    proj: torch.Tensor     # (D, D)
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor
    w1: torch.Tensor       # (4D, D)
    b1: torch.Tensor
    w2: torch.Tensor       # (D, 4D)
    b2: torch.Tensor
    lnf_w: torch.Tensor
    lnf_b: torch.Tensor
    wte: torch.Tensor      # (V, D)
    bias: torch.Tensor     # (H, NB) fp32 relative bias (zeros (H, 1) when unused)
    step: torch.Tensor     # (L, D) step embedding (zeros (1, D) when unused)


def layer_norm(x, w, b, D):
    """Row-wise LayerNorm of a (rows, D) fp32 tile with (D,) weight and bias tiles. The mean
    multiplies by 1/D (exact for a power of two) where an IEEE division is a check, a reciprocal,
    refinements and a slow-path call; the variance keeps its division, whose (rows, 1) tile is
    cheap: written as a multiply it cost the persistent kernel 140 more spill stores (sm_90 SASS)."""
    mean = ct.sum(x, axis=1, keepdims=True) * (1.0 / D)
    xc = x - mean
    var = ct.sum(xc * xc, axis=1, keepdims=True) / D
    return xc * ct.rsqrt(var + 1e-5) * w[None, :] + b[None, :]


def gelu_tanh(x):
    half = 0.5 * x
    u = x * (0.7978845608028654 + 0.0356774081363001 * (x * x))     # sqrt(2/pi) (x + 0.044715 x^3)
    return half + half * ct.tanh(u, rounding_mode=ct.RoundingMode.APPROX)


def load_vec(a, n):
    return ct.astype(ct.load(a, index=(0,), shape=(n,), padding_mode=ct.PaddingMode.ZERO), ct.float32)


def mlp_residual(a2, h1, W1, B1, W2, B2, n_chunks, R, D, CH):
    """h1 + b2 + sum over chunks c of gelu(a2 W_1,c^T + b_1,c) W_2,c^T for (R, D) rows: the MLP's
    4D hidden columns CH at a time, each chunk accumulated onto the residual inside its matrix
    product (products in the weights' dtype, fp32 accumulation)."""
    new = h1 + load_vec(B2, D)[None, :]
    for c in range(n_chunks):
        w1 = ct.load(W1, index=(c, 0), shape=(CH, D))
        b1 = ct.astype(ct.load(B1, index=(c,), shape=(CH,)), ct.float32)
        z = gelu_tanh(ct.mma(a2, ct.transpose(w1), ct.full((R, CH), 0.0, dtype=ct.float32)) + b1[None, :])
        w2 = ct.load(W2, index=(0, c), shape=(D, CH))
        new = ct.mma(ct.astype(z, W2.dtype), ct.transpose(w2), new)
    return new


def head_logits(x, LNFW, LNFB, WTE, R, D, VP):
    """(R, VP) fp32 logits of (R, D) states: the final LayerNorm, then the tied head (its V rows
    zero-padded to VP; the padded columns are masked where they are read)."""
    f = ct.astype(layer_norm(x, load_vec(LNFW, D), load_vec(LNFB, D), D), WTE.dtype)
    wte = ct.load(WTE, index=(0, 0), shape=(VP, D), padding_mode=ct.PaddingMode.ZERO)
    return ct.mma(f, ct.transpose(wte), ct.full((R, VP), 0.0, dtype=ct.float32))


def halt_step(new, old, logits, active, steps, thr, loop, min_loops, V, log_v, VP):
    """One loop's halting for a tile of rows -> (state, active, steps): tokens still active take
    the new state and count the loop; from min_loops on, a token halts once the entropy of its
    (rows, VP) logits (padded vocab columns masked) is below its threshold. The state is chosen
    before the entropy is computed, so `new` and `old` die first: in the persistent kernel that
    order measured 1% faster at 1024 x 12 digits with halting (H200)."""
    h = ct.where(active[:, None], new, old)
    ent = ct.reshape(row_entropy(logits, V, log_v, VP), active.shape)
    steps = steps + ct.where(active, 1, 0)
    if loop + 1 >= min_loops:
        active = active & ~(ent < thr)
    return h, active, steps


@tile_kernel(num_worker_warps=WORKER_WARPS)
def looped_block_kernel(X0, MASK, REAL, THR, LN1W, LN1B, WQKV, WPROJ, LN2W, LN2B, W1, B1, W2, B2,
                        LNFW, LNFB, WTE, STEP, LOGITS, STEPS, scale: float, log_v: float,
                        loops: int, min_loops: int, n_head: int, n_chunks: int, reinject: bool, step_emb: bool,
                        R: ConstInt, D: ConstInt, HD: ConstInt, VP: ConstInt, V: ConstInt, MASK_PER_HEAD: ConstInt,
                        CH: ConstInt, HALTING: ConstBool):
    """grid (G,): one group of R packed rows (several whole sequences) per block, all loops.

    MASK (G, 1 or H, R, R) is the additive attention mask of the group: the relative bias where
    a key is visible, -inf where not (other sequence, future, outside the window, empty row);
    `packed_mask_kernel` builds it once per forward, in fp16: every loop reads all of it, and
    against fp32 the forward took 8-11% less time (H200, 8 to 32 digits; the bias keeps 11
    significant bits, finer than the bf16 scores it is added to). REAL marks real tokens.
    Loop counts (loops, heads, MLP chunks) are run-time values: the bodies compile once instead
    of being unrolled (small binary, fast compile), and test-time loop counts need no
    recompilation. Re-injection and the step embedding are run-time flags too (uniform branches:
    a quarter of the compiled variants, and for sm_90 fewer spills than as constants, 79 spill
    stores against 119 without halting: AOT SASS at T = 39); halting stays a constant, its
    branch holds the head and entropy tiles."""
    g = ct.bid(0)
    MT = WQKV.dtype                                   # matrix products in the weights' dtype
    # Registers are the budget (the compiler gives 384 threads 168 registers each; a (64, 128)
    # fp32 tile takes 32 of them per consumer thread): only the state h stays resident across
    # loops. x0 is re-read every loop (an L2 hit), the attention mask comes precomputed, and the
    # attention and MLP outputs accumulate onto the residual inside the matrix products.
    real = ct.reshape(ct.load(REAL, index=(g, 0), shape=(1, R)), (R,)) > 0
    thr = ct.reshape(ct.load(THR, index=(g, 0), shape=(1, R)), (R,))
    if reinject:
        h = ct.full((R, D), 0.0, dtype=ct.float32)
    else:
        h = ct.reshape(ct.load(X0, index=(g, 0, 0), shape=(1, R, D)), (R, D))
    active = real
    steps = ct.full((R,), 0, dtype=ct.int32)
    for loop in range(loops):
        if reinject:
            inp = h + ct.reshape(ct.load(X0, index=(g, 0, 0), shape=(1, R, D)), (R, D))
        else:
            inp = h
        if step_emb:   # loops past the table's rows reuse its last row (as the model does)
            row = min(loop, STEP.shape[0] - 1)
            inp = inp + ct.astype(ct.reshape(ct.load(STEP, index=(row, 0), shape=(1, D)), (D,)), ct.float32)[None, :]
        a = ct.astype(layer_norm(inp, load_vec(LN1W, D), load_vec(LN1B, D), D), MT)
        h1 = inp                                      # h1 = inp + sum over heads of y_h W_o,h^T
        for hh in range(n_head):
            wq = ct.load(WQKV, index=(hh, 0), shape=(HD, D))
            wk = ct.load(WQKV, index=(n_head + hh, 0), shape=(HD, D))
            wv = ct.load(WQKV, index=(2 * n_head + hh, 0), shape=(HD, D))
            q = ct.mma(a, ct.transpose(wq), ct.full((R, HD), 0.0, dtype=ct.float32))
            k = ct.mma(a, ct.transpose(wk), ct.full((R, HD), 0.0, dtype=ct.float32))
            v = ct.mma(a, ct.transpose(wv), ct.full((R, HD), 0.0, dtype=ct.float32))
            s = ct.mma(ct.astype(q, MT), ct.transpose(ct.astype(k, MT)),
                       ct.full((R, R), 0.0, dtype=ct.float32)) * scale
            mask = ct.load(MASK, index=(g, hh * MASK_PER_HEAD, 0, 0), shape=(1, 1, R, R))
            s = s + ct.astype(ct.reshape(mask, (R, R)), ct.float32)   # bias, -inf where not visible
            m = ct.max(s, axis=1, keepdims=True)                      # finite: the diagonal is allowed
            p = ct.exp2((s - m) * LOG2E, flush_to_zero=True)            # one FMUL + MUFU.EX2 a score
            # normalise the (R, HD) output rather than the (R, R) probabilities
            y = ct.mma(ct.astype(p, MT), ct.astype(v, MT), ct.full((R, HD), 0.0, dtype=ct.float32))
            y = y * reciprocal(ct.sum(p, axis=1, keepdims=True))
            wo = ct.load(WPROJ, index=(0, hh), shape=(D, HD))
            h1 = ct.mma(ct.astype(y, MT), ct.transpose(wo), h1)
        a2 = ct.astype(layer_norm(h1, load_vec(LN2W, D), load_vec(LN2B, D), D), MT)
        new = mlp_residual(a2, h1, W1, B1, W2, B2, n_chunks, R, D, CH)
        if HALTING:
            h, active, steps = halt_step(new, h, head_logits(new, LNFW, LNFB, WTE, R, D, VP), active, steps, thr,
                                         loop, min_loops, V, log_v, VP)
        else:
            h = new
            steps = steps + ct.where(real, 1, 0)
    logits = head_logits(h, LNFW, LNFB, WTE, R, D, VP)
    ct.store(LOGITS, index=(g, 0, 0), tile=ct.reshape(logits, (1, R, VP)))
    ct.store(STEPS, index=(g, 0), tile=ct.reshape(steps, (1, R)))


def tiles_for(B: int, T: int, D: int, H: int, V: int) -> dict[str, int]:
    """R rows per block hold floor(R / T) whole sequences (3 of 20 tokens in 64); the MLP's 4D
    hidden columns go CHUNK at a time."""
    return {"R": rows_for(T), "D": D, "HD": D // H, "VP": max(16, next_pow2(V)), "CHUNK": min(CHUNK, 4 * D)}


def rows_for(T: int) -> int:
    """ROWS, or MAX_ROWS if whole T-token sequences fill a larger share of it."""
    fill = lambda R: (R // T) * T / R  # noqa: E731
    return MAX_ROWS if fill(MAX_ROWS) > fill(ROWS) else ROWS


def supported(B: int, T: int, D: int, H: int, V: int) -> bool:
    """The shapes one block can hold: declared in the spec (kernel looped_block, limits)."""
    hd = D // H
    return T <= MAX_T and D <= MAX_D and D == next_pow2(D) and hd == next_pow2(hd) and hd >= 16


def to_groups(a: torch.Tensor, S: int, G: int, R: int, fill) -> torch.Tensor:
    """(B, T, ...) -> (G, R, ...) contiguous, empty rows `fill`. Group g's row r holds token
    r % T of sequence g * S + r // T (S = R // T whole sequences per group; the rest is empty).
    Views and copies only, no index tensors and no host sync (CUDA graphs can capture it)."""
    B, T = a.shape[:2]
    out = a.new_full((G, R, *a.shape[2:]), fill)
    full = B // S                       # groups whose S slots are all taken (no padded copy of `a`)
    out[:full, :S * T].unflatten(1, (S, T)).copy_(a[:full * S].view(full, S, *a.shape[1:]))
    if B > full * S:                    # the last group's first B - full * S slots
        out[full, :(B - full * S) * T].copy_(a[full * S:].flatten(0, 1))
    return out


def from_groups(x: torch.Tensor, B: int, T: int, S: int) -> torch.Tensor:
    """(G, R, ...) -> the (B, T, ...) view of its real rows (inverse of `to_groups`)."""
    return x[:, :S * T].unflatten(1, (S, T)).flatten(0, 1)[:B]


def looped_block_cutile(x0, sig, plen, real, thr, w: Weights, *, loops: int, halting: bool, min_loops: int = 1,
                        window=None, clip: int = 3, use_bias: bool = False, prefix: bool = False,
                        reinject: bool = True, step_emb: bool = False, out=None, rows: int | None = None,
                        chunk: int | None = None):
    """Host wrapper (same signature as the reference); emulated when the tensors are on the CPU.
    Packs whole sequences into groups of R rows, launches one block per group, unpacks.
    `out=(logits, steps)` lets a test pass NaN-poisoned buffers; `rows` overrides R and `chunk`
    the MLP's hidden columns per step (tuning sweeps)."""
    B, T, D = x0.shape
    V, H = w.wte.shape[0], w.bias.shape[0]
    if not supported(B, T, D, H, V):
        raise ValueError(f"looped_block supports T <= {MAX_T} and power-of-two D <= {MAX_D}; got T={T}, D={D}")
    t = tiles_for(B, T, D, H, V)
    R, chunk = rows or t["R"], chunk or t["CHUNK"]
    S = max(1, R // T)                   # whole sequences per group
    G = -(-B // S)
    grp = lambda a, fill: to_groups(a, S, G, R, fill)  # noqa: E731
    pos = torch.arange(T, device=x0.device, dtype=torch.int32).expand(B, T)
    seq = torch.arange(B, device=x0.device, dtype=torch.int32)[:, None].expand(B, T) % S   # slot within its group
    mask = packed_mask.packed_mask_cutile(grp(sig.int(), -1), grp(pos, 0), grp(seq, -1), grp(plen.int()[:, None].expand(B, T), 0),
                                          w.bias if use_bias else None, window=window, clip=clip, prefix=prefix,
                                          dtype=torch.float16)
    logits = torch.empty(G, R, t["VP"], device=x0.device, dtype=torch.float32)
    steps = torch.empty(G, R, device=x0.device, dtype=torch.int32)
    looped_block_kernel.launch((G,), (
        grp(x0.float(), 0.0), mask, grp(real.int(), 0), grp(thr.float(), 0.0),
        *(x.contiguous() for x in w[:13]), w.step.contiguous(), logits, steps,
        1.0 / math.sqrt(D // H), math.log(V), loops, min_loops, H, w.w1.shape[0] // chunk, reinject, step_emb,
        R, D, D // H, t["VP"], V, int(mask.shape[1] > 1), chunk, halting))
    out_logits, out_steps = out if out is not None else (torch.empty(B, T, V, device=x0.device),
                                                         torch.empty(B, T, device=x0.device, dtype=torch.int32))
    out_logits.copy_(from_groups(logits, B, T, S)[..., :V])
    out_steps.copy_(from_groups(steps, B, T, S))
    return out_logits, out_steps


def looped_block_reference(x0, sig, plen, real, thr, w: Weights, *, loops: int, halting: bool, min_loops: int = 1,
                           window=None, clip: int = 3, use_bias: bool = False, prefix: bool = False,
                           reinject: bool = True, step_emb: bool = False, out=None):
    """The same computation with whole-tensor PyTorch ops: matrix products in the matrices' dtype,
    everything else in the layer norms' dtype (fp32; fp64 makes it the oracle)."""
    B, T, D = x0.shape
    acc = w.ln1_w.dtype
    H = w.bias.shape[0]
    allowed = attention_mask(sig.long(), plen.long(), window, prefix)
    mask = torch.zeros(B, H, T, T, device=x0.device, dtype=acc)
    if use_bias:
        mask = bias_matrix(w.bias.to(acc), bias_bucket(sig.long(), clip))
    mask = mask.masked_fill(~allowed, -INF)
    mm = lambda x, m: (x.to(m.dtype) @ m.T).to(acc)  # noqa: E731  e.g. bf16 products, fp32 results
    x0 = x0.to(acc)
    h = torch.zeros_like(x0) if reinject else x0
    active = real.clone()
    steps = torch.zeros(B, T, dtype=torch.int32, device=x0.device)
    for loop in range(loops):
        inp = h + x0 if reinject else h
        if step_emb:
            inp = inp + w.step[min(loop, w.step.shape[0] - 1)].to(acc)
        a = F.layer_norm(inp, (D,), w.ln1_w, w.ln1_b)
        q, k, v = (mm(a, part).view(B, T, H, D // H).transpose(1, 2) for part in w.qkv.split(D))
        s = (q.to(w.qkv.dtype) @ k.to(w.qkv.dtype).transpose(-1, -2)).to(acc) / math.sqrt(D // H)
        p = (s + mask).softmax(dim=-1)
        y = (p.to(w.qkv.dtype) @ v.to(w.qkv.dtype)).to(acc).transpose(1, 2).reshape(B, T, D)
        h1 = inp + mm(y, w.proj)
        a2 = F.layer_norm(h1, (D,), w.ln2_w, w.ln2_b)
        new = h1 + mm(F.gelu(mm(a2, w.w1) + w.b1, approximate="tanh"), w.w2) + w.b2
        if halting:
            ent = entropy_reference(mm(F.layer_norm(new, (D,), w.lnf_w, w.lnf_b), w.wte).reshape(B * T, -1)).view(B, T)
            h = torch.where(active[..., None], new, h)
            steps = steps + active.int()
            if loop + 1 >= min_loops:
                active = active & ~(ent < thr)
        else:
            h, steps = new, steps + real.int()
    return mm(F.layer_norm(h, (D,), w.lnf_w, w.lnf_b), w.wte), steps


def aot_signatures(B: int, T: int, D: int, H: int, V: int):
    from .tile import array, scalar
    t = tiles_for(B, T, D, H, V)
    f32, bf, i32, b8 = torch.float32, torch.bfloat16, torch.int32, torch.bool
    out = []
    for halting in (False, True):
        out.append((looped_block_kernel, [
            array(f32, 3), array(torch.float16, 4), array(i32, 2), array(f32, 2),
            array(f32, 1), array(f32, 1), array(bf, 2), array(bf, 2), array(f32, 1), array(f32, 1),
            array(bf, 2), array(f32, 1), array(bf, 2), array(f32, 1), array(f32, 1), array(f32, 1),
            array(bf, 2), array(bf, 2), array(f32, 3), array(i32, 2),
            scalar(f32), scalar(f32), scalar(i32), scalar(i32), scalar(i32), scalar(i32), scalar(b8), scalar(b8),
            t["R"], D, D // H, t["VP"], V, 1, t["CHUNK"], halting]))
    return out
