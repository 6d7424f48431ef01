"""Module bookkeeping and the containers, against PyTorch's documented behaviour.

Expectations are PyTorch's semantics stated directly (what torch.nn.Module documents), and —
when PyTorch is installed — the same construction done in torch.nn, compared name by name.
"""

from collections import OrderedDict

import numpy as np
import pytest

from tinyllm import nn
from tinyllm.engine import Tensor


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.register_buffer("running", Tensor(np.zeros(2, np.float32)))
        self.register_buffer("mask", np.tril(np.ones((3, 3), np.float32)), persistent=False)


def test_persistent_buffers_are_saved_and_non_persistent_are_not():
    m = WithBuffers()
    sd = m.state_dict()
    assert list(sd) == ["running", "lin.weight", "lin.bias"]
    assert isinstance(sd["running"], np.ndarray)  # state dicts hold arrays
    assert [n for n, _ in m.named_buffers()] == ["running", "mask"]
    assert len(list(m.buffers())) == 2
    assert "running" not in dict(m.named_parameters())
    # loading needs only the persistent ones, and fills the buffer in place
    src = WithBuffers()
    src.running.data[...] = [3.0, 4.0]
    buf = m.running
    m.load_state_dict(src.state_dict())
    assert m.running is buf
    np.testing.assert_array_equal(m.running.data, [3.0, 4.0])


def test_assigning_to_a_buffer_name_replaces_the_buffer_and_keeps_persistence():
    m = WithBuffers()
    m.mask = np.zeros((3, 3), np.float32)
    assert "mask" in dict(m.named_buffers()) and "mask" not in m.state_dict()
    m.running = Tensor(np.ones(2, np.float32))
    np.testing.assert_array_equal(m.state_dict()["running"], [1.0, 1.0])
    with pytest.raises(TypeError, match="buffer 'running'"):
        m.running = 3


def test_buffers_are_cast_by_to_and_tensor_buffers_keep_identity():
    m = WithBuffers()
    buf = m.running
    m.to(np.float64)
    assert m.running is buf and m.running.dtype == np.float64
    assert m.mask.dtype == np.float64 and m.lin.weight.dtype == np.float64
    m.to("cpu")  # the only device
    with pytest.raises(ValueError, match="cuda"):
        m.to("cuda")


def test_register_buffer_and_parameter_reject_bad_input():
    m = nn.Module()
    with pytest.raises(KeyError, match="'.'"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="register_buffer"):
        m.register_buffer("x", [1.0, 2.0])
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("w", Tensor(np.zeros(1, np.float32)))
    m.register_parameter("w", nn.Parameter(np.zeros(1)))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("w", np.zeros(1))
    with pytest.raises(TypeError, match="as parameter 'w'"):
        m.w = Tensor(np.zeros(1, np.float32))  # a parameter slot takes a Parameter or None
    m.w = None
    assert list(m.parameters()) == []


def test_weight_tying_by_assignment_counts_one_parameter():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(5, 3)
            self.lm_head = nn.Linear(3, 5, bias=False)
            self.lm_head.weight = self.wte.weight

    m = LM()
    assert m.lm_head.weight is m.wte.weight
    assert len(list(m.parameters())) == 1 and m.num_parameters() == 15
    assert list(m.state_dict()) == ["wte.weight", "lm_head.weight"]
    names = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    assert names == ["wte.weight", "lm_head.weight"]


def test_module_walks_children_modules_and_parameters_recurse():
    m = nn.Sequential(nn.Linear(1, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1, bias=False)))
    assert [n for n, _ in m.named_children()] == ["0", "1"]
    assert [n for n, _ in m.named_modules()] == ["", "0", "1", "1.0", "1.1"]
    assert len(list(m.children())) == 2 and len(list(m.modules())) == 5
    assert list(m.parameters(recurse=False)) == []
    assert len(list(m[0].parameters(recurse=False))) == 2
    assert m.get_submodule("1.1") is m[1][1]
    with pytest.raises(AttributeError, match="'7'"):
        m.get_submodule("1.7")


def test_requires_grad_and_zero_grad():
    m = nn.Linear(2, 2)
    assert m.requires_grad_(False) is m
    assert not any(p.requires_grad for p in m.parameters())
    m.requires_grad_()
    assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError, match="bool"):
        m.train("yes")


def test_apply_with_init_reaches_every_linear():
    m = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))

    def init(mod):
        if isinstance(mod, nn.Linear):
            nn.init.zeros_(mod.weight)

    m.apply(init)
    assert all(np.all(mod.weight.data == 0) for mod in (m[0], m[2]))


def test_module_list_append_extend_insert_del_and_renumbering():
    a, b, c, d = (nn.Linear(1, 1) for _ in range(4))
    ml = nn.ModuleList([a])
    ml.append(b).extend([c])
    ml.insert(1, d)  # a d b c
    assert list(ml) == [a, d, b, c] and len(ml) == 4
    assert [n for n, _ in ml.named_children()] == ["0", "1", "2", "3"]
    assert ml[-1] is c and ml[1:3][0] is d and isinstance(ml[1:3], nn.ModuleList)
    del ml[0]  # d b c, renumbered
    assert ml[0] is d and list(ml.state_dict())[:2] == ["0.weight", "0.bias"]
    ml[0] = a
    assert ml[0] is a
    ml += [d]
    assert len(ml) == 4 and ml[3] is d
    with pytest.raises(TypeError, match="not a Module"):
        ml.append(3)
    with pytest.raises(IndexError, match="out of range"):
        ml[4]


