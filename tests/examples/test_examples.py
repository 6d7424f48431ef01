"""The training examples, run end to end as a user runs them (subprocesses, tiny settings).

Each script is run once with a tiny model on ~100 KB of the standard library, and its JSON
report is checked: the shared keys, finite losses that fall, the extras each script promises.
Checkpoints are checked the strong way: a run stopped after 3 of 6 steps and resumed gives
exactly the losses of the uninterrupted 6-step run (train_gpt, train_bert, train_t5 — and for
BERT and T5 the fine-tuning that follows pre-training too, since it starts from that state).
generate.py must produce prompt + max_new_tokens tokens for prompts of different lengths, and
finetune.py must report both validation curves and a consistent gap.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# A model small enough that a step is milliseconds; the learning rate is high so that six
# steps visibly lower the loss. BERT and T5 need room for their 105 special tokens.
TINY = [
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--n-embd",
    "32",
    "--block-size",
    "32",
    "--batch-size",
    "8",
    "--data-bytes",
    "100000",
    "--eval-interval",
    "3",
    "--eval-iters",
    "1",
    "--log-interval",
    "1",
    "--lr",
    "1e-2",
]
GPT = TINY + ["--vocab-size", "300", "--sample-tokens", "8"]
BERT = TINY + [
    "--vocab-size",
    "400",
    "--cls-steps",
    "4",
    "--cls-batch-size",
    "8",
    "--cls-len",
    "16",
    "--cls-eval-per-class",
    "4",
]
T5 = TINY + [
    "--vocab-size",
    "400",
    "--ft-steps",
    "4",
    "--ft-batch-size",
    "8",
    "--ft-input-len",
    "24",
    "--ft-target-len",
    "8",
    "--ft-eval-examples",
    "6",
]
PROMPTS = ["def ", "class Parser(object):\n    def __init__(self"]
NEW_TOKENS = 7

pytestmark = pytest.mark.slow


def start(script, *args):
    """examples/<script> in a fresh interpreter, running in the background. One BLAS thread:
    the matrices are tiny, and several runs share the two cores."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return script, subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(*runs, check=True):
    """Wait for every run; → list of (returncode, stdout, stderr). A failure shows its output."""
    results = []
    for script, proc in runs:
        out, err = proc.communicate(timeout=900)
        if check and proc.returncode != 0:
            raise AssertionError(f"{script} failed ({proc.returncode}):\n{out}\n{err}")
        results.append((proc.returncode, out, err))
    return results


