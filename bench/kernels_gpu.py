"""Bench (GPU): the halting kernel's bandwidth against the measured copy bandwidth, and looped
inference across the length-generalization workload, side by side in one run:

    eager        the PyTorch reference path (bf16 autocast)
    compile      torch.compile of the same
    graphs       eager replayed as one CUDA graph (looplm.graphs.Graphed)
    compile_graph  torch.compile of the whole model replayed as one CUDA graph
    regional_graph torch.compile of the shared block, the head and the halting update only (regional
                 compilation, as PyTorch recommends for repeated layers: one compiled block serves
                 every loop, so compile time does not grow with L), the whole forward replayed as
                 one CUDA graph
    cutile_plain the default path on the GPU (dispatch: the persistent cuTile kernel up to T = 128,
                 the tiled looped block beyond), called plainly
    cutile       the same replayed as one CUDA graph

    python -m bench.kernels_gpu [--ckpt PATH] [--digits 8,12,32,100,1000] [--loops 12,24,64]

Writes bench/results/kernels-<device>.json (or --out) after every row. Times are CUDA-event
medians after warm-up, rotating over three input batches (never zeros); each timing takes about
a second and a half of calls (--budget). Whole-model torch.compile unrolls the loop, so its compile
time grows with L (12-27 s at L = 12, 16-45 s at L = 24, 55-160 s at L = 64 on the H200, cold; per
row in compile_s). So, before any timing, --precompile-jobs processes compile those shapes into
Inductor's disk cache (bench.precompile; each worker's cold seconds recorded as
compile_s.compile_cold_in_worker), and a row's own compile then loads the same code.
--compile-max-loops and --compile-halting narrow where it is timed, and by default it is timed at
every shape: regional compilation measured 1.1-1.7x slower than it where both ran (H200,
bench/results/kernels-h200.json), so a ratio against regional + graph alone overstates the
kernels. The baseline is the fastest of graphs, compile_graph and regional_graph. A full workload
takes longer than one 10-minute device call: split it by --digits (or --loops, --halting) and join
with --merge, which keeps the earlier rows of every (digits, L, halting) not run again
(`--digits ''` re-measures the halting update alone, against copies timed alternately with it).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from bench.common import RESULTS, device_kind, record, table
from looplm.graphs import Graphed

BATCH = {8: 4096, 12: 1024, 32: 256, 100: 64, 1000: 8}   # about 40k-110k tokens per call


BUDGET_S = 1.5     # calls per timing: until this much time, at least 5 and at most 25 (--budget)


def median_ms(fn, inputs: list, budget_s: float | None = None, warmup: int = 3) -> float:
    budget_s = BUDGET_S if budget_s is None else budget_s
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


def copy_bandwidth(xs: list, y) -> float:
    """GB/s of a device-to-device copy of each of `xs` into `y`, bytes read + written."""
    return 2 * y.numel() * y.element_size() / median_ms(lambda x: y.copy_(x), xs) / 1e6


def halting_vs_copy(rounds: int = 7, M: int = 1 << 20, V: int = 14, D: int = 128) -> tuple[float, dict]:
    """(copy GB/s of 1 GiB, the halting update's row on M tokens through its public wrapper, with
    `bandwidth_fraction`): the copy and the update timed alternately, `rounds` times, and the
    fraction the median of the rounds' ratios. One timing each swung the fraction from 80% to 87%
    between runs of the same kernel on the H200 (25 calls of half a millisecond: the clocks move
    under them); pairs taken together move together. Inputs, the error against the reference
    and the reference's time are made once. Like the copy, which writes into one buffer, the
    update writes into preallocated outputs: allocating 0.5 GB of fresh outputs every call
    measured 85.9% where the same kernel writing into given buffers measured 88.2% (H200, one
    call, 3 rounds each, by hand)."""
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
    xs = [torch.randn(2**28, device="cuda") for _ in range(2)]
    y = torch.empty_like(xs[0])
    outs = [(torch.empty_like(s[2]), torch.empty_like(s[3]), torch.empty_like(s[4]), torch.empty(M, device="cuda"))
            for s in sets]
    pairs = [(copy_bandwidth(xs, y), median_ms(lambda i: K.halting_update_cutile(*sets[i], out=outs[i]), [0, 1, 2]))
             for _ in range(rounds)]
    fractions = [nbytes / ms / 1e6 / copy for copy, ms in pairs]
    mid = sorted(range(rounds), key=lambda i: fractions[i])[rounds // 2]
    copy, ms = pairs[mid]
    return copy, {"M": M, "V": V, "D": D, "bytes": nbytes, "ms": ms, "bandwidth_gbs": nbytes / ms / 1e6,
                  "reference_ms": median_ms(lambda s: K.halting_update_reference(*s), sets),
                  "max_abs_error_vs_reference": err, "bandwidth_fraction": fractions[mid],
                  "fraction_rounds": fractions}


def inference_model(ckpt: str | None, device: str = "cuda"):
    from looplm import checkpoint
    from looplm.config import Config
    from looplm.model import LoopLM
    from looplm.tokens import ADDITION
    if ckpt:
        return checkpoint.load(ckpt, map_location=device).model.eval()
    torch.manual_seed(0)
    return LoopLM(Config().override(model={"n_embd": 128, "n_head": 4, "n_loops": 12}), ADDITION).to(device).eval()


def workload_batches(model, digits: int, n: int = 3, batch: int | None = None, device: str = "cuda") -> list:
    """n token batches (seeds 0..n-1) of `batch` (default BATCH[digits]) problems of `digits`
    digits each, in the model's format: one shape, so compiled code and CUDA graphs serve all."""
    from looplm.data import make_batch, problems
    return [make_batch(problems(batch or BATCH[digits], digits, digits, seed=s), model.config.data.format).idx.to(device)
            for s in range(n)]


