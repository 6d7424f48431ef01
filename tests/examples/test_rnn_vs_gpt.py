"""examples/rnn_vs_gpt.py end to end at tiny settings: both models have the same size (±10%),
every report key is there, and the clipped runs never take a step larger than the clip."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_rnn_vs_gpt_reports_loss_speed_and_clipping(tmp_path):
    report = tmp_path / "r.json"
    cmd = [
        sys.executable, str(ROOT / "examples" / "rnn_vs_gpt.py"), "--steps", "4",
        "--batch-size", "4", "--seq-len", "16", "--hidden", "32", "--data-bytes", "60KB",
        "--gpt-steps", "6", "--lengths", "16,32", "--repeats", "1", "--clip-steps", "3",
        "--seeds", "2", "--report", str(report),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    r = json.loads(report.read_text())
    lstm, gpt = r["models"]["LSTM"], r["models"]["GPT"]
    assert abs(gpt["parameters"] - lstm["parameters"]) <= 0.1 * lstm["parameters"]
    for m in (lstm, gpt):
        # after 4 steps from a uniform start the loss is still near log(256) = 5.55
        assert 4.0 < m["val_loss"] < 6.5 and m["tokens_per_second"] > 0
    assert set(r["step_ms_by_length"]["LSTM"]) == {"16", "32"}
    for key in ("none", "clipped"):
        assert set(r["clipping"][key]) == {"0", "1"}
    assert all(v["median_grad_norm"] > 0 for v in r["clipping"]["clipped"].values())
    assert r["models"]["GPT"]["longer"]["steps"] == 6
    assert r["models"]["GPT"]["longer"]["train_seconds"] > gpt["train_seconds"]
