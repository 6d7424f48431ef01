"""float(t) and int(t) of a one-element tensor, as in PyTorch; many elements is an error."""

import numpy as np
import pytest

import tinyllm


def test_float_and_int_of_one_element():
    t = tinyllm.tensor([[2.75]])
    assert float(t) == 2.75 and isinstance(float(t), float)
    assert int(t) == 2  # truncation toward zero, like int(2.75)
    assert int(tinyllm.tensor(-2.75)) == -2
    assert float(tinyllm.tensor(np.array(3, dtype=np.int64))) == 3.0
    loss = (tinyllm.tensor([1.0, 2.0], requires_grad=True) ** 2).sum()
    assert float(loss) == 5.0


@pytest.mark.parametrize("convert", [float, int])
def test_many_elements_is_a_clear_error(convert):
    with pytest.raises(
        RuntimeError, match=rf"{convert.__name__}\(\) of a tensor needs exactly one"
    ):
        convert(tinyllm.tensor([1.0, 2.0]))
