"""A checkpoint carries its tokenizer: generate.py reads a model trained on `--data my.txt`
through my.txt's tokenizer with no tokenizer flag, and refuses another one.

The truth is built here, independently of the checkpoint: the BPE tokenizer trained on the
training part of the same text (tinyllm.data.load_corpus's split) with the same settings as
examples/common.py. The text is made of pseudo-words the standard library never contains, so
its tokenizer spells a prompt of them in a few tokens where the default (stdlib) tokenizer
would need about one per byte.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyllm.data import ENDOFTEXT, ByteLevelBPE, load_corpus

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16"]
TINY += ["--batch-size", "4", "--eval-interval", "2", "--eval-iters", "1", "--lr", "1e-2"]
PROMPT = "zqx vvkor zqx"

pytestmark = pytest.mark.slow


def run(script, *args):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def pseudo_words(seed: int, syllables: list[str], n_words: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(syllables, size=rng.integers(1, 3))) for _ in range(n_words)]
    lines = [" ".join(words[i : i + 9]) for i in range(0, n_words, 9)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("custom_tok")
    data = tmp / "my.txt"
    data.write_text(pseudo_words(0, ["zqx", "vvk", "or", "ul", "zqx", "ip"], 6000))
    ckpt = tmp / "my.ckpt.npz"
    train = run(
        "train_gpt.py",
        *TINY,
        "--steps",
        "2",
        "--data",
        data,
        "--vocab-size",
        "300",
        "--checkpoint",
        ckpt,
        "--cache-dir",
        tmp / "cache",
        "--sample-tokens",
        "4",
    )
    assert train.returncode == 0, train.stdout + train.stderr
    return tmp, data, ckpt


def test_generate_uses_the_checkpoints_tokenizer(trained):
    tmp, data, ckpt = trained
    out = tmp / "gen.json"
    # no --data, and an empty cache: the old behaviour rebuilt the stdlib tokenizer here
    gen = run(
        "generate.py",
        "--checkpoint",
        ckpt,
        "--prompt",
        PROMPT,
        "--max-new-tokens",
        "6",
        "--report",
        out,
        "--cache-dir",
        tmp / "empty-cache",
    )
    assert gen.returncode == 0, gen.stdout + gen.stderr
    rep = json.loads(out.read_text())
    corpus = load_corpus(str(data), max_bytes=2_000_000)  # train_gpt's default --data-bytes
    truth = ByteLevelBPE().train(corpus.train, vocab_size=300, special_tokens=[ENDOFTEXT])
    prompt_ids = truth.encode(PROMPT, disallowed_special=())
    assert len(prompt_ids) <= 4 < len(PROMPT.encode()) // 2  # the custom merges at work
    assert rep["prompt_tokens"] == [len(prompt_ids)]
    assert rep["completions"] == [truth.decode(ids) for ids in rep["new_tokens"]]
    assert not (tmp / "empty-cache").exists()  # nothing was rebuilt


def test_another_tokenizer_is_refused_by_generate_and_by_resume(trained):
    tmp, data, ckpt = trained
    other = tmp / "other.txt"
    other.write_text(pseudo_words(1, ["ab", "cd", "ef", "gh"], 6000))
    ByteLevelBPE().train(other.read_text(), vocab_size=300, special_tokens=[ENDOFTEXT]).save(
        tmp / "other-tok.txt"
    )
    gen = run(
        "generate.py",
        "--checkpoint",
        ckpt,
        "--tokenizer",
        tmp / "other-tok.txt",
        "--max-new-tokens",
        "2",
    )
    assert gen.returncode != 0 and "not the tokenizer" in gen.stderr, gen.stdout + gen.stderr
    resumed = run(
        "train_gpt.py",
        *TINY,
        "--steps",
        "4",
        "--data",
        other,
        "--vocab-size",
        "300",
        "--checkpoint",
        ckpt,
        "--resume",
        "--cache-dir",
        tmp / "cache",
    )
    assert resumed.returncode != 0, resumed.stdout + resumed.stderr
    assert "different tokenizer" in resumed.stderr and str(ckpt) in resumed.stderr


def test_quantize_encodes_its_text_with_the_checkpoints_tokenizer(trained):
    tmp, data, ckpt = trained
    out = tmp / "quant.json"
    quant = run(
        "quantize.py",
        "--checkpoint",
        ckpt,
        "--data",
        data,
        "--eval-batches",
        "1",
        "--qat-steps",
        "1",
        "--batch-size",
        "2",
        "--report",
        out,
        "--cache-dir",
        tmp / "quant-cache",
    )
    assert quant.returncode == 0, quant.stdout + quant.stderr
    # the old path trained a fresh tokenizer on --data into the cache; the checkpoint's is used
    assert not (tmp / "quant-cache").exists()
    assert out.exists()
