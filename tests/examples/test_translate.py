"""examples/translate.py end to end at tiny settings: all three models train, the report has
the accuracy by length of each in [0, 1], and the alignment heat map is printed."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_translate_reports_accuracy_by_length_for_every_model(tmp_path):
    report = tmp_path / "t.json"
    cmd = [
        sys.executable, str(ROOT / "examples" / "translate.py"), "--steps", "3",
        "--batch-size", "8", "--hidden", "16", "--n-embd", "16", "--eval-sentences", "40",
        "--report", str(report),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    r = json.loads(report.read_text())
    for key in ("accuracy_by_length", "token_accuracy_by_length"):
        assert set(r[key]) == {"seq2seq", "seq2seq_attention", "transformer"}
        for by_length in r[key].values():
            assert by_length and all(0.0 <= v <= 1.0 for v in by_length.values())
            assert set(by_length) <= {"5-7", "8-10", "11-13", "14-17"}
    assert "alignment" in out.stdout and "(source:" in out.stdout
