"""examples/icl.py: its tokenizer, scoring, context cropping, ceiling, and a tiny run.

Truths used: an oracle model written here from the task's definition (it knows the rule), so
exact_match must score it 1.0 and 0.0 once the answer letter or its newline is wrong; token
splits, cropped prompts and a perfect reader's accuracy worked out by hand.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import icl  # noqa: E402


class FakeTensor:
    def __init__(self, data):
        self.data = data


class Oracle:
    """Predicts, at every position, the true next token of the example it was built for;
    `wrong` = j spoils the j-th answer token (0: the letter, 1: the newline)."""

    def __init__(self, tok, examples, wrong=None):
        self.tok, self.wrong = tok, wrong
        self.rows = {}
        for e in examples:
            p = tok.encode(e.prompt)
            ids = p + tok.encode(e.answer) + tok.encode("\n")  # the answer as the task states it
            self.rows[tuple(ids[:-1])] = (ids[1:], len(p) - 1)

    def __call__(self, x):
        b, t = x.shape
        logits = np.zeros((b, t, self.tok.vocab_size))
        for i in range(b):
            row = [int(v) for v in x[i]]
            key = tuple(row[: max(k for k in range(t + 1) if all(row[:k]))])  # up to padding
            nxt, start = self.rows[key]
            for j, tid in enumerate(nxt):
                if j - start == self.wrong:
                    tid = self.tok.ids["a"] if tid != self.tok.ids["a"] else self.tok.ids["b"]
                logits[i, j, tid] = 1.0
        return FakeTensor(logits), None


def test_pair_tokenizer_by_hand():
    tok = icl.PairTokenizer()
    ids = tok.encode("subst\nc>f\nd>")
    assert [tok.tokens[i] for i in ids] == ["s", "u", "b", "s", "t", "\n", "c>f", "\n", "d>"]
    assert tok.decode(ids) == "subst\nc>f\nd>"
    assert [tok.tokens[i] for i in tok.encode("gh>hg")] == ["g", "h", ">", "h", "g"]
    with pytest.raises(ValueError, match="no token for character"):
        tok.encode("é")
    chars = icl.PairTokenizer(pairs=False)  # the ablation: one token per character
    assert [chars.tokens[i] for i in chars.encode("c>f\nd>")] == ["c", ">", "f", "\n", "d", ">"]


@pytest.mark.parametrize("shots", [0, 3, 8])
def test_exact_match_scores_greedy_completions(shots):
    tok = icl.PairTokenizer()
    examples = icl.heldout_task(shots).examples(12, seed=0)
    assert icl.exact_match(Oracle(tok, examples), tok, examples, 24, batch=5) == 1.0
    for wrong in (0, 1):  # a wrong letter, or no newline after the right one
        assert icl.exact_match(Oracle(tok, examples, wrong), tok, examples, 24) == 0.0


def test_fit_prompt_keeps_the_newest_demonstrations():
    tok = icl.PairTokenizer()
    ex = icl.heldout_task(16).examples(1, seed=0)[0]
    lines = ex.prompt.split("\n")
    ids = icl.fit_prompt(tok, ex, 24)
    kept = tok.decode(ids).split("\n")
    # 6 header tokens + 2 per demonstration + the query + 2 answer tokens ≤ 25 → 8 demonstrations
    assert len(ids) == 6 + 2 * 8 + 1
    assert kept[0] == "subst" and kept[-1] == lines[-1]
    assert kept[1:-1] == lines[-9:-1]
    assert icl.fit_prompt(tok, ex, 100) == tok.encode(ex.prompt)


def test_ceiling_by_hand():
    tok = icl.PairTokenizer()
    task = icl.heldout_task(2)
    ex = task.examples(40, seed=1)
    expected = []
    for e in ex:  # a perfect reader: right if shown, else a guess among the unused letters
        demos = dict(line.split(">") for line in e.prompt.split("\n")[1:-1])
        expected.append(1.0 if e.meta["query"] in demos else 1 / (6 - len(demos)))
    assert icl.ceiling(tok, ex, 24) == pytest.approx(np.mean(expected))
    assert icl.ceiling(tok, icl.heldout_task(0).examples(5, seed=0), 24) == pytest.approx(1 / 6)


def test_lookup_targets_by_hand():
    tok = icl.PairTokenizer()
    ids = tok.encode("subst\nc>f\nd>a\nc>f\nc>")
    assert icl.lookup_targets(tok, ids, "c") == [6, 10]


def test_shots_to_reach_interpolates():
    acc = {str(k): v for k, v in zip(icl.EVAL_SHOTS, [0.1, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9])}
    assert icl.shots_to_reach(acc, 0.5) == pytest.approx(2.5)
    assert icl.shots_to_reach(acc, 0.05) == 0.0
    assert icl.shots_to_reach(acc, 0.95) is None


def test_tiny_run_writes_a_report_of_the_right_shape(tmp_path):
    report = tmp_path / "icl.json"
    cmd = [sys.executable, str(ROOT / "examples" / "icl.py"), "--sizes", "tiny,small"]
    cmd += ["--steps", "3", "--eval-examples", "8", "--finetune-steps", "2", "--seed", "1"]
    cmd += ["--report", str(report)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "exact match on held-out rules" in proc.stdout
    assert "attention from the query token" in proc.stdout
    r = json.loads(report.read_text())
    assert list(r["sizes"]) == ["tiny", "small"]
    for size in r["sizes"].values():
        acc = size["accuracy_by_shots"]
        assert list(acc) == ["0", "1", "2", "4", "8"]
        assert all(0.0 <= v <= 1.0 for v in acc.values())
        assert all(0.0 <= v <= 1.0 for v in size["ceiling_by_shots"].values())
        assert len(size["losses"]) == 3 and all(np.isfinite(size["losses"]))
        assert list(size["finetune"]["finetuned_accuracy_by_examples"]) == ["8", "16"]
        assert size["params"] > 0


def test_attention_maps_are_the_ones_the_model_uses():
    """Each layer's map, applied to that layer's values and projected, gives the layer's own
    attention output (so the heat-map shows what the model computes)."""
    from tinyllm.engine import no_grad
    from tinyllm.models import GPT, GPTConfig

    tok = icl.PairTokenizer()
    cfg = GPTConfig(block_size=24, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_embd=16)
    model = GPT(cfg)
    icl.torch_scale_init(model, np.random.default_rng(0))
    ids = np.array(tok.encode("subst\nc>f\na>b\nc>"))
    maps = icl.attention_maps(model, ids)
    tr, t = model.transformer, len(ids)
    with no_grad():
        x = tr.wte(ids[None]) + tr.wpe(np.arange(t))
        for block, a in zip(tr.h, maps):
            h = block.ln_1(x)
            v = block.attn.c_attn(h).data.reshape(t, 3, 2, 8)[:, 2].transpose(1, 0, 2)
            merged = (a @ v).transpose(1, 0, 2).reshape(1, t, 16)
            want = block.attn(h).data
            got = merged @ block.attn.c_proj.weight.data.T + block.attn.c_proj.bias.data
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
            assert np.allclose(np.triu(a, 1), 0) and np.allclose(a.sum(-1), 1)
            x = block(x)
