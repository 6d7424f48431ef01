"""Tensor parallelism (sim/tensor_parallel.py), in NumPy algebra and under `mpirun -n 2` / `-n 4`.

The truth, stated independently of the code under test:
* the algebra of Megatron's split, in plain NumPy: column blocks of the first matrix and row
  blocks of the second, summed over ranks, give the dense MLP; attention on each rank's heads,
  concatenated, gives dense attention — so the q, k, v rows of head h must be rows
  [h·hs, (h+1)·hs) of each third of the fused c_attn weight;
* under mpirun, the single-process GPT of the same seed (float64: only summation order differs,
  ~1e-16): logits, loss, every gradient, three AdamW steps; float32 to ~1e-5; with dropout 0.2
  too (one process's masks, each rank keeping its heads' part), with and without checkpointing;
* bytes: two all-reduces of the (B, T, E) activations per layer in forward and two in backward
  (Shoeybi et al. 2019, §3), each sending 2(n−1)/n of its bytes per rank in a ring; with
  activation checkpointing the recomputed forward all-reduces twice more;
* memory: the parameters a rank holds, counted from the architecture (split matrices and their
  column biases / n, LayerNorms and row-parallel biases whole, embeddings whole).
"""

import math

import numpy as np
import pytest
from mpi_helpers import run_mpi

import tinyllm
from sim.tensor_parallel import merge_state_dicts, qkv_rows, shard_state_dict
from tinyllm.models import GPT, GPTConfig

