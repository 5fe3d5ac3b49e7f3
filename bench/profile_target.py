"""One forward of a looped kernel on the headline options, for a profiler to attach to (ncu, nsys):
    python -m bench.profile_target tiled|persistent BATCH DIGITS"""
import sys

import torch

from kernels import looped_block as LB
from kernels import looped_tiled as LT
from looplm.kernel_inputs import addition_rows, random_weights
from looplm.tokens import ADDITION

which, B, digits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
g = torch.Generator().manual_seed(0)
idx, sig, plen = [t.cuda() for t in addition_rows(B, digits, "reversed", 1)]
T = idx.shape[1]
w = random_weights(128, 4, len(ADDITION), 12, g, torch.bfloat16)
w = type(w)(*(t.cuda() for t in w))
x0 = torch.randn(B, T, 128, generator=g).cuda()
real, thr = idx != ADDITION.pad_id, torch.full((B, T), 0.05, device="cuda")
fn = LT.looped_tiled_cutile if which == "tiled" else LB.looped_block_cutile
for _ in range(2):
    fn(x0, sig, plen, real, thr, w, loops=12, halting=False, window=1, use_bias=True)
torch.cuda.synchronize()
print("ok")
