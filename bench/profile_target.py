"""One forward of a looped kernel on the headline options, for a profiler to attach to (ncu, nsys):
    python -m bench.profile_target tiled|persistent BATCH DIGITS"""
import sys

import torch

from bench.common import looped_inputs
from kernels import looped_block as LB
from kernels import looped_tiled as LT

which, B, digits = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x0, sig, plen, real, thr, w = looped_inputs(B, digits)
fn = LT.looped_tiled_cutile if which == "tiled" else LB.looped_block_cutile
for _ in range(2):
    fn(x0, sig, plen, real, thr, w, loops=12, halting=False, window=1, use_bias=True)
torch.cuda.synchronize()
print("ok")