def report(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every example, run in three waves of concurrent processes; → the tmp dir.

    Wave 1: each training script for 6 steps straight, and for 3 of 6 steps (--stop-at).
    Wave 2: the resumed halves, generate.py and finetune.py on train_gpt's checkpoint.
    Wave 3: generate.py on finetune.py's checkpoint."""
    from tinyllm.data import standard_special_tokens

    sys.path.insert(0, str(ROOT / "examples"))
    from common import prepare_text_data  # examples/common.py: the examples' data cache

    tmp = tmp_path_factory.mktemp("examples")
    cache = tmp / "cache"
    # build both tokenizers once, here, instead of racing in several processes
    prepare_text_data(None, 300, 100_000, cache, log=lambda *_: None)
    prepare_text_data(
        None, 400, 100_000, cache, special_tokens=standard_special_tokens(), log=lambda *_: None
    )
    wave1, wave2 = [], []
    for script, flags in (("train_gpt.py", GPT), ("train_bert.py", BERT), ("train_t5.py", T5)):
        common = [*flags, "--steps", "6", "--cache-dir", cache]
        wave1.append(
            start(
                script,
                *common,
                "--checkpoint",
                tmp / f"{script}.full.npz",
                "--report",
                tmp / f"{script}.full.json",
            )
        )
        wave1.append(
            start(script, *common, "--checkpoint", tmp / f"{script}.half.npz", "--stop-at", "3")
        )
        wave2.append((script, common))
    finish(*wave1)
    started = [
        start(
            script,
            *common,
            "--checkpoint",
            tmp / f"{script}.half.npz",
            "--resume",
            "--report",
            tmp / f"{script}.resumed.json",
        )
        for script, common in wave2
    ]
    gpt_ckpt = tmp / "train_gpt.py.full.npz"
    started.append(
        start(
            "generate.py",
            "--checkpoint",
            gpt_ckpt,
            "--data-bytes",
            "100000",
            "--cache-dir",
            cache,
            *[a for p in PROMPTS for a in ("--prompt", p)],
            "--max-new-tokens",
            NEW_TOKENS,
            "--do-sample",
            "--temperature",
            "0.9",
            "--top-k",
            "40",
            "--top-p",
            "0.95",
            "--repetition-penalty",
            "1.2",
            "--seed",
            "3",
            "--report",
            tmp / "generate.json",
        )
    )
    started.append(
        start(
            "finetune.py",
            "--checkpoint",
            gpt_ckpt,
            "--pretrain-data-bytes",
            "100000",
            "--cache-dir",
            cache,
            "--data-bytes",
            "60000",
            "--steps",
            "4",
            "--eval-interval",
            "2",
            "--eval-iters",
            "1",
            "--batch-size",
            "4",
            "--lr",
            "1e-2",
            "--sample-tokens",
            "4",
            "--out-checkpoint",
            tmp / "ft.npz",
            "--report",
            tmp / "finetune.json",
        )
    )
    results = finish(*started)
    (tmp / "generate.stdout").write_text(results[3][1])
    (tmp / "finetune.stdout").write_text(results[4][1])
    # the fine-tuned checkpoint records its tokenizer's flags: generate needs none of them
    finish(
        start(
            "generate.py",
            "--checkpoint",
            tmp / "ft.npz",
            "--cache-dir",
            cache,
            "--max-new-tokens",
            "3",
            "--no-cache",
            "--eos",
            "--report",
            tmp / "ft-generate.json",
        )
    )
    return tmp


def straight_and_resumed(tmp, script):
    return report(tmp / f"{script}.full.json"), report(tmp / f"{script}.resumed.json")


def assert_shared_report(rep, steps=6):
    for key in ("losses", "val_losses", "params", "tokens_per_second"):
        assert key in rep, key
    assert len(rep["losses"]) == steps
    assert all(math.isfinite(x) for x in rep["losses"])
    assert rep["losses"][-1] < rep["losses"][0], rep["losses"]
    assert [s for s, _ in rep["val_losses"]] == [3, 6]
    assert rep["val_losses"][-1][1] < rep["val_losses"][0][1] + 0.5  # finite and not diverging
    assert rep["params"] > 0 and rep["tokens_per_second"] > 0


def test_train_gpt_report_and_resume(runs):
    full, resumed = straight_and_resumed(runs, "train_gpt.py")
    assert_shared_report(full)
    assert "mfu" in full and isinstance(full["sample"], str) and full["sample"].startswith("def ")
    assert resumed["losses"] == full["losses"]  # bit-for-bit, through the checkpoint
    assert resumed["val_losses"] == full["val_losses"]


def test_train_bert_report_and_resume(runs):
    full, resumed = straight_and_resumed(runs, "train_bert.py")
    assert_shared_report(full)
    assert 0 <= full["mlm_accuracy"] <= 1 and 0 < full["mlm_unigram_baseline"] < 1
    assert [s for s, _ in full["val_mlm_accuracy"]] == [3, 6]
    cls = full["classification"]
    assert cls["labels"] == ["def", "class", "return", "if", "for", "raise", "import"]
    assert len(cls["losses"]) == 4 and len(cls["scratch_losses"]) == 4
    # 7 classes: the cross-entropy of a fresh head (weights N(0, 0.02)) starts near ln 7
    assert abs(cls["losses"][0] - math.log(7)) < 0.5
    assert 0 <= full["cls_accuracy"] <= 1 and full["cls_accuracy"] == cls["accuracy"]
    assert set(full["sample"]) >= {"original", "masked", "filled"}
    assert resumed["losses"] == full["losses"]
    assert resumed["classification"]["losses"] == cls["losses"]
    assert resumed["cls_accuracy"] == full["cls_accuracy"]


def test_train_t5_report_and_resume(runs):
    full, resumed = straight_and_resumed(runs, "train_t5.py")
    assert_shared_report(full)
    s2s = full["seq2seq"]
    assert len(s2s["losses"]) == 4 and all(math.isfinite(x) for x in s2s["losses"])
    assert 0 <= full["exact_match"] <= 1 and s2s["test_examples"] > 0
    assert "<extra_id_0>" in full["sample"]["input"] and "<extra_id_0>" in full["sample"]["target"]
    assert resumed["losses"] == full["losses"]
    assert resumed["seq2seq"]["losses"] == s2s["losses"]


def test_generate_batched_prompts_of_different_lengths(runs):
    rep = report(runs / "generate.json")
    lengths = rep["prompt_tokens"]
    assert lengths[0] < lengths[1]  # really different lengths
    assert rep["shape"] == [2, max(lengths) + NEW_TOKENS]  # left-padded to the longest
    assert [len(t) for t in rep["new_tokens"]] == [NEW_TOKENS] * 2  # no --eos: all of them
    assert "tokens/s" in (runs / "generate.stdout").read_text() and rep["tokens_per_second"] > 0
    # the fine-tuned checkpoint's run: greedy, no cache, stopping at <|endoftext|>
    rep = report(runs / "ft-generate.json")
    assert rep["shape"][0] == 1 and rep["shape"][1] <= rep["prompt_tokens"][0] + 3


def test_generate_rejects_a_missing_checkpoint(tmp_path):
    [(code, _, err)] = finish(
        start("generate.py", "--checkpoint", tmp_path / "nope.npz"), check=False
    )
    assert code != 0 and "nope.npz" in err


def test_finetune_reports_both_curves(runs):
    rep = report(runs / "finetune.json")
    tuned, scratch = rep["val_losses"], rep["scratch"]["val_losses"]
    assert [s for s, _ in tuned] == [s for s, _ in scratch] == [0, 2, 4]
    assert len(rep["losses"]) == len(rep["scratch"]["losses"]) == 4
    assert all(math.isfinite(v) for _, v in tuned + scratch)
    assert rep["gap"] == [[s, b - a] for (s, a), (_, b) in zip(tuned, scratch)]
    # the domain (pydoc_data) is not in the pre-training text, and the model has learned
    # something general: before any fine-tuning it already beats its random initialization
    assert rep["domain"]["name"] == "stdlib:pydoc_data" and rep["gap"][0][1] > 0
    # … and stays ahead at every evaluation: with the same steps on the new domain the
    # fine-tuned model's validation loss is lower than the one trained from scratch
    assert all(g > 0 for _, g in rep["gap"]), rep["gap"]
    assert set(rep["old_domain_val"]) == {"before", "after"}
    # MFU = tokens/s × model FLOPs per token / peak, recomputed from the report's fields:
    # PaLM's 6N + 12·L·H·Q·T with N = every parameter but the position table (H·Q = n_embd)
    c = rep["config"]
    n = rep["params"] - c["block_size"] * c["n_embd"]
    assert rep["flops_per_token"] == 6 * n + 12 * c["n_layer"] * c["n_embd"] * c["block_size"]
    assert rep["peak_flops"] > 0
    assert rep["mfu"] == pytest.approx(
        rep["tokens_per_second"] * rep["flops_per_token"] / rep["peak_flops"]
    )
    # every progress line (steps 0 and 3 of each run: the default --log-interval 10) and the
    # summary line
    assert (runs / "finetune.stdout").read_text().count("MFU") == 2 * 2 + 1
