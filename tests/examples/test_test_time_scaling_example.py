"""examples/test_time_scaling.py end to end at tiny settings (seconds), and its training batch.

The run is too short to learn addition; what is checked is what must hold for any model: the
report has every key the chapter reads, accuracies are fractions, pass@N never falls as N
grows, majority@1 is pass@1 (one vote is the sample itself), majority@N_max cannot beat
pass@N_max (a vote is only right when some sample is), and the saved checkpoints load into a
GPT of the reported configuration with the byte tokenizer. The batch test checks, character by
character, that only the target's tokens are targets.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import ByteLevelBPE
from tinyllm.data.tasks.arithmetic import Arithmetic
from tinyllm.models import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "test_time_scaling.py"
TINY = [
    "--steps", "4", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--max-digits", "3",
    "--eval-per-digit", "3", "--questions", "3", "--samples", "8", "--log-interval", "2",
]  # fmt: skip


def test_tiny_run_reports_consistent_curves(tmp_path):
    report_path, ckpt = tmp_path / "tts.json", tmp_path / "tts.ckpt.npz"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--report", str(report_path), "--checkpoint",
         str(ckpt)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "test-time scaling" in proc.stdout and "greedy exact match" in proc.stdout
    r = json.loads(report_path.read_text())
    for key in ("cot_accuracy_by_digits", "direct_accuracy_by_digits"):
        assert list(r[key]) == ["1", "2", "3"]
        assert all(0.0 <= v <= 1.0 for v in r[key].values())
    for prefix in ("", "direct_"):
        passes, votes = r[prefix + "pass_at_k"], r[prefix + "majority_at_k"]
        assert list(passes) == list(votes) == ["1", "2", "4", "8"]
        p = [passes[n] for n in passes]
        assert all(b >= a - 1e-12 for a, b in zip(p, p[1:]))
        assert votes["1"] == passes["1"]
        assert votes["8"] <= passes["8"] == r[prefix + "any_correct"]
    assert len(r["cot_training"]["losses"]) == 4
    # the checkpoint holds the scratchpad model and the byte tokenizer
    cfg = GPTConfig(**{k: v for k, v in r["config"].items() if k in GPTConfig.__dataclass_fields__})
    model = GPT(cfg)
    meta = load_checkpoint(str(ckpt), model)
    assert ByteLevelBPE.from_bytes(meta["tokenizer"]).vocab_size == cfg.vocab_size
    assert (tmp_path / "tts-direct.ckpt.npz").exists()


def test_only_the_target_tokens_are_trained_on():
    sys.path.insert(0, str(ROOT / "examples"))
    import test_time_scaling as tts

    tok = ByteLevelBPE([], ["<|endoftext|>"])
    short, long = Arithmetic(1).make(3, 4), Arithmetic(2).make(56, 78)
    x, y = tts.make_batch([short, long], tok)
    for row, ex in enumerate([short, long]):
        text = ex.prompt + ex.target
        n_prompt = len(ex.prompt)
        assert tok.decode(x[row, : len(text) - 1].tolist()) == text[:-1]
        # position j predicts character j + 1: the prompt's own characters are never targets
        assert (y[row, : n_prompt - 1] == -100).all()
        assert tok.decode(y[row, n_prompt - 1 : len(text) - 1].tolist()) == ex.target
        assert (y[row, len(text) - 1 :] == -100).all()  # right padding
    assert x.shape == y.shape == (2, len(long.prompt + long.target) - 1)
    assert tts.block_size_for(5) >= len(Arithmetic(5).make(99999, 99999).prompt) + len(
        Arithmetic(5).make(99999, 99999).target
    )
    assert np.issubdtype(y.dtype, np.integer)