def halting_policy(on: bool):
    """The workload's halting: entropy at 0.05 (the headline setting) or none."""
    from looplm.config import HaltingConfig
    return HaltingConfig(mode="entropy", threshold=0.05) if on else HaltingConfig()


def _call(fn, L: int, policy, backend: str, scores: str = "auto"):
    """idx -> the logits of fn(idx, loops=L, halting=policy): no grad, bf16 autocast, the named kernel
    backend (the persistent kernel makes its own bf16 weight copies either way)."""
    from kernels import dispatch

    def run(idx):
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), dispatch.use(backend), dispatch.scores(scores):
            return fn(idx, loops=L, halting=policy).logits
    return run


def _paths(model, L: int, policy):
    """(the reference path, the default dispatch path; where dispatch picks the reference, the same)."""
    return _call(model, L, policy, "reference"), _call(model, L, policy, "auto")


def _compiled(model, L: int, policy):
    return _call(torch.compile(model, dynamic=False), L, policy, "reference")


def regional_model(model):
    """A copy of the model whose shared block(s), head and halting update are compiled, the rest
    eager. One copy serves every row: each new input shape compiles once, and L does not enter
    the compiled code."""
    import copy
    from kernels import halting as H
    m = copy.deepcopy(model)
    for block in m.blocks:
        block.compile(dynamic=False)
    m.head = torch.compile(m.head, dynamic=False)
    m.halting_update = torch.compile(H.halting_update_reference, dynamic=False)   # swapped in by _regional
    return m


def no_silent_eager() -> None:
    """Past dynamo's recompile limit (8 per code object) a compiled function silently runs eager:
    this bench compiles the same code for up to 5 shapes x 3 depths x 2 halting modes."""
    import torch._dynamo.config as cfg
    for name, value in (("cache_size_limit", 256), ("recompile_limit", 256),
                        ("accumulated_cache_size_limit", 4096), ("accumulated_recompile_limit", 4096)):
        if hasattr(cfg, name):
            setattr(cfg, name, value)


def _regional(m, L: int, policy):
    """The regional copy's reference path, its compiled halting update swapped in for the call."""
    from kernels import halting as H
    inner = _call(m, L, policy, "reference")

    def run(idx):
        eager_update, H.halting_update_reference = H.halting_update_reference, m.halting_update
        try:
            return inner(idx)
        finally:
            H.halting_update_reference = eager_update
    return run


def first_call_seconds(fn, idx) -> float:
    """A compiled path's compile time: its first call's wall time, to the end of its GPU work."""
    t0 = time.perf_counter()
    fn(idx)
    if idx.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def failure_line(e: Exception) -> str:
    """A failure as the record keeps it: its type and the first line of its message."""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}" if str(e) else type(e).__name__


def _timed_compile(ms: dict, name: str, build, batches) -> tuple[float, str | None]:
    """Time a compiled path plainly and graphed into ms[name], ms[name + '_graph'] -> (compile seconds
    (`first_call_seconds`), the failure if it failed: recorded, not hidden)."""
    try:
        fn = build()
        seconds = first_call_seconds(fn, batches[0])
        ms[name] = median_ms(fn, batches)
        ms[name + "_graph"] = median_ms(Graphed(fn, batches[0]), batches)
        return seconds, None
    except Exception as e:
        return float("nan"), failure_line(e)


