"""Shared by the tensor / pipeline / 3D parallelism workers: the single-process reference run.

Every worker builds the same GPT from the same seed (float64 unless asked otherwise, so that
the only differences left are summation order, ~1e-15), trains it in this process with AdamW
and global-norm clipping — the truth — and then trains its parallel version on the same global
batches. Rank 0 prints `RESULTS <json>` with every rank's measurements.
"""

import numpy as np

import tinyllm
from sim.tensor_parallel import shard_state_dict
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay

LR, WEIGHT_DECAY, CLIP = 1e-2, 0.1, 0.5


def make_model(config: GPTConfig, dtype=np.float64, seed=0) -> GPT:
    tinyllm.manual_seed(seed)
    model = GPT(config)
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    return model


def batches(config: GPTConfig, batch: int, steps: int, seed=1):
    rng = np.random.default_rng(seed)
    shape = (batch, config.block_size)
    return [
        (rng.integers(0, config.vocab_size, shape), rng.integers(0, config.vocab_size, shape))
        for _ in range(steps)
    ]


def reference_run(config, data, dtype=np.float64):
    """One process, the whole global batch: the losses and the final state dict."""
    model = make_model(config, dtype)
    opt = AdamW(param_groups_for_weight_decay(model, WEIGHT_DECAY), lr=LR, betas=(0.9, 0.95))
    losses = []
    for x, y in data:
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        losses.append(loss.item())
    return losses, {k: np.array(v) for k, v in model.state_dict().items()}


def parallel_run(strategy, world, data):
    """The same steps with a sim.parallel3d.Parallel3D; global loss per step (mean over ranks)."""
    grid, c = strategy.topo.grid, strategy.topo.coord
    losses = []
    for x, y in data:
        b = x.shape[0] // grid.dp
        strategy.zero_grad()
        _, loss = strategy(x[c.dp * b : (c.dp + 1) * b], y[c.dp * b : (c.dp + 1) * b])
        strategy.backward(loss)
        strategy.clip_grad_norm_(CLIP)
        strategy.step()
        losses.append(float(np.mean(world.allgather_json(loss.item()))))
    return losses


def local_param_error(strategy, reference_state, n_head) -> float:
    """Largest |parameter − reference| over what this rank holds (its tensor-parallel shard of
    its stage's parameters; the head's copy of the tied embedding included)."""
    tp = strategy.tp_group
    expected = shard_state_dict(reference_state, n_head, tp.rank, tp.size)
    return max(
        float(np.max(np.abs(p.data - expected[name])))
        for name, p in strategy.model.state_dict().items()
    )


def relative_errors(got, want):
    return [abs(a - b) / abs(b) for a, b in zip(got, want)]
