"""Pick the cuTile kernel or its PyTorch reference for each op. Tensors in, tensors out.

Backends:
    reference  the PyTorch reference of each op
    cutile     the kernel, through cuTile on the GPU (CUDA tensors; raises anywhere else)
    emulator   the same kernel source run block by block by the CPU emulator (CPU tensors):
               slow, for checking a kernel's logic where there is no GPU; never a GPU result
    auto       cutile where cuda.tile imports and the tensors are on a GPU, else reference

The backend is chosen explicitly: `with dispatch.use("reference"): ...` (a context variable,
so it is restored on exit and other threads keep their own), else `LOOPLM_KERNELS` for a whole
process, else auto. A forced backend that cannot run raises rather than falling back.

The looped-block kernels' attention scores are chosen the same way: `with dispatch.scores("fp16")`,
else `LOOPLM_SCORES`, else "auto". "matrix": the matrices' dtype (bf16 on a GPU). "tf32": TF32
queries and fp32 keys; "fp16": fp16 queries and keys; only the tiled kernel computes these two,
so with either every shape runs on it. "auto" (the default): fp16 on the tiled kernel (rows
longer than the persistent kernel holds), the matrices' dtype in the persistent one. Why: at
1000 digits bf16 scores tip one near-tie in 500 (exact match 99.8% against the reference's 100%),
TF32 and fp16 ones keep it (H200, `bench.eval_gpu --tf32-scores`; the emulator reproduces the flip
and both keeping it, tests/test_kernels.py). fp16 carries TF32's 10 mantissa bits in 2-byte keys;
with TF32's fp32 keys the default path took 10-24% more time (`bench.kernels_gpu --tf32-scores`).
The short rows showed no such flip.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from typing import Iterator, Optional

import torch

from . import attention, halting
from . import looped_block as _looped
from . import looped_tiled as _tiled
from .looped_block import Weights

BACKENDS = ("auto", "reference", "cutile", "emulator")
SCORES = ("auto", "matrix", "tf32", "fp16")
TILED_ONLY = ("tf32", "fp16")       # score precisions only the tiled kernel computes


class KernelUnavailable(RuntimeError):
    """A backend asked for by name that cannot run here (no silent fallback)."""


@functools.cache
def cutile_available() -> bool:
    try:
        import cuda.tile  # noqa: F401
    except Exception:  # any import failure means: no cuTile here
        return False
    return torch.cuda.is_available()


class _Choice:
    """One of `allowed`, chosen per context (a context variable: restored on exit, other threads
    keep their own), else by an environment variable for the process, else a default."""

    def __init__(self, env: str, allowed: tuple[str, ...], default: str, what: str):
        self.env, self.allowed, self.default, self.what = env, allowed, default, what
        self.var: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(env.lower(), default=None)

    def checked(self, name: str, where: str) -> str:
        name = name.strip().lower()
        if name not in self.allowed:
            raise ValueError(f"{where}: {self.what} must be one of {', '.join(self.allowed)}, not {name!r}")
        return name

    @contextlib.contextmanager
    def chosen(self, name: str, where: str) -> Iterator[None]:
        token = self.var.set(self.checked(name, where))
        try:
            yield
        finally:
            self.var.reset(token)

    def get(self) -> str:
        chosen = self.var.get()
        if chosen is not None:
            return chosen
        env = os.environ.get(self.env, "")
        return self.checked(env, self.env) if env.strip() else self.default


_BACKEND = _Choice("LOOPLM_KERNELS", BACKENDS, "auto", "kernel backend")
_SCORES = _Choice("LOOPLM_SCORES", SCORES, "auto", "score precision")


def use(name: str) -> contextlib.AbstractContextManager[None]:
    """Run the block with kernel backend `name` (one of BACKENDS)."""
    return _BACKEND.chosen(name, "dispatch.use")


def requested() -> str:
    """The backend asked for: use(...), else LOOPLM_KERNELS, else auto."""
    return _BACKEND.get()


def scores(name: str) -> contextlib.AbstractContextManager[None]:
    """Run the looped-block kernels with attention scores `name` (one of SCORES)."""
    return _SCORES.chosen(name, "dispatch.scores")


def requested_scores() -> str:
    """The score precision asked for: scores(...), else LOOPLM_SCORES, else auto."""
    return _SCORES.get()


@torch.compiler.disable
def backend(t: torch.Tensor) -> str:
    """'cutile', 'emulator' or 'reference' for an op on tensor t (see the module docstring)."""
    asked = requested()
    if asked == "reference":
        return "reference"
    gpu = t.is_cuda and cutile_available()
    if asked == "cutile" and not gpu:
        raise KernelUnavailable("kernel backend 'cutile' asked for, but cuda.tile or a CUDA tensor is missing "
                           "(use 'emulator' to run the kernel source on the CPU)")
    if asked == "emulator" and t.is_cuda:
        raise KernelUnavailable("kernel backend 'emulator' runs on CPU tensors; these are on the GPU")
    if asked == "auto":
        return "cutile" if gpu else "reference"
    return asked


def per_loop_kernels(name: str) -> bool:
    """Where neither looped-block kernel can run a model (rope, the learned gate, a GPT-L), use
    the per-loop kernels (attention, halting update) only when they were asked for by name:
    under `auto` the reference runs instead, because the per-loop path measured slower than it
    (4x eager at T = 99 and T = 303 on the H200, bench/results/kernels-h200.json, 2026-12-01)."""
    return name == "emulator" or (name == "cutile" and requested() == "cutile")


# The model asks `backend` once per forward, outside its loop, and passes the answer down: a
# decision made inside the loop would put an environment read (and a graph break under
# torch.compile) into every loop. `kernel` below means: 'cutile' or 'emulator'.

def _kernel(name: str) -> bool:
    return name != "reference"


def entropy(logits: torch.Tensor, name: str) -> torch.Tensor:
    if _kernel(name) and halting.supported(logits.shape[-1]):
        return halting.entropy_cutile(logits)
    return halting.entropy_reference(logits)


def halting_update(logits, new_state, state, active, steps, threshold, name: str):
    if _kernel(name) and halting.supported(logits.shape[-1]):
        return halting.halting_update_cutile(logits, new_state, state, active, steps, threshold)
    return halting.halting_update_reference(logits, new_state, state, active, steps, threshold)


def loop_attention(q, k, v, sig, plen, bias, *, window, clip, prefix, name: str):
    if _kernel(name) and attention.supported(q.shape[-1]):
        return attention.loop_attention_cutile(q, k, v, sig, plen, bias, window=window, clip=clip, prefix=prefix)
    return attention.loop_attention_reference(q, k, v, sig, plen, bias, window=window, clip=clip, prefix=prefix)


def looped_block_supported(B: int, T: int, D: int, H: int, V: int) -> bool:
    return _looped.supported(B, T, D, H, V) or _tiled.supported(B, T, D, H, V)


def looped_block(x0, sig, plen, nreal, thr, w: Weights, **kw):
    """All loops of the shared block: the persistent kernel (one launch) where a block holds the
    sequences (T <= 128), else the tiled kernel (one launch per loop); cuTile, or the emulator on
    CPU tensors. The tiled kernel computes fp16 scores unless asked for others (`scores`); with
    "tf32" or "fp16" asked for it runs every length (the persistent one has no such option). Call only
    where `backend` gave a kernel backend and `looped_block_supported` holds."""
    B, T, D = x0.shape
    H, V = w.bias.shape[0], w.wte.shape[0]
    choice = requested_scores()
    if choice not in TILED_ONLY and _looped.supported(B, T, D, H, V):
        return _looped.looped_block_cutile(x0, sig, plen, nreal, thr, w, **kw)
    if choice in TILED_ONLY and not _tiled.supported(B, T, D, H, V):
        raise KernelUnavailable(f"{choice} scores run on the tiled looped block, which does not take D={D}, H={H}, V={V}")
    return _tiled.looped_tiled_cutile(x0, sig, plen, nreal, thr, w, scores="fp16" if choice == "auto" else choice, **kw)
