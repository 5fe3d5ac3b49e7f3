"""Ahead-of-time compilation of a spec's kernels, and the spec's tile invariants against the code.

A kernel module offers `tiles_for(**shape) -> {tile: size}` and `aot_signatures(**shape) ->
[(kernel, params)]`, every distinct compilation a declared shape implies; a kernel's
`export(params, arch)` compiles one to a cubin (cuTile compiles without a GPU), here with the
array constraints a JIT launch has (`jit_like`), so what compiles is the code that runs. Used by
the `kernel.compile` step (quick: one signature per kernel) and `looplm kernels compile` (all).
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence

from dsl.model import ARCHS

from .binding import BoundKernel

__all__ = ["ARCHS", "Build", "builds", "compile_all", "cutile_installed", "jit_like", "tile_problems"]


@dataclass
class Build:
    kernel: str
    shape: dict
    arch: str
    bytes: int
    seconds: float


def cutile_installed() -> bool:
    try:
        return importlib.util.find_spec("cuda.tile") is not None
    except ModuleNotFoundError:
        return False


def jit_like(params: list) -> list:
    """AOT array constraints like those a JIT launch with fresh, contiguous torch tensors gets: a
    16-byte aligned base, unit last stride, and row strides divisible by 16 elements (true of the
    D-wide rows; a launch specializes each tensor by what it has). Without them cuTile cannot use
    TMA, so the code it makes is not the code that runs, and a tileiras crash can hide there."""
    from cuda.tile.compilation import ArrayConstraint
    out = []
    for p in params:
        if isinstance(p, ArrayConstraint):
            n = p.ndim
            p = ArrayConstraint(p.dtype, n, index_dtype=p.index_dtype, stride_lower_bound_incl=0, alias_groups=(),
                                may_alias_internally=False, stride_constant=[None] * (n - 1) + [1],
                                stride_divisible_by=[16] * (n - 1) + [1], base_addr_divisible_by=16)
        out.append(p)
    return out


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def tile_problems(kernels: Sequence[BoundKernel]) -> list[str]:
    """Non-power-of-two tiles for a declared shape, and drift between the spec's tile constants
    and limits and the module's (`tiles: {BLOCK_M: 64}` must be the module's BLOCK_M)."""
    problems = []
    for bk in kernels:
        k, mod = bk.spec, bk.module
        for name, value in {**k.tiles, **{f"MAX_{n}": v for n, v in k.limits.items()}}.items():
            code = getattr(mod, name, None)
            if code is None:
                problems.append(f"{k.name}: the spec declares {name} = {value}, {k.module} has no {name}")
            elif code != value:
                problems.append(f"{k.name}: the spec declares {name} = {value}, {k.module} uses {code}")
        tiles_for = getattr(mod, "tiles_for", None)
        for shape in k.shapes if tiles_for else ():
            bad = {n: v for n, v in tiles_for(**shape).items() if not is_power_of_two(v)}
            if bad:
                problems.append(f"{k.name} {shape}: tiles {bad} are not powers of two")
    return problems


def builds(kernels: Sequence[BoundKernel], quick: bool) -> Iterator[tuple[BoundKernel, dict, object, list]]:
    """(kernel, shape, compiled kernel, params) for every distinct compile the declared shapes
    imply (quick: the first shape's first signature of each kernel)."""
    seen = set()
    for bk in kernels:
        signatures = getattr(bk.module, "aot_signatures", None)
        for shape in (bk.spec.shapes[:1] if quick else bk.spec.shapes) if signatures else ():
            sigs = signatures(**shape)
            for kernel, params in sigs[:1] if quick else sigs:
                key = (kernel.__name__, repr(getattr(kernel, "options", None)), repr(params))
                if key not in seen:
                    seen.add(key)
                    yield bk, shape, kernel, params


def compile_all(kernels: Sequence[BoundKernel], archs: Optional[Sequence[str]] = None, *, quick: bool = False,
                cache: bool = True, on_build: Optional[Callable[[Build], None]] = None) -> list[Build]:
    """Compile every build for `archs` (default: each kernel's declared archs, else sm_90)."""
    if not cutile_installed():
        raise RuntimeError("cuda.tile is not installed: pip install 'cuda-tile[tileiras]'")
    done = []
    for bk, shape, kernel, params in builds(kernels, quick):
        for arch in archs or bk.spec.archs or ("sm_90",):
            t0 = time.perf_counter()
            n = len(kernel.export(jit_like(params), arch, cache=cache))
            b = Build(bk.spec.name, shape, arch, n, round(time.perf_counter() - t0, 2))
            done.append(b)
            if on_build:
                on_build(b)
    return done
