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

The looped-block kernels' attention scores are chosen the same way: `with dispatch.scores("tf32")`,
else `LOOPLM_SCORES`, else "matrix" (the matrices' dtype: bf16 on a GPU). "tf32" runs every
shape on the tiled kernel, whose scores it computes from TF32 queries and fp32 keys.
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
SCORES = ("matrix", "tf32")


class KernelUnavailable(RuntimeError):
    """A backend asked for by name that cannot run here (no silent fallback)."""
_chosen: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("looplm_kernels", default=None)
_scores: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("looplm_scores", default=None)


@functools.cache
def cutile_available() -> bool:
    try:
        import cuda.tile  # noqa: F401
    except Exception:  # any import failure means: no cuTile here
        return False
    return torch.cuda.is_available()


def _checked(name: str, where: str, allowed: tuple[str, ...] = BACKENDS, what: str = "kernel backend") -> str:
    name = name.strip().lower()
    if name not in allowed:
        raise ValueError(f"{where}: {what} must be one of {', '.join(allowed)}, not {name!r}")
    return name


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Run the block with kernel backend `name` (one of BACKENDS)."""
    token = _chosen.set(_checked(name, "dispatch.use"))
    try:
        yield
    finally:
        _chosen.reset(token)


def requested() -> str:
    """The backend asked for: use(...), else LOOPLM_KERNELS, else auto."""
    chosen = _chosen.get()
    if chosen is not None:
        return chosen
    env = os.environ.get("LOOPLM_KERNELS", "")
    return _checked(env, "LOOPLM_KERNELS") if env.strip() else "auto"


@contextlib.contextmanager
def scores(name: str) -> Iterator[None]:
    """Run the looped-block kernels with attention scores `name` (one of SCORES)."""
    token = _scores.set(_checked(name, "dispatch.scores", SCORES, "score precision"))
    try:
        yield
    finally:
        _scores.reset(token)


def requested_scores() -> str:
    """The score precision asked for: scores(...), else LOOPLM_SCORES, else matrix."""
    chosen = _scores.get()
    if chosen is not None:
        return chosen
    env = os.environ.get("LOOPLM_SCORES", "")
    return _checked(env, "LOOPLM_SCORES", SCORES, "score precision") if env.strip() else "matrix"


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
    CPU tensors. With TF32 scores asked for (`scores`), the tiled kernel at every length (the
    persistent one has no such option). Call only where `backend` gave a kernel backend and
    `looped_block_supported` holds."""
    B, T, D = x0.shape
    H, V = w.bias.shape[0], w.wte.shape[0]
    precise = requested_scores() == "tf32"
    if not precise and _looped.supported(B, T, D, H, V):
        return _looped.looped_block_cutile(x0, sig, plen, nreal, thr, w, **kw)
    if precise and not _tiled.supported(B, T, D, H, V):
        raise KernelUnavailable(f"TF32 scores run on the tiled looped block, which does not take D={D}, H={H}, V={V}")
    return _tiled.looped_tiled_cutile(x0, sig, plen, nreal, thr, w, precise_scores=precise, **kw)
