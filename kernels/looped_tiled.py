"""Tiled looped block for long sequences: one launch per loop, each block a tile of query rows,
attention only over the key tiles its mask can reach.

    looped_tiled(x0, sig, plen, real, thr, w, *, loops, ...) -> (logits, steps)

Same arguments, results and reference as the persistent `looped_block` (whose one-block-per-
group design holds at most 128 tokens): x0 (B, T, D) fp32, sig (B, T) int32, plen (B,) int32,
real (B, T) bool, thr (B, T) fp32, w the shared block's `Weights`; logits (B, T, V) fp32 and
steps (B, T) int32 (the last launch writes the logits into their buffer directly).

A loop needs every token's keys and values of that loop before any query can attend, so loops
are launches: the state h (B, T, D) fp32 lives in memory between them. Launch `loop` reads
K, V (B, H, T, HD) of its input state, runs attention + projection + MLP (+ halting) for its TM
query rows, writes their new state and, unless it is the last loop, the keys and values of the
next loop's input for the same rows into the other K, V buffer (ping-pong: other blocks of
this launch still read the current one). The last launch writes the logits. L + 1 launches.
Within a launch the heads are unrolled: queries, keys and values come from one (TM, D) x (D, D)
product each, and each listed key tile is loaded once for all heads with its mask built once
(`attention.key_tile_step_heads`).

Which key tiles a query tile needs is decided once per forward, by one small launch
(`key_tiles.key_tiles`), from each key tile's summary (positions, significance range, non-digit
keys) against each query row: a superset of the tiles holding a visible key, compacted into a
list per query tile. The loop launches run the query tiles with the longest lists first. With
the windowed significance bias a query tile of a 1000-digit problem reaches ~8 of 47 key tiles;
the kernel masks every element exactly, so the list only has to miss nothing.
"""
import math

import torch

from .attention import LOG2E, bias_values, key_tile_step_heads, reciprocal
from .key_tiles import key_tiles, key_tiles_kernel
from .looped_block import (Weights, halt_step, head_logits, layer_norm, load_vec, looped_block_reference,
                           mlp_residual)
from .tile import ct, next_pow2, tile_kernel

ConstInt = ct.Constant[int]
ConstBool = ct.Constant[bool]
INF = math.inf
TILE = 64          # query rows per tile (fewer where T is shorter)
KEY_TILE = 64      # key rows per step (32 halves the score tiles but doubles the steps: slower on the H200)
MAX_D = 128        # one (TM, D) state tile per block, as the persistent kernel
MIN_D = 64         # below it tileiras 13.4's code for the halting body fails on the H200 (see `supported`)
CHUNK = 128        # MLP hidden columns per step
MAX_V = 128        # the head's (VP, D) weight tile stays small
SCORES = {"matrix": None, "tf32": torch.float32, "fp16": torch.float16}   # score operands -> key buffers' dtype

# The reference is the persistent kernel's: both compute all loops of the same block.
looped_tiled_reference = looped_block_reference


def load_rows(A, b, bm, TM, D):
    """(TM, D) fp32 rows of tile bm of sequence b from a (B, T, D) array (zeros past T)."""
    return ct.reshape(ct.load(A, index=(b, bm, 0), shape=(1, TM, D), padding_mode=ct.PaddingMode.ZERO), (TM, D))


def block_input(h, X0, STEP, b, bm, loop, TM, D, REINJECT, STEP_EMB):
    """(TM, D) fp32 input of loop `loop` from the state tile h: h (+ x0) (+ step embedding)."""
    inp = h
    if REINJECT:
        inp = inp + load_rows(X0, b, bm, TM, D)
    if STEP_EMB:   # loops past the table's rows reuse its last row (as the model does)
        row = min(loop, STEP.shape[0] - 1)
        inp = inp + ct.astype(ct.reshape(ct.load(STEP, index=(row, 0), shape=(1, D)), (D,)), ct.float32)[None, :]
    return inp


