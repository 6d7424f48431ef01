"""examples/sft.py end to end at tiny settings (seconds): the report's keys, the memory ledger
against LoRA's parameter count worked out from the model's shape, and the saved chat model
loaded and driven by examples/chat.py."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TINY = [
    "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--vocab-size", "300",
    "--pretrain-steps", "4", "--pretrain-examples", "60", "--steps", "3",
    "--train-examples", "40", "--eval-examples", "6", "--batch-size", "4",
    "--noise-chars", "8", "--log-interval", "2", "--lora-rank", "2",
    "--lora-targets", "attn.c_attn,mlp.c_fc", "--lora-freeze-embedding",
]  # fmt: skip


def test_sft_example_reports_and_saves_a_chat_model(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sft.py"), *TINY, "--report", "r.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pretrain step" in r.stdout and "LoRA trains" in r.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    for key in ("exact_match_before", "exact_match_after", "exact_match_all_tokens_loss"):
        assert 0.0 <= rep[key] <= 1.0
    lora, full = rep["lora"], rep["full"]
    assert 0.0 <= lora["exact_match"] <= 1.0
    assert lora["exact_match_merged"] == lora["exact_match"]  # merging changes no reply
    # rank 2 on c_attn (16 → 48) and c_fc (16 → 64) of the one block: r·(in + out) each,
    # and the four chat tokens' embedding rows
    assert lora["trainable_parameters"] == 2 * (16 + 48) + 2 * (16 + 64) + 4 * 16
    # fp32 Adam keeps two moments, 4 bytes each, per trainable parameter
    assert lora["optimizer_state_bytes"] == 8 * lora["trainable_parameters"]
    assert full["optimizer_state_bytes"] == 8 * full["trainable_parameters"]
    assert full["trainable_parameters"] == rep["params"] + 4 * 16  # + the four chat-token rows
    for name in ("base.ckpt.npz", "sft.ckpt.npz", "sft-lora.ckpt.npz"):
        assert (tmp_path / "runs" / name).is_file()

    chat = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "chat.py"), "--max-new-tokens", "4"],
        cwd=tmp_path, input="value of a?\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert "assistant> " in chat.stdout
