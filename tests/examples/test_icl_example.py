"""examples/icl.py: its scoring, its context cropping, its attention bookkeeping, and a tiny run.

Truths used: an oracle model written here from the task's definition (it predicts the
uppercase of the query), so exact_match must score it 1.0 and score 0.0 once any one answer
character (or the final newline) is wrong; prompts cropped and positions located by hand.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyllm.data.tasks.strings import StringTask

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import icl  # noqa: E402


class Oracle:
    """Writes uppercase(query) and a newline after the prompt's last '>'; `wrong` spoils the
    prediction of one answer character (0, 1, …; len(answer) is the newline)."""

    def __init__(self, tok, wrong=None):
        self.tok, self.wrong = tok, wrong

    def __call__(self, x):
        b, t = x.shape
        logits = np.zeros((b, t, self.tok.vocab_size))
        for i in range(b):
            text = self.tok.decode(x[i]).rstrip("\0")
            gt = text.rindex(">")
            query = text[text.rindex("\n", 0, gt) + 1 : gt]
            answer = query.upper() + "\n"
            for j, ch in enumerate(answer):
                if gt + j < t:
                    c = "z" if j == self.wrong else ch
                    logits[i, gt + j, self.tok.stoi[c]] = 1.0
        return FakeTensor(logits), None


class FakeTensor:
    def __init__(self, data):
        self.data = data


@pytest.mark.parametrize("shots", [0, 3])
def test_exact_match_scores_greedy_completions(shots):
    tok = icl.CharTokenizer()
    examples = StringTask("uppercase", length=(1, 4), shots=shots).examples(12, seed=0)
    assert icl.exact_match(Oracle(tok), tok, examples, 80, batch=5) == 1.0
    for wrong in (0, 1):
        assert icl.exact_match(Oracle(tok, wrong), tok, examples[:1], 80) == 0.0
    # a completion that does not end its line after the answer is not an exact match
    n = len(examples[0].answer)
    assert icl.exact_match(Oracle(tok, n), tok, examples[:1], 80) == 0.0


def test_fit_prompt_drops_the_oldest_demonstrations():
    ex = icl.SubstitutionTask(shots=16, split="heldout").examples(1, seed=0)[0]
    lines = ex.prompt.split("\n")
    fitted = icl.fit_prompt(ex, 80)
    kept = fitted.split("\n")
    assert len(fitted) + len(ex.target) <= 81  # x holds all but the last character
    assert kept[0] == "subst" and kept[-1] == lines[-1]
    assert kept[1:-1] == lines[len(lines) - len(kept) + 1 : -1]  # the newest demonstrations
    assert len(kept) - 2 == 8  # 6 + 8·8 + 4 + 4 = 78 ≤ 81 < 86 with a ninth line
    assert icl.fit_prompt(ex, 200) == ex.prompt


def test_induction_targets_by_hand():
    ex = icl.SubstitutionTask(shots=0).examples(1, seed=0)[0]  # only used for its target
    prompt = "subst\nabc>def\ncaa>fdd\nab>"
    # query "ab": 'a' shown at input positions 6 and 15, 16 → outputs at 10, 19, 20
    #             'b' shown at 7 → output at 11
    assert icl.induction_targets(ex, prompt) == [[10, 19, 20], [11]]
    assert prompt[10] == "d" and prompt[11] == "e" and prompt[19] == prompt[20] == "d"


def test_shots_to_reach_interpolates():
    acc = {str(k): v for k, v in zip(icl.EVAL_SHOTS, [0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9])}
    assert icl.shots_to_reach(acc, 0.5) == pytest.approx(2.5)
    assert icl.shots_to_reach(acc, 0.0) == 0.0
    assert icl.shots_to_reach(acc, 0.95) is None


def test_tiny_run_writes_a_report_of_the_right_shape(tmp_path):
    report = tmp_path / "icl.json"
    cmd = [sys.executable, str(ROOT / "examples" / "icl.py"), "--sizes", "tiny,small"]
    cmd += ["--steps", "3", "--eval-examples", "8", "--finetune-steps", "2", "--seed", "1"]
    cmd += ["--report", str(report)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "exact match on held-out rules" in proc.stdout
    assert "attention of layer" in proc.stdout
    r = json.loads(report.read_text())
    assert list(r["sizes"]) == ["tiny", "small"]
    for size in r["sizes"].values():
        acc = size["accuracy_by_shots"]
        assert list(acc) == ["0", "1", "2", "4", "8"]
        assert all(0.0 <= v <= 1.0 for v in acc.values())
        assert all(0.0 <= v <= 1.0 for v in size["coverage_ceiling_by_shots"].values())
        assert len(size["losses"]) == 3 and all(np.isfinite(size["losses"]))
        ft = size["finetune"]
        assert list(ft["finetuned_accuracy_by_examples"]) == ["8", "16"]
        assert size["params"] > 0
