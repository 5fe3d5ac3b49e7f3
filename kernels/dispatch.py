"""Pick the cuTile kernel or its PyTorch reference for each op.

cuTile is used when `cuda.tile` imports, the tensors are on a CUDA device, and the shape is one
the kernel supports; otherwise the reference runs. `LOOPLM_KERNELS=reference|cutile` forces one
(`cutile` raises if it cannot run, rather than silently falling back).
"""
from __future__ import annotations

import functools
import os

import torch

from .halting import entropy_reference, halting_update_reference


@functools.cache
def cutile_available() -> bool:
    try:
        import cuda.tile  # noqa: F401
    except Exception:  # any import failure means: no cuTile here
        return False
    return torch.cuda.is_available()


def backend(t: torch.Tensor) -> str:
    """'cutile' or 'reference' for an op on tensor t."""
    forced = os.environ.get("LOOPLM_KERNELS", "").strip().lower()
    if forced == "reference":
        return "reference"
    ok = t.is_cuda and cutile_available()
    if forced == "cutile":
        if not ok:
            raise RuntimeError("LOOPLM_KERNELS=cutile, but cuda.tile or a CUDA tensor is missing")
        return "cutile"
    if forced:
        raise ValueError(f"LOOPLM_KERNELS must be 'reference' or 'cutile', not {forced!r}")
    return "cutile" if ok else "reference"


def entropy(logits: torch.Tensor) -> torch.Tensor:
    if backend(logits) == "cutile":
        from .halting import entropy_cutile
        return entropy_cutile(logits)
    return entropy_reference(logits)


def halting_update(logits, new_state, state, active, steps, threshold):
    if backend(logits) == "cutile":
        from .halting import halting_update_cutile
        return halting_update_cutile(logits, new_state, state, active, steps, threshold)
    return halting_update_reference(logits, new_state, state, active, steps, threshold)
