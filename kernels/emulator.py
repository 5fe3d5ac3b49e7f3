"""A CPU emulator of the cuda.tile subset our kernels use, so the same kernel source runs
block by block on torch tensors where no GPU is present.

It follows cuTile's documented semantics where bugs live: `load`/`store` index the *tile
space* (tile indices, never element offsets: bug 7); tile shapes and `arange` sizes must be
powers of two (bug 8: raised as TileTypeError); out-of-bounds elements take the padding
mode's value, and UNDETERMINED padding is poisoned with NaN so that a kernel relying on it
fails loudly (bugs 5, 6); `max`/`min`/`maximum` ignore NaN inputs as cuTile's default does.
It checks a kernel's logic, not its code generation: the AOT compile and the GPU tests do that.
"""
import builtins
import contextvars
import enum
import math

import torch

float32, int32 = torch.float32, torch.int32    # the tile dtypes our kernels name
tfloat32 = "tfloat32"   # held as float32 with the mantissa rounded to TF32's 10 bits (see astype)

_block = contextvars.ContextVar("block", default=(0, 0, 0))
_grid = contextvars.ContextVar("grid", default=(1, 1, 1))


class TileTypeError(TypeError):
    """What cuTile's compiler raises for an invalid tile program (e.g. a non-power-of-two shape)."""


class PaddingMode(enum.Enum):
    UNDETERMINED = "undetermined"
    ZERO = "zero"
    NEG_ZERO = "neg_zero"
    NAN = "nan"
    POS_INF = "pos_inf"
    NEG_INF = "neg_inf"


_PAD = {PaddingMode.UNDETERMINED: math.nan, PaddingMode.ZERO: 0.0, PaddingMode.NEG_ZERO: -0.0,
        PaddingMode.NAN: math.nan, PaddingMode.POS_INF: math.inf, PaddingMode.NEG_INF: -math.inf}


class RoundingMode(enum.Enum):
    """The rounding modes kernels name; the emulator computes every one exactly (an approximate
    `exp` or `tanh` on the GPU is within its documented error of the emulator's value)."""
    RN = "nearest_even"
    FULL = "full"
    APPROX = "approx"


class _Constant:
    """`ct.Constant[int]` as an annotation: the emulator only needs it to exist."""

    def __getitem__(self, item):
        return item


Constant = _Constant()




def launch(grid, body, args) -> None:
    """Run `body(*args)` once per block of the grid, in order."""
    grid = tuple(grid) + (1,) * (3 - len(grid))
    token = _grid.set(grid)
    try:
        for z in range(grid[2]):
            for y in range(grid[1]):
                for x in range(grid[0]):
                    t = _block.set((x, y, z))
                    try:
                        body(*args)
                    finally:
                        _block.reset(t)
    finally:
        _grid.reset(token)


def bid(axis: int) -> int:
    return _block.get()[axis]




def static_iter(iterable):
    """Compile-time unrolling in cuTile; plain iteration here."""
    return iterable


