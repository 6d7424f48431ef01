"""The tensor- and pipeline-parallel rows of `examples/train_zero.py --compare`.

Beside DDP and the ZeRO stages, the comparison trains the same model split by tensor
parallelism over all ranks (tp = N) and by pipeline stages (pp = N) with sim/parallel3d.py, on
the same batches, and reports each in the row format of train_zero.py's table. Not a script of
its own: train_zero.py (and tests/mpi_workers/tp_worker.py) import `compare_rows`.
"""
from __future__ import annotations

from sim.device import OutOfMemoryError
from sim.parallel3d import Parallel3D


def compare_rows(world, make_model, get_batch, *, steps: int = 3, lr=1e-3,
                 micro_batches: int | None = None, schedule: str = "1f1b",
                 grad_clip: float = 1.0, **strategy_kwargs) -> list[dict]:
    """A tensor-parallel row (tp = world size) and a pipeline row (pp = world size), trained for
    `steps` steps on the same batches, in the row format of examples/train_zero.py --compare:
    strategy, loss, memory (rank 0's memory_report), max_peak, theory, bytes_per_step (rank 0),
    theory_bytes, simulated_seconds — plus bytes_by_axis and bubble.

    make_model(): a fresh GPT, the same every call (seeded). get_batch(step) -> the *global*
    (x, y) of that step (with dp = 1 every rank trains on all of it). lr: a number or a function
    of the step. micro_batches: default = world size (the pipeline's stages). Other keywords go
    to the strategy (weight_decay, betas, profile, device_memory, ...). A configuration the model
    cannot take (heads or layers not divisible) gives {"strategy", "skipped": reason}; one whose
    model states exceed `device_memory` gives {"strategy", "oom": message}, as train_zero.py's
    rows do. (Activations overflowing during a step end the job instead: the out-of-memory error
    may strike one pipeline stage while the others wait for its message, and sim's excepthook
    then aborts every rank.)
    Collective: every rank calls it and gets the same rows.
    """
    n = world.size
    m = micro_batches or n
    rows = []
    for dims in ({"tp": n}, {"pp": n, "micro_batches": m, "schedule": schedule}):
        model = make_model()
        tp, pp = dims.get("tp", 1), dims.get("pp", 1)
        label = Parallel3D.describe(1, tp, pp, schedule, m)
        problem = infeasible(model.config, tp, pp)
        if problem:
            rows.append({"strategy": label, "skipped": problem})
            continue
        strategy, error = None, None
        try:
            strategy = Parallel3D(model, world, lr=lr if not callable(lr) else lr(0), **dims,
                                  **strategy_kwargs)
        except OutOfMemoryError as e:      # the parameters, gradients or Adam states do not fit
            error = str(e).splitlines()[0]
        errors = [e for e in world.allgather_json(error) if e]   # agree before communicating
        if errors:
            rows.append({"strategy": label, "oom": errors[0]})
            if strategy is not None:
                strategy.close()
            continue
        losses = []
        for step in range(steps):
            if callable(lr):
                strategy.set_lr(lr(step))
            x, y = get_batch(step)
            strategy.zero_grad()
            _, loss = strategy(x, y)
            strategy.backward(loss)
            strategy.clip_grad_norm_(grad_clip)
            strategy.step()
            losses.append(loss.item())
        stats = strategy.step_stats()
        mem = world.allgather_json(strategy.memory_report())
        theory_axes = world.allgather_json(
            strategy.theory_comm_bytes_by_axis(x.shape[0], x.shape[1]))
        rows.append({"strategy": label, "loss": losses[-1], "memory": mem[0],
                     "max_peak": max(r["peak"] for r in mem),
                     "theory": world.bcast_json(strategy.theory()),
                     "bytes_per_step": world.bcast_json(stats["bytes_sent"]),
                     "theory_bytes": sum(theory_axes[0].values()),
                     "simulated_seconds": max(world.allgather_json(stats["simulated_seconds"])),
                     "bytes_by_axis": world.bcast_json(stats["bytes_by_axis"]),
                     "bubble": world.bcast_json(stats["bubble"])})
        strategy.close()
        world.barrier()
    return rows


def infeasible(config, tp: int, pp: int) -> str | None:
    """Why a GPT config cannot be split tp × pp ways (None: it can)."""
    if config.n_head % tp or (4 * config.n_embd) % tp:
        return f"n_head {config.n_head} does not divide by tp = {tp}"
    if config.n_layer < pp:
        return f"{config.n_layer} layers cannot fill {pp} pipeline stages"
    return None