def test_sequential_positional_ordered_dict_and_slicing():
    s = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.ReLU(), out=nn.Linear(3, 1)))
    assert [n for n, _ in s.named_children()] == ["fc", "act", "out"]
    assert list(s.state_dict()) == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    x = Tensor(np.array([[1.0, -2.0]], np.float32))
    h = np.maximum(x.data @ s.fc.weight.data.T + s.fc.bias.data, 0)
    np.testing.assert_allclose(s(x).data, h @ s.out.weight.data.T + s.out.bias.data, rtol=1e-6)
    head = s[:2]
    assert isinstance(head, nn.Sequential) and [n for n, _ in head.named_children()] == [
        "fc",
        "act",
    ]
    assert s[-1] is s.out and len(s) == 3
    del s[1]
    assert [n for n, _ in s.named_children()] == ["fc", "out"]


def test_module_dict_update_pop_len_iter():
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md.update([("b", nn.ReLU())])
    md["c"] = nn.Identity()
    assert list(md) == ["a", "b", "c"] and len(md) == 3
    assert isinstance(md.pop("b"), nn.ReLU) and "b" not in md
    with pytest.raises(KeyError, match="no module 'z'"):
        md["z"]
    with pytest.raises(KeyError, match="'.'"):
        md["x.y"] = nn.ReLU()


def test_load_state_dict_accepts_tensors_and_returns_named_keys():
    m = nn.Linear(2, 2)
    sd = {k: Tensor(np.full(v.shape, 0.5, np.float32)) for k, v in m.state_dict().items()}
    result = m.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(m.weight.data, np.full((2, 2), 0.5))


# ---- the same trees in torch.nn -------------------------------------------------------------


def test_names_match_torch():
    torch = pytest.importorskip("torch")

    def build(ns):
        class Net(ns.Module):
            def __init__(self):
                super().__init__()
                self.blocks = ns.ModuleList([ns.Linear(2, 2) for _ in range(2)])
                self.blocks.insert(0, ns.Linear(2, 2, bias=False))
                self.heads = ns.ModuleDict({"x": ns.Linear(2, 1)})
                self.seq = ns.Sequential(OrderedDict(a=ns.Linear(2, 2), b=ns.ReLU()))
                self.out = ns.Linear(2, 2, bias=False)
                self.out.weight = self.blocks[1].weight
                self.register_buffer("keep", ones(2, ns))
                self.register_buffer("drop", ones(2, ns), persistent=False)

        return Net()

    def ones(n, ns):
        return torch.ones(n) if ns is torch.nn else np.ones(n, np.float32)

    ours, theirs = build(nn), build(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]


def test_layers_take_torch_device_and_dtype_keywords():
    lin = nn.Linear(2, 3, bias=False, device="cpu", dtype=None)  # None: the default dtype
    assert lin.weight.dtype == np.float32 and lin.bias is None
    assert nn.Embedding(4, 2, device="cpu").weight.shape == (4, 2)
    ln = nn.LayerNorm(3, bias=False, device="cpu")
    assert ln.bias is None and "bias" not in ln.state_dict()
    with pytest.raises(ValueError, match="'cuda:0'"):
        nn.Linear(2, 2, device="cuda:0")


def test_activation_modules_match_their_formulas_and_torch(rng):
    x = rng.standard_normal((3, 4))
    s = 1 / (1 + np.exp(-x))
    e = np.exp(x - x.max(0, keepdims=True))
    cases = {
        "Sigmoid": (nn.Sigmoid(), s),
        "SiLU": (nn.SiLU(), x * s),
        "Softmax": (nn.Softmax(dim=0), e / e.sum(0, keepdims=True)),
        "LogSoftmax": (nn.LogSoftmax(dim=0), np.log(e / e.sum(0, keepdims=True))),
    }
    for name, (module, expected) in cases.items():
        np.testing.assert_allclose(module(Tensor(x)).data, expected, rtol=1e-12, err_msg=name)
    torch = pytest.importorskip("torch")
    for name, (module, _) in cases.items():
        theirs = getattr(torch.nn, name)(**({"dim": 0} if "Softmax" in name else {}))
        np.testing.assert_allclose(
            module(Tensor(x)).data, theirs(torch.tensor(x)).numpy(), rtol=1e-12, err_msg=name
        )


def test_deepcopy_keeps_ties_and_buffers_but_shares_nothing():
    import copy

    m = WithBuffers()
    m.tied = nn.Linear(2, 2, bias=False)
    m.tied.weight = m.lin.weight
    c = copy.deepcopy(m)  # a frozen reference model (DPO, RLHF) starts this way
    assert c.tied.weight is c.lin.weight and c.lin.weight is not m.lin.weight
    assert list(c.state_dict()) == list(m.state_dict())
    assert "mask" not in c.state_dict()  # still non-persistent
    c.lin.weight.data[...] = 0
    assert np.abs(m.lin.weight.data).sum() > 0