def store_qkv(a, WQKV, Q, K, V, b, bm, TM, HD, D):
    """Queries, keys and values of the (TM, D) normed input `a`: one product per matrix for all
    heads; the queries into Q (B, T, D) as they are (only this tile's block reads them, in the
    next launch), keys and values split into heads on the way out into K, V (B, H, T, HD)."""
    H = D // HD
    wq = ct.load(WQKV, index=(0, 0), shape=(D, D))            # rows 0..D-1: the query heads
    q = ct.astype(ct.mma(a, ct.transpose(wq), ct.full((TM, D), 0.0, dtype=ct.float32)), Q.dtype)
    ct.store(Q, index=(b, bm, 0), tile=ct.reshape(q, (1, TM, D)))
    wk = ct.load(WQKV, index=(1, 0), shape=(D, D))            # rows D..2D-1: the key heads
    wv = ct.load(WQKV, index=(2, 0), shape=(D, D))            # rows 2D..3D-1: the value heads
    k = ct.astype(ct.mma(a, ct.transpose(wk), ct.full((TM, D), 0.0, dtype=ct.float32)), K.dtype)
    v = ct.astype(ct.mma(a, ct.transpose(wv), ct.full((TM, D), 0.0, dtype=ct.float32)), V.dtype)
    # (TM, D) -> (1, H, TM, HD): head hh's columns hh*HD.. become K[b, hh]
    ct.store(K, index=(b, 0, bm, 0), tile=ct.reshape(ct.permute(ct.reshape(k, (TM, H, HD)), (1, 0, 2)), (1, H, TM, HD)))
    ct.store(V, index=(b, 0, bm, 0), tile=ct.reshape(ct.permute(ct.reshape(v, (TM, H, HD)), (1, 0, 2)), (1, H, TM, HD)))


@tile_kernel()
def first_qkv_kernel(H_, X0, STEP, LN1W, LN1B, WQKV, Q, K, V, reinject: bool, step_emb: bool,
                     TM: ConstInt, D: ConstInt, HD: ConstInt):
    """grid (cdiv(T, TM), B): queries, keys and values of loop 0's input."""
    bm, b = ct.bid(0), ct.bid(1)
    inp = block_input(load_rows(H_, b, bm, TM, D), X0, STEP, b, bm, 0, TM, D, reinject, step_emb)
    a = ct.astype(layer_norm(inp, load_vec(LN1W, D), load_vec(LN1B, D), D), WQKV.dtype)
    store_qkv(a, WQKV, Q, K, V, b, bm, TM, HD, D)


# One warpgroup (4 worker warps), two blocks an SM. With 8 warps every (64, N) product is split
# by columns between two warpgroups, so each softmax row reduction and each P tile went through
# shared memory with a block barrier (42 BAR.SYNC a key tile in the sm_90 SASS, 10 with one
# warpgroup at occupancy 2, for 93 spilled registers); with one block an SM nothing hides a
# stall. The loop input (64, 128) fp32 is read again after the key loop instead of kept live
# across it (64 registers a thread at 4 warps):
# that is what lets two blocks share an SM. H200, 64 x 100 digits, L = 12, bf16 scores, kernels
# only, graphed, side by side: 8 warps 1.49 ms, 4 warps + re-read 1.31, + occupancy 2 1.11
# (8 x 1000 digits: 2.84 -> 2.15 with 4 warps + re-read).
# A launch's queries are made by the launch before, with the keys and values of the same normed
# rows (`store_qkv`): the key loop then starts on one (TM, D) load instead of the state, x0, a
# layer norm and a product. By hand (session 36, fp16 scores, kernels only, graphed, side by
# side): 64 x 100 digits 1.19 -> 1.08 ms, with halting 0.97 -> 0.88; 8 x 1000 1.47 -> 1.36, with
# halting 1.08 -> 1.00; the same outputs bit for bit.
LOOP_WARPS, LOOP_OCCUPANCY = 4, 2


