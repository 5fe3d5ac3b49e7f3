"""The attention mask of packed groups: each group holds several whole sequences in R token
rows (the persistent looped block's layout, kernels/looped_block.py), and a row may attend only
to keys of its own sequence that the position scheme lets it see, plus itself.

    packed_mask(sig, pos, seq, plen, bias, *, window, clip, prefix) -> mask

    sig, pos, seq, plen  (G, R) int   digit significance (-1: not a digit), position in its
                                      sequence, sequence slot (-1: an empty row), prompt length
    bias                 (H, 2*clip+2) fp32 relative bias table, or None
    mask                 (G, H or 1, R, R) fp32 (or `dtype`): the bias where a key is visible,
                                      -inf elsewhere

Built once per forward and read by every loop of the block.
"""
import math

import torch

from .attention import attention_mask, bias_bucket, bias_matrix, bias_values, masked_biased, position_ok
from .tile import ct, next_pow2, tile_kernel

ConstInt = ct.Constant[int]
ConstBool = ct.Constant[bool]
INF = math.inf


def packed_attention_mask(sig, pos, seq, plen, bias=None, *, window=None, clip: int = 3,
                          prefix: bool = False) -> torch.Tensor:
    """The additive attention mask of packed groups (the reference of `packed_mask_kernel`, which
    builds it on the GPU): (G, R) significance, position, sequence slot
    (-1: empty row) and prompt length per row -> (G, H or 1, R, R) fp32: the relative bias where
    a key is visible, -inf where it is not: `attention.attention_mask` at the rows' positions and
    `attention.bias_matrix`, plus: rows see only their own sequence, and every row sees itself so
    that no softmax row is empty."""
    ok = attention_mask(sig, plen, window, prefix, pos=pos)[:, 0]
    ok = ok & (seq[:, :, None] == seq[:, None, :]) & (seq[:, None, :] >= 0)
    ok = ok | torch.eye(pos.shape[1], dtype=torch.bool, device=pos.device)
    add = torch.zeros(ok.shape, device=pos.device)[:, None] if bias is None else bias_matrix(bias.float(), bias_bucket(sig, clip))
    return add.masked_fill(~ok[:, None], -INF).contiguous()


MASK_ROWS = 32   # query rows per block of the mask kernel: a (32, 128) fp32 tile, no spills
MIN_ROWS = 16    # the smallest group a tile of query rows spans


def tiles_for(G: int, R: int, H: int) -> dict[str, int]:
    """Every row of a group is a key (an (R,) tile); query rows go TQ at a time."""
    return {"R": R, "TQ": min(MASK_ROWS, R)}


def supported(G: int, R: int, H: int = 1) -> bool:
    """Rows per group: a power of two (a tile dimension), at least MIN_ROWS."""
    return R >= MIN_ROWS and R == next_pow2(R)


def aot_signatures(G: int, R: int, H: int):
    """The headline windowed bias (window 1, clip 3, per-head table) with and without a
    bidirectional prompt, into the fp16 mask the persistent kernel reads."""
    from .tile import array
    t = tiles_for(G, R, H)
    i32, f32 = torch.int32, torch.float32
    return [(packed_mask_kernel, [*[array(i32, 2)] * 4, array(f32, 2), array(torch.float16, 4), 3, 1, True, prefix,
                                  t["R"], t["TQ"]]) for prefix in (False, True)]


def group_rows(A, g, i, n):
    """Rows i*n .. i*n+n-1 of group g of a (G, R) array, as an (n,) tile."""
    return ct.reshape(ct.load(A, index=(g, i), shape=(1, n)), (n,))


@tile_kernel()
def packed_mask_kernel(SIG, POS, SEQ, PLEN, BIAS, MASK, CLIP: ConstInt, WINDOW: ConstInt, USE_BIAS: ConstBool,
                       PREFIX: ConstBool, R: ConstInt, TQ: ConstInt):
    """grid (G, H or 1, R // TQ): MASK[g, h] rows qi*TQ.. (TQ, R) in MASK's dtype, the rule of
    `packed_attention_mask` from the rows' (G, R) int32 significance, position, sequence slot
    and prompt length. Why a kernel: built with whole-tensor ops (a permuted gather, a masked
    fill, a copy to make it contiguous) the (G, H, R, R) mask took ~0.7 ms, a third of the
    graphed forward at 1024 x 12 digits (H100, python -m bench.forward_profile)."""
    g, h, qi = ct.bid(0), ct.bid(1), ct.bid(2)
    q_sig, q_pos, q_seq, q_plen = (group_rows(SIG, g, qi, TQ), group_rows(POS, g, qi, TQ), group_rows(SEQ, g, qi, TQ),
                                   group_rows(PLEN, g, qi, TQ))
    k_sig, k_pos, k_seq, k_plen = (group_rows(SIG, g, 0, R), group_rows(POS, g, 0, R), group_rows(SEQ, g, 0, R),
                                   group_rows(PLEN, g, 0, R))
    ok = position_ok(q_pos[:, None], k_pos[None, :], (q_pos < q_plen)[:, None], (k_pos < k_plen)[None, :], PREFIX)
    q_rows = qi * TQ + ct.arange(TQ, dtype=ct.int32)
    k_rows = ct.arange(R, dtype=ct.int32)
    # own sequence only; every row sees itself (the diagonal passes the window: d = 0 for a digit,
    # and a non-digit key is never windowed), so no softmax row is empty, empty rows included
    ok = (ok & (k_seq[None, :] == q_seq[:, None]) & (k_seq[None, :] >= 0)) | (k_rows[None, :] == q_rows[:, None])
    out = masked_biased(ct.full((TQ, R), 0.0, dtype=ct.float32), ok, q_sig[:, None] - k_sig[None, :],
                        k_sig[None, :] >= 0, bias_values(BIAS, h, CLIP, USE_BIAS), CLIP, WINDOW, USE_BIAS)
    ct.store(MASK, index=(g, h, qi, 0), tile=ct.reshape(ct.astype(out, MASK.dtype), (1, 1, TQ, R)))


def packed_mask_cutile(sig, pos, seq, plen, bias=None, *, window=None, clip: int = 3, prefix: bool = False,
                       out=None, dtype=torch.float32):
    """Host wrapper of `packed_mask_kernel`, same signature and result as `packed_attention_mask`
    (its reference); emulated when the tensors are on the CPU. `dtype`: the mask's (fp16 halves
    what every loop of the persistent kernel reads). `out` is a (G, H or 1, R, R) fp32
    buffer to write into (a test poisons it)."""
    G, R = sig.shape
    if not supported(G, R):
        raise ValueError(f"packed_mask takes a power-of-two row count R >= {MIN_ROWS}; got R={R}")
    Hm = bias.shape[0] if bias is not None else 1
    table = bias.float().contiguous() if bias is not None else torch.zeros(1, 1, device=sig.device)
    mask = out if out is not None else torch.empty(G, Hm, R, R, device=sig.device, dtype=dtype)
    TQ = tiles_for(G, R, Hm)["TQ"]
    packed_mask_kernel.launch((G, Hm, R // TQ), (
        sig.int().contiguous(), pos.int().contiguous(), seq.int().contiguous(), plen.int().contiguous(), table, mask,
        clip, -1 if window is None else window, bias is not None, prefix, R, TQ))
    return mask
