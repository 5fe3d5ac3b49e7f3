"""Bench (GPU): the halting kernel's bandwidth against the measured copy bandwidth, and looped
inference across the length-generalization workload, side by side in one run:

    eager        the PyTorch reference path (bf16 autocast)
    compile      torch.compile of the same
    graphs       eager replayed as one CUDA graph (looplm.graphs.Graphed)
    compile_graph  torch.compile replayed as one CUDA graph: the strongest PyTorch baseline
    cutile_plain the default path on the GPU (dispatch: the persistent cuTile kernel up to T = 128,
                 the tiled looped block beyond), called plainly
    cutile       the same replayed as one CUDA graph

    python -m bench.kernels_gpu [--ckpt PATH] [--digits 8,12,32,100,1000] [--loops 12,24,64]

Writes bench/results/kernels-<device>.json (or --out) after every row. Times are CUDA-event
medians after warm-up, rotating over three input batches (never zeros); each timing takes about
a second and a half of calls. torch.compile is timed up to --compile-max-loops loops and
--compile-max-T tokens (beyond, its compile time leaves no time for anything else), then the
faster of graphs and compile_graph is the baseline.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from bench.common import RESULTS, device_kind, record, table

BATCH = {8: 4096, 12: 1024, 32: 256, 100: 64, 1000: 8}   # about 40k-110k tokens per call


def median_ms(fn, inputs: list, budget_s: float = 1.5, warmup: int = 3) -> float:
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    torch.cuda.synchronize()
    times = []
    while sum(times) < budget_s * 1e3 and len(times) < 25 or len(times) < 5:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(inputs[len(times) % len(inputs)])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth() -> float:
    """GB/s of a 1 GiB device-to-device copy, bytes read + written."""
    xs = [torch.randn(2**28, device="cuda") for _ in range(2)]
    y = torch.empty_like(xs[0])
    return 2 * xs[0].numel() * 4 / median_ms(lambda x: y.copy_(x), xs) / 1e6


def halting_bandwidth(M: int = 1 << 20, V: int = 14, D: int = 128) -> dict:
    """The halting update on M tokens through its public wrapper, against the reference."""
    from kernels import halting as K
    g = torch.Generator(device="cuda").manual_seed(0)
    sets = [(torch.randn(M, V, device="cuda", generator=g) * 3, torch.randn(M, D, device="cuda", generator=g),
             torch.randn(M, D, device="cuda", generator=g), torch.rand(M, device="cuda", generator=g) < 0.7,
             torch.randint(0, 9, (M,), device="cuda", dtype=torch.int32, generator=g),
             torch.rand(M, device="cuda", generator=g)) for _ in range(3)]
    got, want = K.halting_update_cutile(*sets[0]), K.halting_update_reference(*sets[0])
    err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(got, want))
    # bytes moved: read logits, both states, active, steps, threshold; write state, active, steps, entropy
    nbytes = M * (V * 4 + 2 * D * 4 + 1 + 4 + 4) + M * (D * 4 + 1 + 4 + 4)
    ms = median_ms(lambda s: K.halting_update_cutile(*s), sets)
    return {"M": M, "V": V, "D": D, "bytes": nbytes, "ms": ms, "bandwidth_gbs": nbytes / ms / 1e6,
            "reference_ms": median_ms(lambda s: K.halting_update_reference(*s), sets),
            "max_abs_error_vs_reference": err}


def inference_model(ckpt: str | None):
    from looplm import checkpoint
    from looplm.config import Config
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    if ckpt:
        return checkpoint.load(ckpt, map_location="cuda").model.eval()
    torch.manual_seed(0)
    return LoopLM(Config().override(model={"n_embd": 128, "n_head": 4, "n_loops": 12}), ADDITION).cuda().eval()


def _paths(model, L: int, policy):
    """(reference path, the default dispatch path) as idx -> logits, both under bf16 autocast (the
    persistent kernel makes its own bf16 weight copies either way)."""
    from kernels import dispatch

    def eager(idx):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), dispatch.use("reference"):
            return model(idx, loops=L, halting=policy).logits

    def default(idx):    # the same autocast as eager: where dispatch picks the reference, the same path
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), dispatch.use("auto"):
            return model(idx, loops=L, halting=policy).logits
    return eager, default


def _compiled(model, L: int, policy):
    from kernels import dispatch
    compiled = torch.compile(model, dynamic=False)

    def run(idx):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), dispatch.use("reference"):
            return compiled(idx, loops=L, halting=policy).logits
    return run


def workload_row(model, digits: int, L: int, halting: bool, with_compile: bool) -> dict:
    from looplm.config import HaltingConfig
    from looplm.data import make_batch, problems
    from looplm.graphs import Graphed
    batches = [make_batch(problems(BATCH[digits], digits, digits, seed=s), model.config.data.format).idx.cuda()
               for s in range(3)]
    policy = HaltingConfig(mode="entropy", threshold=0.05) if halting else HaltingConfig()
    eager, default = _paths(model, L, policy)
    ms = {"eager": median_ms(eager, batches), "graphs": median_ms(Graphed(eager, batches[0]), batches)}
    failure = None
    if with_compile:
        try:
            comp = _compiled(model, L, policy)
            ms["compile"] = median_ms(comp, batches)
            ms["compile_graph"] = median_ms(Graphed(comp, batches[0]), batches)
        except Exception as e:    # recorded, not hidden: the row then compares against graphs only
            failure = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}" if str(e) else type(e).__name__
    ms["cutile_plain"] = median_ms(default, batches)
    ms["cutile"] = median_ms(Graphed(default, batches[0]), batches)
    ms["eager"] = min(ms["eager"], median_ms(eager, batches))   # eager swings with the host: keep its best
    real = batches[0] != model.vocab.pad_id
    agree = float((default(batches[0]).argmax(-1) == eager(batches[0]).argmax(-1))[real].float().mean())
    best = min(ms["graphs"], ms.get("compile_graph", float("inf")))
    return {"digits": digits, "T": int(batches[0].shape[1]), "batch": BATCH[digits], "L": L, "halting": halting,
            "persistent_kernel": _fusable(model, batches[0], policy), "ms": ms,
            "speedup_vs_best_other": best / ms["cutile"], "plain_speedup_vs_eager": ms["eager"] / ms["cutile_plain"],
            "speedup_vs_eager": ms["eager"] / ms["cutile"], "argmax_agreement_vs_eager": agree,
            **({"compile_failed": failure} if failure else {})}


def _fusable(model, idx, policy) -> bool:
    from looplm.fused import fusable
    return fusable(model, idx, policy)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--digits", default="8,12,32,100,1000")
    ap.add_argument("--loops", default="12,24,64")
    ap.add_argument("--compile-max-loops", type=int, default=24)
    ap.add_argument("--compile-max-T", type=int, default=303)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    out = args.out or RESULTS / f"kernels-{device_kind()}.json"
    copy = copy_bandwidth()
    halt = halting_bandwidth()
    halt["bandwidth_fraction"] = halt["bandwidth_gbs"] / copy
    data = {"copy_bandwidth_gbs": copy, "halting": halt, "checkpoint": args.ckpt, "batch_by_digits": BATCH}
    table("halting update", ["copy GB/s", "halting GB/s", "fraction of copy", "ms", "reference ms"],
          [[copy, halt["bandwidth_gbs"], halt["bandwidth_fraction"], halt["ms"], halt["reference_ms"]]])
    model = inference_model(args.ckpt)
    data["model"], rows = model.config.model.model_dump(), []
    for digits in (int(d) for d in args.digits.split(",")):
        for halting in (False, True):
            for L in (int(x) for x in args.loops.split(",")):
                T = 3 * digits + 3
                rows.append(workload_row(model, digits, L, halting, L <= args.compile_max_loops and T <= args.compile_max_T))
                print({k: rows[-1][k] for k in ("digits", "L", "halting", "ms", "speedup_vs_best_other")}, flush=True)
                record(out.stem, {**data, "loop_inference": rows}, out=out)
    table("looped inference (ms, median)", ["digits", "T", "B", "L", "halt", "eager", "graphs", "compile+graph",
                                            "cutile plain", "cutile", "x best other", "plain x eager", "agree"],
          [[r["digits"], r["T"], r["batch"], r["L"], r["halting"], r["ms"]["eager"], r["ms"]["graphs"],
            r["ms"].get("compile_graph", "-"), r["ms"]["cutile_plain"], r["ms"]["cutile"], r["speedup_vs_best_other"],
            r["plain_speedup_vs_eager"], r["argmax_agreement_vs_eager"]] for r in rows])
    print(f"wrote {record(out.stem, {**data, 'loop_inference': rows}, out=out)}")


if __name__ == "__main__":
    main()
