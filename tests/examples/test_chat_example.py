"""examples/chat.py driven through stdin, as a user would pipe into it.

A tiny GPT is fine-tuned in the test (a few hundred steps, seconds) on three conversations in
the chat format until it answers them exactly; the chat must then print those answers, which
it can only do if it renders the conversation with the same template the model was trained on,
streams every token, and stops at <|end|>. /reset must forget the conversation: the same
question after /reset gets the same greedy answer as the first time.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyllm.checkpoint import save_checkpoint
from tinyllm.data import ByteLevelBPE
from tinyllm.data.chat import ChatFormat
from tinyllm.models import GPT, GPTConfig
from tinyllm.optim import AdamW

ROOT = Path(__file__).resolve().parents[2]
PAIRS = [("reverse: abc", "cba"), ("hello", "hi there"), ("2+2", "4")]


def _train(path: Path) -> None:
    tok = ByteLevelBPE()
    fmt = ChatFormat(tok)
    convs = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in PAIRS
    ]
    x, y = fmt.render_batch(convs, block_size=24)
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=48, n_layer=1, n_head=2, n_embd=32)
    model = GPT(cfg, generator=np.random.default_rng(0))
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(300):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_checkpoint(str(path), model, step=300, config=cfg.to_dict(), tokenizer=tok)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("chat") / "sft.ckpt.npz"
    _train(path)
    return path


def _chat(checkpoint, lines, *flags):
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "chat.py"),
            "--checkpoint",
            str(checkpoint),
            *flags,
        ],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _replies(stdout: str) -> list[str]:
    return [ln.split("assistant> ", 1)[1] for ln in stdout.splitlines() if "assistant> " in ln]


def test_chat_answers_with_the_trained_template_and_stops_at_end_of_turn(checkpoint):
    r = _chat(checkpoint, ["reverse: abc", "/reset", "hello", "/reset", "2+2"])
    assert r.returncode == 0, r.stderr
    assert _replies(r.stdout) == ["cba", "hi there", "4"], r.stdout
    assert "you> reverse: abc" in r.stdout  # piped lines are echoed
    assert r.stdout.count("(new conversation)") == 2


def test_reset_forgets_the_conversation(checkpoint):
    r = _chat(checkpoint, ["hello", "reverse: abc", "/reset", "reverse: abc", "/quit", "hello"])
    assert r.returncode == 0, r.stderr
    replies = _replies(r.stdout)
    assert len(replies) == 3  # nothing after /quit
    assert replies[2] == "cba"  # a fresh conversation, as trained


def test_a_base_checkpoint_without_chat_tokens_is_refused(tmp_path):
    tok = ByteLevelBPE()
    cfg = GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=8)
    save_checkpoint(str(tmp_path / "base.npz"), GPT(cfg), config=cfg.to_dict(), tokenizer=tok)
    r = _chat(tmp_path / "base.npz", ["hi"])
    assert r.returncode == 1
    assert "no chat tokens" in r.stderr and "Traceback" not in r.stderr
