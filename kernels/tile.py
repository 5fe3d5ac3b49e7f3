"""One kernel source, three ways to run it: cuTile JIT on a GPU, the CPU emulator, or
cuTile's ahead-of-time compiler (which works without a GPU).

Kernel files import `ct` from here: the real `cuda.tile` when it imports, else the emulator,
so every kernel file (and its PyTorch reference) imports on any machine.
"""
from __future__ import annotations

import functools
import io
import os
import types
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import emulator

try:
    import cuda.tile as ct  # noqa: F401  (re-exported for the kernel files)
    HAVE_CUTILE = True
except Exception:  # cuda-tile missing or broken: the kernels still run, emulated
    ct = emulator
    HAVE_CUTILE = False

MAX_WORKER_WARPS_13_4 = 8   # tileiras 13.3-13.4 take 4 or 8 worker warps; 13.5 any power of two to 32


@functools.cache
def bytecode_13_5() -> bool:
    """Whether kernels compile to Tile IR bytecode 13.5, which is what lets them ask for more than
    8 worker warps. cuda-tile 1.7.0 emits 13.5 only with its dev features on (its `tileiras`
    extra pins the toolchain below 13.5), so where the tileiras on PATH takes 13.5 we turn them
    on, for every kernel compiled from then on (README, 'Running on the GPU');
    LOOPLM_BYTECODE=13.4 keeps cuda-tile's own choice."""
    if not HAVE_CUTILE or os.environ.get("LOOPLM_BYTECODE", "") == "13.4":
        return False
    from cuda.tile import _compile
    from cuda.tile._bytecode.version import BytecodeVersion
    from cuda.tile._context import get_temp_dir_from_env
    try:   # runs tileiras on an empty module of each version, newest first (cached by cuda-tile)
        newest = _compile._get_max_supported_bytecode_version(get_temp_dir_from_env(), allow_dev=True)
    except Exception:  # no tileiras here: nothing will compile anyway; cuda-tile says why later
        return False
    if newest < BytecodeVersion.V_13_5:
        return False
    _compile.dev_features_enabled = lambda: True
    return True


def compile_options(options: dict[str, Any]) -> dict[str, Any]:
    """A kernel's cuTile options as this toolchain can honour them: more than 8 worker warps
    need 13.5 bytecode (`bytecode_13_5`); below it they become 8, a speed choice only (the
    results are the same program's)."""
    warps = options.get("num_worker_warps")
    if warps is not None and warps > MAX_WORKER_WARPS_13_4 and not bytecode_13_5():
        return {**options, "num_worker_warps": MAX_WORKER_WARPS_13_4}
    return options


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (tile shapes must be powers of two: bug 8)."""
    return 1 << max(0, (int(n) - 1).bit_length())


class TileKernel:
    """A kernel body written against `ct`, runnable on cuTile or the emulator."""

    def __init__(self, body: Callable, **options: Any):
        self.body, self.options = body, options
        functools.update_wrapper(self, body)

    def variant(self, **options: Any) -> "TileKernel":
        """The same body compiled with `options` changed (None drops one: the compiler's own
        choice); self when nothing changes, so an unchanged variant is not compiled again."""
        merged = {k: v for k, v in {**self.options, **options}.items() if v is not None}
        return self if merged == self.options else TileKernel(self.body, **merged)

    @functools.cached_property
    def cutile(self):
        if not HAVE_CUTILE:
            raise RuntimeError("cuda.tile is not importable here")
        return ct.kernel(self.body, **compile_options(self.options))

    @functools.cached_property
    def emulated(self) -> Callable:
        """The same code object with `ct` bound to the emulator (helpers it calls too)."""
        return _emulate(self.body, {})

    def launch(self, grid: Sequence[int], args: Sequence[Any]) -> str:
        """Run on the GPU through cuTile if the tensors are on CUDA, else emulate. Returns which."""
        on_gpu = any(isinstance(a, torch.Tensor) and a.is_cuda for a in args)
        if on_gpu:
            ct.launch(torch.cuda.current_stream(), tuple(grid), self.cutile, tuple(args))
            return "cutile"
        emulator.launch(tuple(grid), self.emulated, tuple(args))
        return "emulator"

    def export(self, params: Sequence[Any], arch: str, cache: bool = True) -> bytes:
        """AOT-compile for one signature (see `array`) to a cubin for `arch`; works on a CPU.
        Results are cached on disk by (kernel source, parameters, arch, cuda-tile version)."""
        from cuda.tile.compilation import CallingConvention, KernelSignature, export_kernel
        path = _cache_dir() / f"{self.body.__name__}-{arch}-{self.fingerprint(params, arch)}.cubin"
        if cache and path.exists():
            return path.read_bytes()
        buf = io.BytesIO()
        sig = KernelSignature(list(params), CallingConvention.cutile_python_v2())
        export_kernel(self.cutile, [sig], buf, gpu_code=arch, output_format="cubin")
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(buf.getvalue())
            os.replace(tmp, path)
        return buf.getvalue()

    def fingerprint(self, params: Sequence[Any], arch: str) -> str:
        import hashlib
        import importlib.metadata
        # every kernel module: a helper from another module (row_entropy) is part of this kernel
        source = "".join(p.read_text() for p in sorted(Path(__file__).parent.glob("*.py")))
        version = importlib.metadata.version("cuda-tile") if HAVE_CUTILE else "none"
        options = compile_options(self.options) if HAVE_CUTILE else self.options
        return hashlib.sha256(f"{source}\n{params!r}\n{arch}\n{version}\n{options}".encode()).hexdigest()[:20]


def _cache_dir() -> Path:
    return Path(os.environ.get("LOOPLM_CACHE", Path.home() / ".cache" / "looplm-spec")) / "cubin"


def _emulate(fn: Callable, memo: dict) -> Callable:
    """fn with its module's `ct` replaced by the emulator. Plain helper functions that kernels
    call (cuTile compiles them as tile functions) are rebound the same way, across modules, each
    once (memo: by function and by module), so a helper imported into a kernel's module is the
    emulated one in its own module too."""
    if id(fn) in memo:
        return memo[id(fn)]
    first = id(fn.__globals__) not in memo
    glb = memo.setdefault(id(fn.__globals__), dict(fn.__globals__, ct=emulator))
    out = memo[id(fn)] = types.FunctionType(fn.__code__, glb, fn.__name__, fn.__defaults__, fn.__closure__)
    if first:
        for name, value in list(glb.items()):
            if isinstance(value, types.FunctionType) and value.__globals__.get("ct") is ct:
                glb[name] = _emulate(value, memo)
    return out


def tile_kernel(**options: Any) -> Callable[[Callable], TileKernel]:
    return lambda body: TileKernel(body, **options)


_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16",
           torch.int32: "int32", torch.int64: "int64", torch.bool: "bool_", torch.int8: "int8"}


def array(dtype: torch.dtype, ndim: int):
    """An AOT parameter constraint for a contiguous array argument that aliases nothing."""
    from cuda.tile.compilation import ArrayConstraint
    return ArrayConstraint(getattr(ct, _DTYPES[dtype]), ndim, index_dtype=ct.int32, stride_lower_bound_incl=0,
                           alias_groups=(), may_alias_internally=False)


def scalar(dtype: torch.dtype):
    from cuda.tile.compilation import ScalarConstraint
    return ScalarConstraint(getattr(ct, _DTYPES[dtype]))


__all__ = ["ct", "HAVE_CUTILE", "TileKernel", "tile_kernel", "next_pow2", "array", "scalar"]
