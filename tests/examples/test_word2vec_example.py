"""examples/word2vec.py end to end at small settings: the report carries the issue's two keys,
the trained vectors beat the untrained ones on both, and part 3 reads the stdlib corpus."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_word2vec_example_reports_analogies_and_neighbours(tmp_path):
    report = tmp_path / "w2v.json"
    cmd = [
        sys.executable, str(ROOT / "examples" / "word2vec.py"), "--sentences", "16000",
        "--epochs", "3", "--vector-size", "32", "--stdlib-bytes", "300KB",
        "--curve", "2000", "--report", str(report),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    r = json.loads(report.read_text())
    for key in ("analogy_accuracy", "neighbour_class_precision"):
        assert 0.0 <= r[key] <= 1.0
        assert r[key] == r["models"]["skipgram"][key]
        assert r["models"]["cbow"][key] > r["models"]["untrained"][key] + 0.3
    assert r["analogy_accuracy"] > 0.5  # untrained: about 0.01
    assert set(r["ablations"]) == {"sentences", "paper", "no_subsampling", "uniform_noise"}
    assert list(r["learning_curve"]) == ["2000"]
    std = r["stdlib"]
    assert std["neighbour_class_precision"] > std["neighbour_class_precision_untrained"]
    assert re.search(r"france : paris :: japan : [a-z]+\n", out.stdout)
