"""A rank SIGKILLed during a sharded save under a real mpirun: the previous checkpoint survives.

The worker (tests/mpi_workers/ckpt_worker.py) trains a small GPT with ZeRO-3, saves at step 2,
trains steps 3-4 (printing their losses), and dies at one point of the step-4 save: a shard
half written, everything written but not yet switched, or between the two renames of the
switch. A second job then loads the directory: it must be step 2's checkpoint, resume steps
3-4 with exactly the losses the first job printed, refuse another tokenizer, and its own save
must sweep every leftover of the killed one.
"""

import json
import os

import pytest
from mpi_helpers import run_mpi


def printed_losses(stdout: str) -> list[float]:
    return [float(ln.split()[2]) for ln in stdout.splitlines() if ln.startswith("LOSS ")]


@pytest.mark.mpi
@pytest.mark.parametrize("n, kill", [(2, "shard"), (4, "shard"), (2, "before"), (2, "between")])
def test_killed_save_keeps_the_previous_checkpoint_and_resumes(tmp_path, n, kill):
    directory = tmp_path / "ck"
    first = run_mpi("ckpt_worker.py", n, ["train", directory, kill], timeout=240, check=False)
    assert first.returncode != 0 and "the save was not interrupted" not in first.stdout, (
        first.describe()
    )
    straight = printed_losses(first.stdout)
    assert len(straight) == 2, first.describe()
    left = sorted(os.listdir(tmp_path))
    assert any(".tmp-" in name or ".old-" in name for name in left), left  # it did die mid-save
    if kill == "between":
        assert "ck" not in left  # the previous checkpoint sits under ck.old-*, loaded from there
    else:
        index = json.loads((directory / "index.json").read_text())
        assert index["step"] == 2

    second = run_mpi("ckpt_worker.py", n, ["resume", directory], timeout=240)
    out = second.results()
    assert out["step_before"] == out["loaded_step"] == 2
    assert out["losses"] == straight  # bit for bit: the same state as before the kill
    assert (
        "different tokenizer" in out["other_tokenizer"]
        and str(directory) in (out["other_tokenizer"])
    )
    assert out["config"]["n_embd"] == 12
    assert out["after_save"] == ["ck"] and out["step_after"] == 4  # leftovers swept