def workload_row(model, regional, digits: int, L: int, halting: bool, with_compile: bool, tf32: bool = False) -> dict:
    """One shape of the workload, every column; `tf32` adds the default path with TF32 attention
    scores (`cutile_tf32`, graphed) and its argmax agreement with eager."""
    batches, policy = workload_batches(model, digits), halting_policy(halting)
    eager, default = _paths(model, L, policy)
    ms = {"eager": median_ms(eager, batches), "graphs": median_ms(Graphed(eager, batches[0]), batches)}
    compile_s, failures = {}, {}
    for name, build, wanted in (("compile", lambda: _compiled(model, L, policy), with_compile),
                                ("regional", lambda: _regional(regional, L, policy), True)):
        if wanted:
            compile_s[name], failure = _timed_compile(ms, name, build, batches)
            if failure:
                failures[name] = failure
    ms["cutile_plain"] = median_ms(default, batches)
    ms["cutile"] = median_ms(Graphed(default, batches[0]), batches)
    ms["eager"] = min(ms["eager"], median_ms(eager, batches))   # eager swings with the host: keep its best
    real = batches[0] != model.vocab.pad_id
    agree = float((default(batches[0]).argmax(-1) == eager(batches[0]).argmax(-1))[real].float().mean())
    extra = {}
    if tf32:
        precise = _call(model, L, policy, "auto", "tf32")
        ms["cutile_tf32"] = median_ms(Graphed(precise, batches[0]), batches)
        extra["tf32_argmax_agreement_vs_eager"] = float(
            (precise(batches[0]).argmax(-1) == eager(batches[0]).argmax(-1))[real].float().mean())
    others = {k: ms[k] for k in ("graphs", "compile_graph", "regional_graph") if k in ms}
    best = min(others.values())
    return {"digits": digits, "T": int(batches[0].shape[1]), "batch": BATCH[digits], "L": L, "halting": halting,
            "persistent_kernel": _fusable(model, batches[0], policy), "ms": ms,
            "best_other": min(others, key=others.get), "compile_s": compile_s,
            "speedup_vs_best_other": best / ms["cutile"], "plain_speedup_vs_eager": ms["eager"] / ms["cutile_plain"],
            "speedup_vs_eager": ms["eager"] / ms["cutile"], "argmax_agreement_vs_eager": agree,
            **extra, **({"compile_failed": failures} if failures else {})}


def _fusable(model, idx, policy) -> bool:
    from looplm.fused import fusable
    return fusable(model, idx, policy)


def toolchain() -> dict:
    """What the looped kernels compiled with: 13.5 bytecode or not, and their worker warps."""
    from kernels import looped_block, looped_tiled, tile
    return {"bytecode_13_5": tile.bytecode_13_5(),
            "worker_warps": {k.body.__name__: tile.compile_options(k.options).get("num_worker_warps")
                             for k in (looped_block.looped_block_kernel, looped_tiled.loop_tile_kernel)}}


