"""Hypothesis strategies shared by the engine's property tests.

Values. Finite differences only measure a derivative where the function is smooth within ±ε
of the point, so — as minitorch does — values are drawn where every op is differentiable:

* `smooth(lo, hi)`   any float in [lo, hi]: for ops that are smooth everywhere;
* `odd_grid(r)`      (2i+1)/16 in [−r, r]: never 0, so relu and abs stay off their kink;
* `even_grid(r)`     2i/16: never equal to an odd-grid value, so maximum(odd, even) has no tie
                     and clamp bounds drawn from it never touch a value;
* unique odd-grid arrays (`unique=True`): every pair differs by ≥ 1/8, so max has no tie.

Layouts. Every array strategy may return a non-contiguous view — transposed, strided along the
last axis, or reversed — because ops and kernels must not assume C order. gradcheck perturbs
the view in place, which works for any layout.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyllm import Tensor


def smooth(lo=-2.0, hi=2.0):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def odd_grid(r=2.0):
    n = int(r * 8)
    return st.integers(-n, n - 1).map(lambda i: (2 * i + 1) / 16)


def even_grid(r=2.0):
    n = int(r * 8)
    return st.integers(-n, n).map(lambda i: 2 * i / 16)


def positive(lo=0.5, hi=2.0):
    return smooth(lo, hi)


LAYOUTS = ("contiguous", "transposed", "strided", "reversed")


@st.composite
def arrays(draw, shape, elements=None, unique=False, layout=None):
    """A float64 array of `shape`, possibly a non-contiguous view (see LAYOUTS)."""
    shape = tuple(shape)
    elements = smooth() if elements is None else elements
    layout = layout or draw(st.sampled_from(LAYOUTS))

    def base(s):
        return draw(hnp.arrays(np.float64, s, elements=elements, unique=unique, fill=st.nothing()))

    if layout == "transposed" and len(shape) >= 2:
        return base(shape[::-1]).T  # strides reversed
    if layout == "strided" and len(shape) >= 1:
        wide = base(shape[:-1] + (2 * shape[-1],))
        return wide[..., ::2]  # every other column
    if layout == "reversed" and len(shape) >= 1:
        return base(shape)[..., ::-1]  # negative stride
    return base(shape)


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable(num_shapes=2, min_dims=0, max_dims=3, max_side=3):
    """Shapes that broadcast together (`.input_shapes`, `.result_shape`)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    )


@st.composite
def axes(draw, ndim):
    """None, one axis (possibly negative) or a tuple of distinct axes."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)))


def leaf(array):
    """A float64 leaf that requires grad, keeping the array's (possibly strided) layout."""
    return Tensor(array, requires_grad=True)
