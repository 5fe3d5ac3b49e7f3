"""One tolerance table per dtype and one comparison whose message names op, shape and dtype
(the verifier's kernel checks, the tests and the benchmarks all use it)."""
from __future__ import annotations

import torch

# (rtol, atol) of a kernel against its reference, by the dtype the kernel computes in
TOLERANCE = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (1e-4, 1e-4),   # fp32 (tf32 matrix units on the GPU)
    torch.bfloat16: (2e-2, 2e-2),  # bf16 operands, fp32 accumulation
    torch.float16: (5e-3, 5e-3),
}


def assert_close(op: str, got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, *, scaled: bool = False,
                 **shape) -> None:
    """Fail with op, shape and dtype in the message; NaN never passes; every element must exist.
    `scaled`: atol is relative to max |want| — for composites (a whole block and its head) whose
    bf16 rounding errors grow with the magnitude of the row's dot products, not of each element
    (logits of size 16 have a bf16 ulp of 0.125)."""
    rtol, atol = TOLERANCE[dtype]
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    if scaled and want.numel():
        atol *= max(1.0, float(want.abs().max()))
    where = f"{op} {shape} {str(dtype).removeprefix('torch.')}"
    if got.shape != want.shape:
        raise AssertionError(f"{where}: shape {tuple(got.shape)} != {tuple(want.shape)}")
    if torch.isnan(got).any():
        raise AssertionError(f"{where}: {int(torch.isnan(got).sum())} NaN element(s) (unwritten or NaN-producing)")
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=False,
                               msg=lambda m: f"{where}: {m}")


def mismatch(op: str, got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, *, scaled: bool = False,
             **shape) -> str | None:
    """`assert_close` as a value: None when close, else its message."""
    try:
        assert_close(op, got, want, dtype, scaled=scaled, **shape)
    except AssertionError as e:
        return str(e).splitlines()[0][:300]
    return None
