"""tinyllm/engine/adjoints.py: the engine's cheaper gradient sums — ScatterGrad for indexing,
in-place accumulation into buffers the backward pass owns — give the gradients a plain sum
gives, and never let two tensors share one gradient array.
"""

import numpy as np


def test_slices_of_one_tensor_share_one_gradient_buffer():
    import tinyllm as tl

    rng = np.random.default_rng(3)
    x = tl.Tensor(rng.standard_normal((3, 2, 4)), requires_grad=True)
    a, b, c = (rng.standard_normal((2, 4)) for _ in range(3))
    q, k, v = x[0], x[1], x[2]
    loss = (
        (q * tl.Tensor(a)).sum()
        + (k * tl.Tensor(b)).sum()
        + (v * tl.Tensor(c)).sum()
        + (x[0] * tl.Tensor(c)).sum()
    )  # the first slice taken twice
    loss.backward()
    np.testing.assert_allclose(x.grad, np.stack([a + c, b, c]), rtol=1e-14)


def test_repeated_integer_indices_and_slices_accumulate():
    import tinyllm as tl

    x = tl.Tensor(np.arange(5.0), requires_grad=True)
    y = x[np.array([0, 0, 3])].sum() + x[1:3].sum() * 2 + x[::2].sum() + (x * 1.0).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2 + 1 + 1, 2 + 1, 2 + 1 + 1, 1 + 1, 1 + 1])


def test_gradients_never_share_memory():
    """z = x + y hands the same adjoint to x and y; summed adjoints are added into in place.
    After two backward passes (accumulation), each leaf has its own, correct gradient."""
    import tinyllm as tl

    x = tl.Tensor(np.ones(3), requires_grad=True)
    y = tl.Tensor(np.ones(3), requires_grad=True)
    for _ in range(2):
        ((x + y) * 2.0 + x * 3.0 + x * 4.0 + x[np.array([0, 0])].sum()).sum().backward()
    assert not np.shares_memory(x.grad, y.grad)
    # per pass: 2 + 3 + 4 everywhere, and x[0] twice in a scalar broadcast over 3 elements
    np.testing.assert_array_equal(x.grad, 2 * np.array([2 + 3 + 4 + 2 * 3, 9, 9]))
    np.testing.assert_array_equal(y.grad, [4, 4, 4])