@tile_kernel(num_worker_warps=LOOP_WARPS, occupancy=LOOP_OCCUPANCY)
def loop_tile_kernel(H_, X0, STEP, SIG, PLEN, THR, ACTIVE, STEPS, COUNT, LIST, WORK, Q, K, V, K_NEXT, V_NEXT,
                     LN1W, LN1B, WQKV, WPROJ, LN2W, LN2B, W1, B1, W2, B2, LNFW, LNFB, WTE, BIAS, LOGITS,
                     scale: float, log_v: float, loop: int, min_loops: int, n_chunks: int,
                     last: bool, reinject: bool, step_emb: bool, halting: ConstBool,
                     TM: ConstInt, TN: ConstInt, D: ConstInt, HD: ConstInt, VP: ConstInt, V_: ConstInt,
                     CH: ConstInt, CLIP: ConstInt, WINDOW: ConstInt, USE_BIAS: ConstBool, PREFIX: ConstBool,
                     SCORES_TF32: ConstBool):
    """grid (B * nQ,): loop `loop` of the block for one query tile bm of one sequence b, the
    block's WORK entry b * nQ + bm. WORK lists the tiles by key-tile count, largest first:
    blocks start in grid order, so the longest run first and the short ones fill the last wave
    (at 64 x 100 digits, 320 blocks are 1.2 waves of the H200's 132 SMs at two blocks an SM, and
    the last query tile of a row does five key tiles where the first does one).

    COUNT (B, nQ) and LIST (B, nQ, nK) name the key tiles this query tile may see (`key_tiles`).
    ACTIVE, STEPS (B, T) int32 carry halting across launches (with halting off neither is read).
    Re-injection and the step embedding are run-time values (uniform branches; one compiled
    variant serves them all, and its binary is smaller). Halting is a compile-time constant:
    without it the body has no halting code and no tile skip (sm_90: 7,752 SASS instructions and
    84 spill stores against 9,440 and 81 with; by hand, the run-time flag cost the non-halting
    path 1-3%). The attention options stay compile-time constants: as run-time values tileiras
    13.4 crashes on this body (exit -11)."""
    work = ct.load(WORK, index=(ct.bid(0),), shape=())
    b, bm = work // COUNT.shape[1], work % COUNT.shape[1]
    # A tile whose tokens have all halted keeps its state: no attention, MLP or halting for it, only
    # the next loop's keys and values (or the logits) of its frozen rows, which the other tiles read.
    # Without halting every tile runs (ACTIVE is not read). (At 64 x 100 digits, threshold 0.05, one
    # tile a row halts after 1-2 loops by the reference: 256 live tiles of 320, one wave of two
    # blocks an SM on an H200, where 320 take two.)
    T, MT = H_.shape[1], WQKV.dtype
    live = True
    if halting:
        live = ct.sum(ct.load(ACTIVE, index=(b, bm), shape=(1, TM), padding_mode=ct.PaddingMode.ZERO)) > 0
    if live:
        q_pos = bm * TM + ct.arange(TM, dtype=ct.int32)
        sig_q = ct.reshape(ct.load(SIG, index=(b, bm), shape=(1, TM), padding_mode=ct.PaddingMode.ZERO), (TM,))
        plen = ct.load(PLEN, index=(b,), shape=())
        n_keys = ct.load(COUNT, index=(b, bm), shape=())
        # every head's queries, made by the launch before (`store_qkv`) in the keys' dtype (fp32
        # for TF32 scores); per-head state as tuples (the heads are unrolled)
        q = ct.reshape(ct.load(Q, index=(b, bm, 0), shape=(1, TM, D), padding_mode=ct.PaddingMode.ZERO), (TM, D))
        if SCORES_TF32:
            q = ct.astype(q, ct.tfloat32)
        qs, ms, ls, accs, bvs = (), (), (), (), ()
        for hh in ct.static_iter(range(D // HD)):
            qs += (ct.extract(q, (0, hh), shape=(TM, HD)),)
            ms += (ct.full((TM, 1), -INF, dtype=ct.float32),)
            ls += (ct.full((TM, 1), 0.0, dtype=ct.float32),)
            accs += (ct.full((TM, HD), 0.0, dtype=ct.float32),)
            bvs += (bias_values(BIAS, hh, CLIP, USE_BIAS, LOG2E),)
        for i in range(n_keys):
            j = ct.load(LIST, index=(b, bm, i), shape=())
            ms, ls, accs = key_tile_step_heads(qs, K, V, SIG, bvs, b, j, q_pos, sig_q, plen, T, ms, ls, accs, scale,
                                               TM, TN, HD, CLIP, WINDOW, USE_BIAS, PREFIX, SCORES_TF32)
        wo = ct.load(WPROJ, index=(0, 0), shape=(D, D))
        old = load_rows(H_, b, bm, TM, D)                  # read again, not held across the key loop
        inp = block_input(old, X0, STEP, b, bm, loop, TM, D, reinject, step_emb)
        h1 = inp                                           # h1 = inp + sum over heads of y_h W_o,h^T
        for hh in ct.static_iter(range(D // HD)):
            y = accs[hh] * reciprocal(ct.maximum(ls[hh], 1e-30))
            h1 = ct.mma(ct.astype(y, MT), ct.transpose(ct.extract(wo, (0, hh), shape=(D, HD))), h1)
        a2 = ct.astype(layer_norm(h1, load_vec(LN2W, D), load_vec(LN2B, D), D), MT)
        new = mlp_residual(a2, h1, W1, B1, W2, B2, n_chunks, TM, D, CH)
        if halting:
            old = load_rows(H_, b, bm, TM, D)              # again: not held across the MLP either
            active = ct.reshape(ct.load(ACTIVE, index=(b, bm), shape=(1, TM), padding_mode=ct.PaddingMode.ZERO), (TM,)) > 0
            steps = ct.reshape(ct.load(STEPS, index=(b, bm), shape=(1, TM), padding_mode=ct.PaddingMode.ZERO), (TM,))
            thr = ct.reshape(ct.load(THR, index=(b, bm), shape=(1, TM), padding_mode=ct.PaddingMode.ZERO), (TM,))
            h, active, steps = halt_step(new, old, head_logits(new, LNFW, LNFB, WTE, TM, D, VP), active, steps, thr,
                                         loop, min_loops, V_, log_v, VP)
            ct.store(ACTIVE, index=(b, bm), tile=ct.reshape(ct.astype(ct.where(active, 1, 0), ct.int32), (1, TM)))
            ct.store(STEPS, index=(b, bm), tile=ct.reshape(ct.astype(steps, ct.int32), (1, TM)))
        else:
            h = new
        ct.store(H_, index=(b, bm, 0), tile=ct.reshape(h, (1, TM, D)))   # only this block reads these rows
    else:
        h = load_rows(H_, b, bm, TM, D)                   # frozen: every token of the tile has halted
    if last:
        logits = head_logits(h, LNFW, LNFB, WTE, TM, D, VP)
        ct.store(LOGITS, index=(b, bm, 0), tile=ct.reshape(logits, (1, TM, VP)))
    else:
        nxt = block_input(h, X0, STEP, b, bm, loop + 1, TM, D, reinject, step_emb)
        a_next = ct.astype(layer_norm(nxt, load_vec(LN1W, D), load_vec(LN1B, D), D), MT)
        store_qkv(a_next, WQKV, Q, K_NEXT, V_NEXT, b, bm, TM, HD, D)


def tiles_for(B: int, T: int, D: int, H: int, V: int) -> dict[str, int]:
    t = max(16, min(TILE, next_pow2(T)))
    return {"TM": t, "TN": min(t, KEY_TILE), "D": D, "HD": D // H, "VP": max(16, next_pow2(V)), "CHUNK": CHUNK}


def supported(B: int, T: int, D: int, H: int, V: int) -> bool:
    """Any T; a state row one tile holds, at least MIN_D wide; head sizes the tensor cores take.
    At D = 32 (the parity variant n_embd = 32, n_head = 2) tileiras 13.4 fails on the halting
    body's tile skip: with 128-column MLP chunks it exits with code 5; with 64-column chunks the
    kernel compiles but the launch never ended on the H200 (cold GPU run, session 37: the test
    sat in the parity check's sync for 170 s). Below MIN_D the model runs the reference path at
    T > 64, which the parity variant checks (no tiled launch there)."""
    hd = D // H
    return MIN_D <= D <= MAX_D and D == next_pow2(D) and hd == next_pow2(hd) and hd >= 16 and V <= MAX_V


def heaviest_first(count):
    """(B * nQ,) int32 b * nQ + bm of every query tile, by its key-tile count (B, nQ), largest
    first (ties in grid order): the loop kernel's block order. On the device, no host sync."""
    return torch.argsort(count.flatten(), descending=True, stable=True).to(torch.int32)


def _check(B: int, T: int, D: int, H: int, V: int, loops: int, scores: str) -> None:
    if not supported(B, T, D, H, V):
        raise ValueError(f"looped_tiled supports power-of-two {MIN_D} <= D <= {MAX_D} with power-of-two heads >= 16; got D={D}, H={H}")
    if scores not in SCORES:
        raise ValueError(f"scores must be one of {', '.join(SCORES)}; got {scores!r}")
    if loops < 1:
        raise ValueError(f"looped_tiled runs at least one loop; got loops={loops}")


def _halting_start(real, steps, loops: int, halting: bool):
    """ACTIVE (B, T) int32 at the first loop, and `steps` set: tokens start active where real;
    with halting they count from 0, without (the kernel then reads neither) every real token
    counts every loop."""
    if halting:
        steps.zero_()
    else:
        torch.mul(real, loops, out=steps)
    return real.int().contiguous()


def looped_tiled_cutile(x0, sig, plen, real, thr, w: Weights, *, loops: int, halting: bool, min_loops: int = 1,
                        window=None, clip: int = 3, use_bias: bool = False, prefix: bool = False,
                        reinject: bool = True, step_emb: bool = False, out=None, tile: int | None = None,
                        kernel=None, scores: str = "matrix"):
    """Host wrapper (same signature as the reference); emulated when the tensors are on the CPU.
    `scores`, the attention scores' operands (one of SCORES): "matrix", the matrices' dtype (bf16
    on the GPU); "tf32", TF32 queries and fp32 keys; "fp16", fp16 queries and keys. Where bf16
    scores tip a near-tie (one 1000-digit problem in 500 with the headline checkpoint, reproduced
    by the emulator), TF32 and fp16 ones keep the reference's answer: both carry 10 mantissa bits
    to bf16's 7, and fp16 keys cost what bf16 ones do (2 bytes, the same tensor-core rate) where
    fp32 keys double the key loads. fp16's range (65504) is far above what queries and keys of
    normed rows reach (|q|, |k| <= 2.5 in the headline model).
    `out=(logits, steps)` lets a test pass NaN-poisoned buffers; `tile` overrides TM (key tiles
    stay at most KEY_TILE rows) and `kernel` the loop kernel (a `variant` with other compile
    options: tuning sweeps)."""
    B, T, D = x0.shape
    V, H = w.wte.shape[0], w.bias.shape[0]
    _check(B, T, D, H, V, loops, scores)
    t = tiles_for(B, T, D, H, V)
    TM = tile or t["TM"]
    TN = min(TM, t["TN"])
    HD, VP, dev = D // H, t["VP"], x0.device
    sig32, plen32, thr32 = sig.int().contiguous(), plen.int().contiguous(), thr.float().contiguous()
    count, order = key_tiles(sig32, plen32, TM, TN, window=window, prefix=prefix)   # int32 already: no second cast
    work = heaviest_first(count)
    x0 = x0.float().contiguous()
    h = torch.zeros_like(x0) if reinject else x0.clone()
    kdt = SCORES[scores] or w.qkv.dtype                                # keys: K, K_NEXT (ping-pong)
    kv = [torch.empty(B, H, T, HD, device=dev, dtype=kdt if i % 2 == 0 else w.qkv.dtype) for i in range(4)]
    # the last launch writes the logits and (with halting) the steps straight into the outputs:
    # its (TM, VP) logit tiles lose their VP - V padded columns at the array's edge
    logits, steps = out if out is not None else (torch.empty(B, T, V, device=dev),
                                                 torch.empty(B, T, device=dev, dtype=torch.int32))
    active = _halting_start(real, steps, loops, halting)
    table = w.bias.float().contiguous()
    qbuf = torch.empty(B, T, D, device=dev, dtype=kdt)
    grid = (-(-T // TM), B)                                            # first_qkv_kernel's
    mats = [x.contiguous() for x in w[:13]]
    first_qkv_kernel.launch(grid, (h, x0, w.step.contiguous(), mats[0], mats[1], mats[2], qbuf, kv[0], kv[1],
                                  reinject, step_emb, TM, D, HD))
    for loop in range(loops):
        cur, nxt = kv[2 * (loop % 2): 2 * (loop % 2) + 2], kv[2 * (1 - loop % 2): 2 * (1 - loop % 2) + 2]
        (kernel or loop_tile_kernel).launch((work.shape[0],), (
            h, x0, w.step.contiguous(), sig32, plen32, thr32, active, steps, count, order, work, qbuf, *cur, *nxt,
            *mats, table, logits, 1.0 / math.sqrt(HD), math.log(V), loop, min_loops, w.w1.shape[0] // t["CHUNK"],
            loop == loops - 1, reinject, step_emb, halting, TM, TN, D, HD, VP, V, t["CHUNK"], clip,
            -1 if window is None else window, use_bias, prefix, scores == "tf32"))
    return logits, steps


def aot_signatures(B: int, T: int, D: int, H: int, V: int):
    """The two kernels at a declared shape (bf16 matrices) with the headline attention options
    (windowed significance bias) as they run by default (fp16 scores: fp16 query and key
    buffers) with halting, then the loop kernel with bf16 ("matrix") scores without halting (so
    both halting bodies compile), then the key-tile lists' kernel; re-injection and the step
    embedding are run-time. (The TF32 scores' variant is compiled by the GPU tests; another loop
    variant here would cost CI two more ~25 s compiles.)"""
    from .tile import array, scalar
    t = tiles_for(B, T, D, H, V)
    f32, bf, f16, i32, b8 = torch.float32, torch.bfloat16, torch.float16, torch.int32, torch.bool
    weights = [array(f32, 1), array(f32, 1), array(bf, 2), array(bf, 2), array(f32, 1), array(f32, 1),
               array(bf, 2), array(f32, 1), array(bf, 2), array(f32, 1), array(f32, 1), array(f32, 1), array(bf, 2)]
    first = [array(f32, 3), array(f32, 3), array(bf, 2), array(f32, 1), array(f32, 1), array(bf, 2),
             array(f16, 3), array(f16, 4), array(bf, 4), scalar(b8), scalar(b8), t["TM"], D, t["HD"]]

    def loop(key_dtype, halting: bool) -> list:
        kv = [array(key_dtype, 3), *[array(key_dtype, 4), array(bf, 4)] * 2]   # Q, K, V, K_NEXT, V_NEXT
        return [array(f32, 3), array(f32, 3), array(bf, 2), array(i32, 2), array(i32, 1), array(f32, 2), array(i32, 2),
                array(i32, 2), array(i32, 2), array(i32, 3), array(i32, 1), *kv, *weights, array(f32, 2), array(f32, 3),
                scalar(f32), scalar(f32), scalar(i32), scalar(i32), scalar(i32), *[scalar(b8)] * 3, halting,
                t["TM"], t["TN"], D, t["HD"], t["VP"], V, t["CHUNK"], 3, 1, True, False, False]
    nkp = next_pow2(-(-T // t["TN"]))
    lists = [array(i32, 2), array(i32, 1), array(i32, 2), array(i32, 3), scalar(i32), t["TM"], t["TN"], nkp, True, False]
    # a quick compile builds the first: the loop kernel as it runs by default
    return [(loop_tile_kernel, loop(f16, True)), (first_qkv_kernel, first), (loop_tile_kernel, loop(bf, False)),
            (key_tiles_kernel, lists)]