def cdiv(a, b):
    return -(-a // b)


def _shape(shape) -> tuple:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    for s in shape:
        if s < 1 or s & (s - 1):
            raise TileTypeError(f"tile shape {shape}: dimension {s} is not a power of two")
    return shape


def _region(array, index, shape):
    index = (index,) if isinstance(index, int) else tuple(index)
    if len(index) != array.dim() or len(shape) != array.dim():
        raise TileTypeError(f"index {index} / shape {shape} do not match a {array.dim()}-d array")
    starts = [int(i) * s for i, s in zip(index, shape)]        # tile index -> element offset
    if any(st >= n or st < 0 for st, n in zip(starts, array.shape)):
        raise IndexError(f"tile {index} of shape {shape} lies entirely outside {tuple(array.shape)} (undefined)")
    # this module defines its own min/max/sum (tile reductions), hence builtins.min here
    src = tuple(slice(st, builtins.min(st + s, n)) for st, s, n in zip(starts, shape, array.shape))
    dst = tuple(slice(0, builtins.min(st + s, n) - st) for st, s, n in zip(starts, shape, array.shape))
    return src, dst


def load(array, index, shape, *, padding_mode=PaddingMode.UNDETERMINED, order=None, latency=None,
         allow_tma=None, check_bounds=True, **_):
    if shape == ():                                   # a single element: a 0-d tile
        return load(array, index, (1,) * array.dim(), padding_mode=padding_mode).reshape(())
    shape = _shape(shape)
    if order not in (None, "C") and tuple(order) != tuple(range(len(shape))):
        raise NotImplementedError("the emulator supports C order only")
    src, dst = _region(array, index, shape)
    fill = _PAD[padding_mode] if array.is_floating_point() else 0
    tile = torch.full(shape, fill, dtype=array.dtype)
    tile[dst] = array[src]
    return tile


def store(array, index, tile, **_):
    tile = torch.as_tensor(tile)
    if tile.dim() == 0:
        tile = tile.reshape((1,) * array.dim())
    shape = _shape(tuple(tile.shape))
    src, dst = _region(array, index, shape)
    array[src] = tile[dst].to(array.dtype)


def arange(size, *, dtype, start=0, step=1):
    _shape((size,))
    return torch.arange(start, start + size * step, step, dtype=dtype)[:size]


def full(shape, fill_value, dtype):
    return torch.full(_shape(shape), fill_value, dtype=dtype)






def _t(x):
    return x if isinstance(x, torch.Tensor) else torch.tensor(x)


def where(cond, x, y):
    cond = _t(cond)
    if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
        return torch.where(cond, torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    dtype = (x if isinstance(x, torch.Tensor) else y).dtype
    return torch.where(cond, _t(x).to(dtype), _t(y).to(dtype))


def _nan_to(x, value):
    return torch.where(torch.isnan(x), torch.full_like(x, value), x) if x.is_floating_point() else x


def max(x, axis=None, *, keepdims=False, **_):
    x = _nan_to(_t(x), -math.inf)
    return x.amax() if axis is None else x.amax(dim=axis, keepdim=keepdims)




def sum(x, axis=None, *, keepdims=False, **_):
    x = _t(x)
    return x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)


def maximum(x, y, **_):
    return torch.fmax(_t(x), _t(y))


def minimum(x, y, **_):
    return torch.fmin(_t(x), _t(y))


def exp(x, **_):
    return torch.exp(_t(x))


def exp2(x, **_):
    return torch.exp2(_t(x))


def log(x, **_):
    return torch.log(_t(x))


def truediv(x, y, **_):
    return torch.true_divide(_t(x), _t(y))






def rsqrt(x, **_):
    return torch.rsqrt(_t(x))


def tanh(x, **_):
    return torch.tanh(_t(x))


def abs(x):
    return torch.abs(_t(x))






def astype(x, dtype, **_):
    if dtype == tfloat32:    # round to nearest even at mantissa bit 13 (inf and NaN stay so)
        x = _t(x).to(torch.float32).contiguous()
        bits = x.view(torch.int32)
        bits = (bits + 0xFFF + ((bits >> 13) & 1)) & -(1 << 13)
        return torch.where(torch.isnan(x), x, bits.view(torch.float32))
    return _t(x).to(dtype)


def reshape(x, shape):
    return _t(x).reshape(shape)




def transpose(x, axis0=None, axis1=None):
    x = _t(x)
    return x.transpose(-2, -1) if axis0 is None else x.transpose(axis0, axis1)






def permute(x, axes):
    return _t(x).permute(*axes)


def extract(x, index, shape):
    """The subtile at tile index `index` of a tile split into `shape` pieces (as `load`)."""
    x = _t(x)
    return x[tuple(slice(int(i) * s, (int(i) + 1) * s) for i, s in zip(index, _shape(shape)))]


def mma(x, y, acc, **_):
    """(x @ y) + acc, accumulated in float32 like the tensor cores; keeps acc's dtype."""
    return (torch.matmul(_t(x).float(), _t(y).float()) + acc.float()).to(acc.dtype)




def gather(array, indices, *, mask=None, padding_value=0, check_bounds=True, **_):
    """array[indices...] with broadcasting; out-of-range indices read padding_value."""
    idx = indices if isinstance(indices, tuple) else (indices,)
    idx = torch.broadcast_tensors(*[_t(i).long() for i in idx])
    ok = torch.ones(idx[0].shape, dtype=torch.bool)
    for i, n in zip(idx, array.shape):
        ok &= (i >= 0) & (i < n)
    if mask is not None:
        ok &= _t(mask)
    safe = [torch.where(ok, i, torch.zeros_like(i)) for i in idx]
    return torch.where(ok, array[tuple(safe)], torch.tensor(padding_value, dtype=array.dtype))



