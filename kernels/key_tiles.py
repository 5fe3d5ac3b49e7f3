"""Which key tiles each query tile of the tiled looped block may need: one small launch.

    key_tiles(sig, plen, TM, TN, *, window=None, prefix=False) -> (count, order)

    sig    (B, T)        int   digit significance (-1: not a digit)
    plen   (B,)          int   prompt lengths (the bidirectional prompt, with prefix)
    count  (B, nQ)       int32 how many key tiles query tile bm may see
    order  (B, nQ, nK)   int32 those tiles first, in tile order, then the others in tile order

nQ = cdiv(T, TM), nK = cdiv(T, TN). A tile is listed when it starts at or before the query tile's
last row (or both tiles reach into a bidirectional prompt), and, with a window, holds a non-digit
key or digits whose significance range comes within the window of one of the query tile's rows:
a superset of the tiles holding a visible key (the loop kernel masks every element exactly).

The kernel replaces ~25 small PyTorch launches per forward (pads, min/max reductions, compares,
a sort) with one, on every tiled forward; no host sync either way, so CUDA graphs capture both.
"""
import torch

from .tile import ct, next_pow2, tile_kernel

ConstInt = ct.Constant[int]
ConstBool = ct.Constant[bool]
BIG = 1 << 30
MAX_KEY_TILES = 256      # one block holds every key tile's significances: (NKP, TN) int32


@tile_kernel()
def key_tiles_kernel(SIG, PLEN, COUNT, ORDER, window: int, TM: ConstInt, TN: ConstInt, NKP: ConstInt,
                     WINDOWED: ConstBool, PREFIX: ConstBool):
    """grid (nQ, B): query tile bm of sequence b against every key tile j < NKP (those past nK
    are never listed and land past ORDER's end, where stores are dropped)."""
    bm, b = ct.bid(0), ct.bid(1)
    T = SIG.shape[1]
    jj = ct.arange(NKP, dtype=ct.int32)                                   # (NKP,) key tiles
    ok = (jj * TN <= min((bm + 1) * TM, T) - 1) & (jj * TN < T)           # causal, inside T
    if PREFIX:
        plen = ct.load(PLEN, index=(b,), shape=())
        ok = ok | ((jj * TN < plen) & (bm * TM < plen))
    if WINDOWED:
        ks = ct.reshape(ct.load(SIG, index=(b, 0), shape=(1, NKP * TN), padding_mode=ct.PaddingMode.ZERO), (NKP, TN))
        inside = ct.reshape(ct.arange(NKP * TN, dtype=ct.int32), (NKP, TN)) < T
        digit = (ks >= 0) & inside
        k_lo = -ct.max(ct.where(digit, -ks, -BIG), axis=1)               # (NKP,) the tile's digit range
        k_hi = ct.max(ct.where(digit, ks, -BIG), axis=1)
        other = ct.max(ct.where((ks < 0) & inside, 1, 0), axis=1) > 0     # a non-digit key: never windowed
        q = ct.reshape(ct.load(SIG, index=(b, bm), shape=(1, TM), padding_mode=ct.PaddingMode.ZERO), (TM,))
        q_in = bm * TM + ct.arange(TM, dtype=ct.int32) < T                # every row counts, -1 too
        near = ((k_lo[None, :] <= q[:, None] + window) & (k_hi[None, :] >= q[:, None] - window)
                & q_in[:, None])                                          # (TM, NKP) per query row
        ok = ok & ((ct.max(ct.where(near, 1, 0), axis=0) > 0) | other)
    listed = ct.where(ok, 1, 0)                                           # (NKP,)
    count = ct.sum(listed)
    # each tile's place: listed ones first, then the rest, each part in tile order (a stable
    # argsort of ~ok, as (NKP, NKP) counts of the tiles before it), then order[place] = tile
    before = jj[None, :] < jj[:, None]                                    # [j, j2]: j2 before j
    rank_in = ct.sum(ct.where(before, listed[None, :], 0), axis=1)
    rank_out = ct.sum(ct.where(before, 1 - listed[None, :], 0), axis=1)
    place = ct.where(ok, rank_in, count + rank_out)
    order = ct.sum(ct.where(place[None, :] == jj[:, None], jj[None, :], 0), axis=1)
    ct.store(COUNT, index=(b, bm), tile=ct.reshape(count, (1, 1)))
    ct.store(ORDER, index=(b, bm, 0), tile=ct.reshape(order, (1, 1, NKP)))


def key_tiles_reference(sig, plen, TM: int, TN: int, *, window=None, prefix: bool = False):
    """The same lists from per-key-tile summaries in PyTorch (B, T, nK work; no host sync)."""
    B, T = sig.shape
    nQ, nK = -(-T // TM), -(-T // TN)
    dev, big = sig.device, BIG
    sig = sig.long()
    q_last = torch.clamp((torch.arange(nQ, device=dev) + 1) * TM, max=T) - 1          # (nQ,)
    k_first = torch.arange(nK, device=dev) * TN                                        # (nK,)
    ok = (k_first[None, :] <= q_last[:, None]).expand(B, nQ, nK)
    if prefix:
        q_first = torch.arange(nQ, device=dev) * TM
        p = plen.long()[:, None, None]
        ok = ok | ((q_first[None, :, None] < p) & (k_first[None, None, :] < p))
    if window is not None:
        ks = torch.nn.functional.pad(sig, (0, nK * TN - T), value=-1).view(B, nK, TN)
        digit = ks >= 0
        k_lo = torch.where(digit, ks, big).amin(-1)
        k_hi = torch.where(digit, ks, -big).amax(-1)
        inside = (torch.arange(nK * TN, device=dev) < T).view(nK, TN)
        other = ((ks < 0) & inside).any(-1)                           # a non-digit key: never windowed
        # per query row (B, T, nK), then any over the tile's rows: a tile's significance range
        # spans two numbers where it holds a '+' or '=' (every digit of a 1000-digit addend),
        # a row's never does (8.9 -> 8.0 key tiles a query tile at 8 x 1000 digits, the exact count)
        q = sig[:, :, None]                                           # every row counts, -1 too
        near = (k_lo[:, None, :] <= q + window) & (k_hi[:, None, :] >= q - window)
        near = torch.nn.functional.pad(near, (0, 0, 0, nQ * TM - T)).view(B, nQ, TM, nK).any(2)
        ok = ok & (near | other[:, None, :])
    count = ok.sum(-1, dtype=torch.int32)
    order = torch.argsort((~ok).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return count.contiguous(), order.contiguous()


def key_tiles(sig, plen, TM: int, TN: int, *, window=None, prefix: bool = False):
    """Host wrapper (the reference's signature): the kernel on CUDA tensors, emulated on CPU
    ones; the reference where a sequence has more than MAX_KEY_TILES key tiles (same lists)."""
    B, T = sig.shape
    nQ, nK = -(-T // TM), -(-T // TN)
    NKP = next_pow2(nK)
    if NKP > MAX_KEY_TILES:
        return key_tiles_reference(sig, plen, TM, TN, window=window, prefix=prefix)
    count = torch.empty(B, nQ, device=sig.device, dtype=torch.int32)
    order = torch.empty(B, nQ, nK, device=sig.device, dtype=torch.int32)
    key_tiles_kernel.launch((nQ, B), (sig.int().contiguous(), plen.int().contiguous(), count, order,
                                      0 if window is None else int(window), TM, TN, NKP, window is not None, prefix))
    return count, order
