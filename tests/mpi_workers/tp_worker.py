"""MPI worker for tests/sim/test_tensor_parallel.py: Megatron tensor parallelism over all ranks.

Usage: mpirun -n N python tp_worker.py      (N divides the 4 heads: 2 or 4)

Measures, on every rank, against the single-process GPT built from the same seed (float64):
forward logits and loss, every gradient (vs this rank's shard of the reference gradient), the
bytes and number of all-reduces in forward and in backward (with and without activation
checkpointing), the state-dict round trip (gather → load into a plain GPT → same logits), and
three training steps (losses and parameters), also in float32; forward and backward with
dropout 0.2 (plain and checkpointed) against the one-process model from the same seed; and the
TP / PP rows that examples/train_zero.py --compare adds (examples/compare.py).
"""

import sim  # first, so the thread variables are set before NumPy loads

# isort: split

import json
import sys
from pathlib import Path

import numpy as np
from parallel_common import (
    batches,
    local_param_error,
    make_model,
    parallel_run,
    reference_run,
    relative_errors,
)

import tinyllm
from sim.parallel3d import Parallel3D
from sim.tensor_parallel import TPGroup, gather_state_dict, parallelize_gpt, shard_state_dict
from tinyllm.models import GPTConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from compare import compare_rows  # noqa: E402 — the example's module, beside train_zero.py

CONFIG = GPTConfig(block_size=8, vocab_size=32, n_layer=2, n_head=4, n_embd=16)
BATCH = 4


def forward_backward(model, tp, x, y, world):
    """(logits, loss, forward traffic, backward traffic) of one forward + backward."""
    world.stats.reset()
    tp.records.clear()
    logits, loss = model(x, y)
    fwd = {"bytes": world.stats.total.bytes_sent, "all_reduces": len(tp.records)}
    loss.backward()
    bwd = {
        "bytes": world.stats.total.bytes_sent - fwd["bytes"],
        "all_reduces": len(tp.records) - fwd["all_reduces"],
    }
    return logits, loss, fwd, bwd


def main():
    world = sim.init()
    n = world.size
    out = {"rank": world.rank, "itemsize": 8, "batch": BATCH, **CONFIG.to_dict()}
    x, y = batches(CONFIG, BATCH, 1)[0]

    ref = make_model(CONFIG)
    ref_state = {k: np.array(v) for k, v in ref.state_dict().items()}
    ref_logits, ref_loss = ref(x, y)
    ref_loss.backward()
    ref_grads = {name: p.grad for name, p in ref.named_parameters()}
    ref_grads["lm_head.weight"] = ref_grads["transformer.wte.weight"]

    for checkpointing in (False, True):
        tp = TPGroup(world)
        model = parallelize_gpt(make_model(CONFIG), tp)
        model.gradient_checkpointing = checkpointing
        logits, loss, fwd, bwd = forward_backward(model, tp, x, y, world)
        expected = shard_state_dict(ref_grads, CONFIG.n_head, tp.rank, n)
        key = "ckpt" if checkpointing else "plain"
        out[key] = {
            "logits_err": float(np.max(np.abs(logits.data - ref_logits.data))),
            "loss_err": abs(loss.item() - ref_loss.item()),
            "grad_err": max(
                float(np.max(np.abs(p.grad - expected[name])))
                for name, p in model.named_parameters()
            ),
            "param_shapes": {name: list(p.shape) for name, p in model.named_parameters()},
            "forward": fwd,
            "backward": bwd,
        }

    # Dropout (0.2 everywhere, attention probabilities included): the one-process model and
    # the shard, each from the same seed before the forward, must draw the same masks.
    drop_cfg = GPTConfig(**{**CONFIG.to_dict(), "dropout": 0.2})
    ref_d = make_model(drop_cfg)
    tinyllm.manual_seed(7)
    ref_d_logits, ref_d_loss = ref_d(x, y)
    ref_d_loss.backward()
    ref_d_grads = {name: p.grad for name, p in ref_d.named_parameters()}
    ref_d_grads["lm_head.weight"] = ref_d_grads["transformer.wte.weight"]
    expected = shard_state_dict(ref_d_grads, CONFIG.n_head, world.rank, n)
    plain_logits, _ = make_model(CONFIG)(x, y)
    for checkpointing in (False, True):
        model_d = parallelize_gpt(make_model(drop_cfg), TPGroup(world))
        model_d.gradient_checkpointing = checkpointing
        tinyllm.manual_seed(7)
        logits, loss = model_d(x, y)
        loss.backward()
        out["dropout_ckpt" if checkpointing else "dropout"] = {
            "masks_used": bool(np.max(np.abs(logits.data - plain_logits.data)) > 1e-3),
            "logits_err": float(np.max(np.abs(logits.data - ref_d_logits.data))),
            "loss_err": abs(loss.item() - ref_d_loss.item()),
            "grad_err": max(
                float(np.max(np.abs(p.grad - expected[name])))
                for name, p in model_d.named_parameters()
            ),
        }

    # State dicts: this rank's shard, the gathered full dict, and back into a plain GPT.
    full = gather_state_dict(model, tp, CONFIG.n_head)
    out["gathered_equal"] = list(full) == list(ref_state) and all(
        np.array_equal(full[k], ref_state[k]) for k in ref_state
    )
    out["shard_equal"] = all(
        np.array_equal(v, model.state_dict()[k])
        for k, v in shard_state_dict(full, CONFIG.n_head, tp.rank, n).items()
    )
    single = make_model(CONFIG, seed=123)  # different weights until loaded
    single.load_state_dict(full)
    out["reloaded_logits_equal"] = bool(np.array_equal(single(x)[0].data, ref_logits.data))

    # Training: three steps of AdamW with clipping, float64 and float32.
    data = batches(CONFIG, BATCH, 3, seed=2)
    for dtype, key in ((np.float64, "train64"), (np.float32, "train32")):
        ref_losses, ref_final = reference_run(CONFIG, data, dtype)
        strategy = Parallel3D(make_model(CONFIG, dtype), world, tp=n, lr=1e-2, weight_decay=0.1)
        losses = parallel_run(strategy, world, data)
        out[key] = {
            "losses": losses,
            "ref_losses": ref_losses,
            "loss_rel_err": max(relative_errors(losses, ref_losses)),
            "param_err": local_param_error(strategy, ref_final, CONFIG.n_head),
            "memory": strategy.memory_report(),
            "theory": strategy.theory(),
            "bytes_by_axis": strategy.step_stats()["bytes_by_axis"],
        }
        strategy.close()
    # The rows examples/train_zero.py --compare adds: tp = N, and pp = N when N ≤ n_layer.
    out["compare"] = compare_rows(
        world, lambda: make_model(CONFIG, np.float32), lambda step: data[step], steps=2, lr=1e-2
    )
    everyone = world.gather_json(out)
    if world.rank == 0:
        print("RESULTS " + json.dumps(everyone), flush=True)


if __name__ == "__main__":
    main()
