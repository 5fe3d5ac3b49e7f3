"""Whole-model torch.compile of the workload's shapes in parallel processes, before the timing.

torch.compile of the whole looped model unrolls the loop, so a shape at L = 64 takes 55-160 s to
compile on the H200 (`bench/results/kernels-h200.json`, `compile_s`), almost all of it Inductor's
lowering, code generation and Triton builds, which Inductor caches on disk (FX graph cache, keyed
by the traced graph, its inputs' shapes and the config). Compiling every such shape once in a pool
of processes first fills that cache; the timing process then traces each shape again (Dynamo is
not cached) and loads the rest: at L = 12 on a 2-core CPU, a cold compile's process took 29.7 s
and a warm cache's first call 2.4 s, 0.65 s of it Dynamo's tracing (by hand, session 37). The
compiled code is the same either way, so the times do not change; the bench records each
worker's cold compile seconds beside the timing process's warm ones.

The workers run while nothing is timed: `bench.kernels_gpu` calls `precompile` before its first
measurement and waits for every worker to exit.
"""
from __future__ import annotations

import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor

Shape = tuple[int, int, bool]      # (digits, L, halting)


def cache_on() -> None:
    """Inductor's FX graph cache, which this scheme rests on: on by default since torch 2.5, set
    here so that a user's TORCHINDUCTOR_FX_GRAPH_CACHE=0 cannot silently make it cold again."""
    import torch._inductor.config as inductor
    inductor.fx_graph_cache = True


def name_globals_as_the_parent() -> None:
    """Pool initializer: make a worker's FX graph cache keys the timing process's.

    A key pickles the graph's tensor metadata, and C pickle names `torch.contiguous_format` by
    the first module in sys.modules that reaches it as `<module>.torch.contiguous_format`,
    skipping '__main__' but not '__mp_main__' (this CPU's CPython 3.11 and the H200 pack's 3.12
    alike). A spawned worker re-imports the parent's main module as '__mp_main__' ahead of torch's
    own modules; where that module imports torch (`python -m bench.kernels_gpu` does), every key
    named `__mp_main__.torch.contiguous_format` where the parent's named
    `torch._utils.torch.contiguous_format`, and no worker's compile was ever loaded (H200, session
    38: a row's timed compile took 19-105 s, as long as the worker's; with this, 1.2-6.7 s against
    the workers' 12-74 s). The module stays reachable as '__main__'; only the name pickle
    searches goes.
    """
    sys.modules.pop("__mp_main__", None)


def compile_one(ckpt: str | None, shape: Shape, device: str = "cuda") -> float | str:
    """Compile the bench's whole-model path at one shape and run it once -> the seconds that took,
    or the failure (one line; the timing process meets it again and records it)."""
    from bench import kernels_gpu as K
    digits, L, halting = shape
    cache_on()
    try:
        model = K.inference_model(ckpt, device)
        K.no_silent_eager()
        idx = K.workload_batches(model, digits, n=1, device=device)[0]
        return K.first_call_seconds(K._compiled(model, L, K.halting_policy(halting)), idx)
    except Exception as e:
        return K.failure_line(e)


def precompile(ckpt: str | None, shapes: list[Shape], jobs: int, device: str = "cuda") -> dict[Shape, float | str]:
    """compile_one for every shape, `jobs` processes at once (fresh interpreters: CUDA cannot be
    forked), longest first (a larger L compiles longer) -> {shape: seconds or failure}."""
    order = sorted(shapes, key=lambda s: (s[1], s[2]), reverse=True)
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=mp.get_context("spawn"),
                             initializer=name_globals_as_the_parent) as pool:
        futures = {s: pool.submit(compile_one, ckpt, s, device) for s in order}
        return {s: f.result() for s, f in futures.items()}