def halting_modes(text: str) -> set[bool]:
    """'off,on' -> {False, True}: the halting modes an option names (anything else refused)."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if any(m not in ("off", "on") for m in names):
        raise SystemExit(f"bench.kernels_gpu: halting modes are 'off' and 'on'; got {text!r}")
    return {m == "on" for m in names}


def row_key(row: dict) -> tuple[int, int, bool]:
    return row["digits"], row["L"], row["halting"]


def kept_rows(rows: list[dict], shapes: list[tuple[int, int, bool]]) -> list[dict]:
    """The earlier rows whose (digits, L, halting) is not among `shapes`, in their order."""
    return [r for r in rows if row_key(r) not in set(shapes)]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt")
    ap.add_argument("--digits", default="8,12,32,100,1000")
    ap.add_argument("--loops", default="12,24,64")
    ap.add_argument("--compile-max-loops", type=int, default=1 << 30)
    ap.add_argument("--compile-halting", default="off,on", help="halting modes whose rows compile the whole model")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="seconds of calls per timing")
    ap.add_argument("--tf32-scores", action="store_true", help="also time the default path with TF32 attention scores")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--halting", default="off,on", help="halting modes to run")
    ap.add_argument("--merge", type=Path, help="keep this earlier result's rows of shapes not run now (a workload "
                                                 "split over several calls); its commands are kept as 'merged'")
    ap.add_argument("--precompile-jobs", type=int, default=min(8, os.cpu_count() or 1),
                    help="processes that compile the whole-model rows' shapes before any timing (bench.precompile); "
                         "0: each row compiles its own, cold")
    return ap.parse_args()


def whole_compile_shapes(args: argparse.Namespace, shapes: list[tuple[int, int, bool]]) -> list:
    """The shapes whose rows time whole-model compile (--compile-max-loops, --compile-halting)."""
    modes = halting_modes(args.compile_halting)
    return [s for s in shapes if s[1] <= args.compile_max_loops and s[2] in modes]


def warm_compiles(args: argparse.Namespace, whole: list[tuple[int, int, bool]]) -> dict:
    """Those shapes compiled first by --precompile-jobs processes -> {shape: cold seconds or failure}."""
    from bench.precompile import cache_on, precompile
    cache_on()
    if not whole or args.precompile_jobs <= 0:
        return {}
    t0 = time.perf_counter()
    out = precompile(args.ckpt, whole, args.precompile_jobs)
    print(f"precompiled {len(whole)} shapes in {time.perf_counter() - t0:.0f} s, {args.precompile_jobs} processes: {out}",
          flush=True)
    return out


def main() -> None:
    global BUDGET_S
    args = parse_args()
    if device_kind() == "cpu":
        raise SystemExit("bench.kernels_gpu: no CUDA GPU here")
    BUDGET_S = args.budget
    out = args.out or RESULTS / f"kernels-{device_kind()}.json"
    digits_run = [int(d) for d in args.digits.split(",") if d.strip()]
    run_modes = halting_modes(args.halting)
    shapes = [(d, L, h) for d in digits_run for h in (False, True) if h in run_modes
              for L in (int(x) for x in args.loops.split(","))]
    old = json.loads(args.merge.read_text()) if args.merge else {"loop_inference": []}
    kept = kept_rows(old["loop_inference"], shapes)
    merged = [*old.get("merged", []), {k: old.get(k) for k in ("date", "commit", "command", "commit_note")}]
    whole = whole_compile_shapes(args, shapes)
    cold = warm_compiles(args, whole)        # before any timing: the workers use the GPU too
    copy, halt = halting_vs_copy()
    data = {"copy_bandwidth_gbs": copy, "halting": halt, "checkpoint": args.ckpt, "batch_by_digits": BATCH,
            "toolchain": toolchain(), **({"merged": merged} if args.merge else {})}
    table("halting update", ["copy GB/s", "halting GB/s", "fraction of copy", "ms", "reference ms"],
          [[copy, halt["bandwidth_gbs"], halt["bandwidth_fraction"], halt["ms"], halt["reference_ms"]]])
    if not digits_run:      # --digits '': the halting row alone, the workload's rows kept from --merge
        print(f"wrote {record(out.stem, {**data, 'model': old.get('model'), 'loop_inference': kept}, out=out)}")
        return
    model = inference_model(args.ckpt)
    no_silent_eager()
    regional = regional_model(model)
    data["model"], rows = model.config.model.model_dump(), kept
    for i, (digits, L, halting) in enumerate(shapes):
        rows.append(workload_row(model, regional, digits, L, halting, (digits, L, halting) in whole, args.tf32_scores))
        if (digits, L, halting) in cold:      # compile_s["compile"] is then the warm cache's; this the cold one's
            rows[-1]["compile_s"]["compile_cold_in_worker"] = cold[(digits, L, halting)]
        print({k: rows[-1][k] for k in ("digits", "L", "halting", "ms", "compile_s", "best_other",
                                        "speedup_vs_best_other")}, flush=True)
        # written after every row; a run cut short keeps --merge's rows of the shapes it did not reach
        pending = [r for r in old["loop_inference"] if row_key(r) in set(shapes[i + 1:])]
        record(out.stem, {**data, "loop_inference": rows + pending}, out=out)
    table("looped inference (ms, median)", ["digits", "T", "B", "L", "halt", "eager", "graphs", "compile+graph",
                                            "regional+graph", "cutile plain", "cutile", "x best other",
                                            "plain x eager", "agree"],
          [[r["digits"], r["T"], r["batch"], r["L"], r["halting"], r["ms"]["eager"], r["ms"]["graphs"],
            r["ms"].get("compile_graph", "-"), r["ms"].get("regional_graph", "-"), r["ms"]["cutile_plain"], r["ms"]["cutile"], r["speedup_vs_best_other"],
            r["plain_speedup_vs_eager"], r["argmax_agreement_vs_eager"]] for r in rows])
    print(f"wrote {record(out.stem, {**data, 'loop_inference': rows}, out=out)}")


if __name__ == "__main__":
    main()
