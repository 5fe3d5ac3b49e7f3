"""Ahead-of-time compilation of every kernel a spec declares, for the shapes it declares.

Used by `looplm kernels compile` (all signatures, all architectures) and by the verifier's
`kernel.compile` step (quick: one signature per kernel). Also checks that every tile size is
a power of two and that the spec's declared tile constants and limits match the code.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from dsl.model import Kernel, Spec

from .tile import HAVE_CUTILE, TileKernel, is_power_of_two


@dataclass
class Build:
    kernel: str
    shape: dict
    arch: str
    bytes: int
    seconds: float


def module_of(k: Kernel):
    return importlib.import_module(k.file.removesuffix(".py").replace("/", "."))


def tile_problems(spec: Spec) -> list[str]:
    """Non-power-of-two tiles for a declared shape, and drift between spec and code constants."""
    problems = []
    for k in spec.system.kernels:
        mod = module_of(k)
        for name, value in {**k.tiles, **{f"MAX_{n}": v for n, v in k.limits.items()}}.items():
            code = getattr(mod, name, None)
            if code is None:
                problems.append(f"{k.name}: the spec declares {name} = {value}, {k.file} has no {name}")
            elif code != value:
                problems.append(f"{k.name}: the spec declares {name} = {value}, {k.file} uses {code}")
        for shape in k.shapes:
            bad = {n: v for n, v in mod.tiles_for(**shape).items() if not is_power_of_two(v)}
            if bad:
                problems.append(f"{k.name} {shape}: tiles {bad} are not powers of two")
    return problems


def builds(spec: Spec, quick: bool) -> Iterator[tuple[Kernel, dict, TileKernel, list]]:
    """(kernel, shape, TileKernel, params) for every distinct compile the spec implies."""
    seen = set()
    for k in spec.system.kernels:
        mod = module_of(k)
        for shape in k.shapes[:1] if quick else k.shapes:
            sigs = mod.aot_signatures(**shape)
            for kernel, params in sigs[:1] if quick else sigs:
                key = (kernel.__name__, repr(kernel.options), repr(params))
                if key not in seen:
                    seen.add(key)
                    yield k, shape, kernel, params


def compile_all(spec: Spec, archs: list[str], *, quick: bool = False, cache: bool = True,
                on_build: Optional[Callable[[Build], None]] = None) -> list[Build]:
    if not HAVE_CUTILE:
        raise RuntimeError("cuda.tile is not installed: pip install 'cuda-tile[tileiras]'")
    done = []
    for k, shape, kernel, params in builds(spec, quick):
        for arch in archs:
            t0 = time.perf_counter()
            n = len(kernel.export(params, arch, cache=cache))
            b = Build(k.name, shape, arch, n, round(time.perf_counter() - t0, 2))
            done.append(b)
            if on_build:
                on_build(b)
    return done