_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def dense_state(n_head=4, n_embd=16, n_layer=1, seed=0):
    tinyllm.manual_seed(seed)
    cfg = GPTConfig(block_size=8, vocab_size=32, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    model = GPT(cfg)
    # Random biases too (GPT-2 initializes them to zero, which would hide a wrong bias split).
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data[...] = rng.standard_normal(p.shape) * 0.1
    return cfg, {k: np.array(v, dtype=np.float64) for k, v in model.state_dict().items()}


def test_qkv_rows_are_the_heads_of_each_rank():
    e, h, n = 16, 4, 2
    hs = e // h
    for rank in range(n):
        heads = range(rank * h // n, (rank + 1) * h // n)
        want = [part * e + head * hs + i for part in range(3) for head in heads for i in range(hs)]
        assert qkv_rows(e, h, rank, n).tolist() == want


@pytest.mark.parametrize("n", [1, 2, 4])
def test_mlp_split_sums_to_the_dense_mlp(n):
    cfg, state = dense_state()
    x = np.random.default_rng(1).standard_normal((2, 8, cfg.n_embd))
    p = "transformer.h.0.mlp."
    hidden = gelu(x @ state[p + "c_fc.weight"].T + state[p + "c_fc.bias"])
    dense = hidden @ state[p + "c_proj.weight"].T + state[p + "c_proj.bias"]
    total = 0
    for r in range(n):
        s = shard_state_dict(state, cfg.n_head, r, n)
        y_r = gelu(x @ s[p + "c_fc.weight"].T + s[p + "c_fc.bias"])  # column-parallel
        total = total + y_r @ s[p + "c_proj.weight"].T  # row-parallel partial
    total = total + s[p + "c_proj.bias"]  # bias once, after g
    np.testing.assert_allclose(total, dense, rtol=1e-12, atol=1e-12)


def causal_attention(q, k, v):
    """q, k, v (B, h, T, hs) → (B, T, h·hs), softmax(QKᵀ/√hs + causal mask) V per head."""
    t, hs = q.shape[-2], q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(hs)
    scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    y = (w / w.sum(-1, keepdims=True)) @ v
    return np.swapaxes(y, 1, 2).reshape(q.shape[0], t, -1)


def heads(qkv, n_head):
    b, t, three_e = qkv.shape
    e = three_e // 3
    q, k, v = (
        qkv[..., i * e : (i + 1) * e].reshape(b, t, n_head, e // n_head).transpose(0, 2, 1, 3)
        for i in range(3)
    )
    return q, k, v


@pytest.mark.parametrize("n", [1, 2, 4])
def test_attention_split_by_heads_sums_to_dense_attention(n):
    cfg, state = dense_state()
    x = np.random.default_rng(2).standard_normal((2, 8, cfg.n_embd))
    p = "transformer.h.0.attn."
    qkv = x @ state[p + "c_attn.weight"].T + state[p + "c_attn.bias"]
    dense = causal_attention(*heads(qkv, cfg.n_head)) @ state[p + "c_proj.weight"].T
    total = 0
    for r in range(n):
        s = shard_state_dict(state, cfg.n_head, r, n)
        qkv_r = x @ s[p + "c_attn.weight"].T + s[p + "c_attn.bias"]  # (B, T, 3E/n)
        y_r = causal_attention(*heads(qkv_r, cfg.n_head // n))  # this rank's heads
        total = total + y_r @ s[p + "c_proj.weight"].T
    np.testing.assert_allclose(total, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_state_dict_round_trip(n):
    cfg, state = dense_state(n_layer=2)
    shards = [shard_state_dict(state, cfg.n_head, r, n) for r in range(n)]
    back = merge_state_dicts(shards, cfg.n_head)
    assert list(back) == list(state)
    for k in state:
        assert np.array_equal(back[k], state[k]), k


def test_heads_must_divide():
    _, state = dense_state(n_head=4)
    with pytest.raises(ValueError, match="n_head 4 is not divisible by 3"):
        shard_state_dict(state, 4, 0, 3)


# ---- under mpirun -----------------------------------------------------------------------------


def params_per_rank(c, n):
    """Parameters one tensor-parallel rank holds (GPT with biases, one pipeline stage)."""
    e = c["n_embd"]
    # c_attn weight and bias, attn c_proj weight, c_fc weight and bias, mlp c_proj weight
    split = 3 * e * e + 3 * e + e * e + 4 * e * e + 4 * e + 4 * e * e
    whole = 4 * e + 2 * e  # ln_1, ln_2, 2 row biases
    embeddings = c["vocab_size"] * e + c["block_size"] * e + 2 * e  # wte, wpe, ln_f
    return c["n_layer"] * (split // n + whole) + embeddings


@pytest.fixture(scope="module", params=[2, 4])
def tp_run(request):
    n = request.param
    return n, run_mpi("tp_worker.py", n, timeout=120).results()


def test_tp_equals_one_process(tp_run):
    n, ranks = tp_run
    assert [r["rank"] for r in ranks] == list(range(n))
    for r in ranks:
        for key in ("plain", "ckpt"):
            assert r[key]["logits_err"] < 1e-12
            assert r[key]["loss_err"] < 1e-12
            assert r[key]["grad_err"] < 1e-12
        for key in ("dropout", "dropout_ckpt"):  # same masks as one process, heads split
            d = r[key]
            assert d["masks_used"], d  # dropout really changed the output
            assert d["logits_err"] < 1e-12 and d["loss_err"] < 1e-12 and d["grad_err"] < 1e-12, d
        t64, t32 = r["train64"], r["train32"]
        assert t64["loss_rel_err"] < 1e-12 and t64["param_err"] < 1e-12, t64
        assert t32["loss_rel_err"] < 1e-5 and t32["param_err"] < 1e-4, t32


def test_tp_shards_and_state_dict_conversion(tp_run):
    n, ranks = tp_run
    e = ranks[0]["n_embd"]
    for r in ranks:
        shapes = r["plain"]["param_shapes"]
        assert shapes["transformer.h.0.attn.c_attn.weight"] == [3 * e // n, e]
        assert shapes["transformer.h.0.attn.c_proj.weight"] == [e, e // n]
        assert shapes["transformer.h.0.mlp.c_fc.weight"] == [4 * e // n, e]
        assert shapes["transformer.h.0.mlp.c_proj.weight"] == [e, 4 * e // n]
        assert shapes["transformer.h.0.mlp.c_proj.bias"] == [e]
        assert r["gathered_equal"] and r["shard_equal"] and r["reloaded_logits_equal"]


def test_tp_bytes_per_layer(tp_run):
    n, ranks = tp_run
    c = ranks[0]
    layers = c["n_layer"]
    activation = c["batch"] * c["block_size"] * c["n_embd"] * c["itemsize"]  # B·T·E bytes
    ring = 2 * (n - 1) / n * activation  # one all-reduce
    for r in ranks:
        plain, ckpt = r["plain"], r["ckpt"]
        assert plain["forward"]["all_reduces"] == 2 * layers
        assert plain["backward"]["all_reduces"] == 2 * layers
        assert plain["forward"]["bytes"] / layers == 2 * ring
        assert plain["backward"]["bytes"] / layers == 2 * ring
        assert ckpt["forward"]["bytes"] / layers == 2 * ring
        assert ckpt["backward"]["bytes"] / layers == 4 * ring  # recomputation: 2 more
        assert r["train64"]["bytes_by_axis"]["tp"] == layers * 4 * ring


def test_tp_memory_per_rank(tp_run):
    n, ranks = tp_run
    for r in ranks:
        for key, itemsize in (("train64", 8), ("train32", 4)):
            mem, psi = r[key]["memory"], params_per_rank(r, n)
            assert mem["parameters"] == itemsize * psi
            assert mem["gradients"] == itemsize * psi
            assert mem["optimizer_states"] == 2 * itemsize * psi


def test_compare_rows_for_train_zero(tp_run):
    n, ranks = tp_run
    rows = ranks[0]["compare"]
    assert all(r["compare"] == rows for r in ranks)  # every rank gets the same rows
    assert [r["strategy"] for r in rows] == [f"tp{n}", f"pp{n} 1f1b m={n}"]
    if n > ranks[0]["n_layer"]:
        assert "cannot fill" in rows[1]["skipped"]
        rows = rows[:1]
    for row in rows:
        assert row["memory"]["parameters"] == row["theory"]["parameters"]
        assert row["memory"]["optimizer_states"] == row["theory"]["optimizer_states"]
        # everything rank 0 sent is the formulas' traffic plus the 8-byte gradient-norm sum
        assert row["bytes_per_step"] == row["theory_bytes"] + row["bytes_by_axis"]["model_parallel"]
        assert row["simulated_seconds"] > 0 and row["loss"] > 0
