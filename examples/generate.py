"""Generate text with a GPT checkpoint written by examples/train_gpt.py (or finetune.py).

    python examples/generate.py --prompt "def " --prompt "class Parser(" --do-sample \\
        --temperature 0.8 --top-k 50 --top-p 0.95 --repetition-penalty 1.1 --seed 1

Every decoding option of tinyllm.generate has a flag: greedy (the default) or `--do-sample`,
`--temperature`, `--top-k`, `--top-p`, `--repetition-penalty`, `--seed`, `--eos` (stop a row at
<|endoftext|>), `--no-cache` (recompute the whole prefix every step instead of using the KV
cache: the same tokens, more work). Several `--prompt`s run as one batch: prompts of different
lengths are left-padded and described by an attention mask, so every row's new tokens start
in the same column and padding is never attended to.

The tokenizer is the checkpoint's own: every checkpoint the training examples write stores the
tokenizer it was trained with (tinyllm/checkpoint.py), so no flag is needed, and a model trained
with `--data my.txt` is read and written through my.txt's tokenizer. `--tokenizer FILE` (a file
ByteLevelBPE.save wrote) must then be that same tokenizer — another one is an error, since the
model would read text through the wrong ids. Only a checkpoint that stores no tokenizer (written
before checkpoints carried one) falls back to rebuilding it the way the training script built
it: `common.prepare_text_data` with the same `--data`, `--data-bytes` and vocabulary size (read
from the checkpoint's config), which finds it in `--cache-dir` or trains it again — BPE training
is deterministic, so the result is the same tokenizer if the flags are the same. A vocabulary
that does not match the model's is an error.
"""

from __future__ import annotations

import os
import time

import common
import flags
import numpy as np

from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import ENDOFTEXT, ByteLevelBPE
from tinyllm.models import GPT, GPTConfig


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument(
        "--checkpoint",
        type=flags.readable_file,
        default=os.path.join("runs", "gpt.ckpt.npz"),
        help="the GPT checkpoint to generate with",
    )
    p.add_argument(
        "--prompt",
        action="append",
        default=None,
        help="a prompt (repeat for a batch; default: one prompt 'def ')",
    )
    p.add_argument(
        "--max-new-tokens",
        type=flags.nonnegative_int,
        default=100,
        help="tokens to generate per prompt",
    )
    p.add_argument("--do-sample", action="store_true", help="sample instead of greedy argmax")
    p.add_argument(
        "--temperature",
        type=flags.finite_positive_float,
        default=1.0,
        help="divide the logits by this before sampling",
    )
    p.add_argument(
        "--top-k",
        type=flags.positive_int,
        default=None,
        help="sample among the k likeliest tokens only (default: all tokens)",
    )
    p.add_argument(
        "--top-p",
        type=flags.float_in(0.0, 1.0, low_open=True),
        default=None,
        help="nucleus sampling: the fewest likeliest tokens whose probability reaches p "
        "(default: no nucleus cut)",
    )
    p.add_argument(
        "--repetition-penalty",
        type=flags.finite_positive_float,
        default=1.0,
        help="divide the positive logits of tokens already present by this (1: none)",
    )
    p.add_argument("--seed", type=flags.nonnegative_int, default=1337, help="seed of the sampling")
    p.add_argument("--eos", action="store_true", help="stop a row once it emits <|endoftext|>")
    p.add_argument("--no-cache", action="store_true", help="decode without the KV cache")
    flags.add_report(p)
    g = p.add_argument_group("tokenizer (only for checkpoints that store none)")
    g.add_argument(
        "--tokenizer",
        type=flags.readable_text_file,
        default=None,
        help="a saved tokenizer file (must be the checkpoint's; default: the one it stores)",
    )
    g.add_argument(
        "--data",
        type=flags.readable_text_file,
        default=None,
        help="the training text file (default: the stdlib)",
    )
    g.add_argument(
        "--data-bytes",
        type=flags.positive_int,
        default=None,
        help="bytes of the corpus read in training (default: the checkpoint's, else 2 MB)",
    )
    g.add_argument(
        "--cache-dir",
        type=flags.writable_dir,
        default=os.path.join("runs", "cache"),
        help="where tokenizers are cached",
    )
    return p


def load_tokenizer(
    checkpoint: str,
    meta: dict,
    tokenizer: str | None,
    data: str | None,
    data_bytes: int | None,
    cache_dir: str | None,
) -> ByteLevelBPE:
    """The tokenizer of the model in `checkpoint` (its metadata `meta`): the one it stores;
    else a saved file, or one rebuilt by prepare_text_data from the training text's flags —
    those recorded in the checkpoint (by finetune.py) unless given here."""
    vocab_size = meta["config"]["vocab_size"]
    given = ByteLevelBPE.load(tokenizer) if tokenizer else None
    if meta.get("tokenizer") is not None:
        tok = ByteLevelBPE.from_bytes(meta["tokenizer"], source=checkpoint)
        if given is not None and given.to_bytes() != tok.to_bytes():
            raise SystemExit(
                f"--tokenizer {tokenizer} is not the tokenizer {checkpoint} was trained with "
                "(the checkpoint stores its own: leave out --tokenizer)"
            )
    elif given is not None:
        tok = given
    else:
        print(f"{checkpoint} stores no tokenizer: rebuilding it from the training text's flags")
        recorded = meta.get("extra", {}).get("data") or {}
        data = data if data is not None else recorded.get("data")
        data_bytes = data_bytes or recorded.get("data_bytes") or 2_000_000
        tok, _, _ = common.prepare_text_data(data, vocab_size, data_bytes, cache_dir)
    if tok.vocab_size != vocab_size:
        raise SystemExit(
            f"the tokenizer has {tok.vocab_size} tokens but the model in "
            f"{checkpoint} was trained with {vocab_size}; pass the --data / "
            "--data-bytes (or --tokenizer) it was trained with"
        )
    return tok


def left_pad(prompts: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(idx, attention_mask), each (B, longest prompt): real tokens right-aligned."""
    t = max(len(p) for p in prompts)
    idx = np.full((len(prompts), t), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), t), dtype=np.int64)
    for b, p in enumerate(prompts):
        idx[b, t - len(p) :] = p
        mask[b, t - len(p) :] = 1
    return idx, mask


def main(argv=None):
    args = build_parser().parse_args(argv)
    meta = load_checkpoint(args.checkpoint, None, restore_rng=False)  # the config first
    if not meta.get("config") or "n_layer" not in meta["config"]:
        raise SystemExit(f"generate: {args.checkpoint} holds no GPT config")
    cfg = GPTConfig(**meta["config"])
    model = GPT(cfg)
    load_checkpoint(args.checkpoint, model, restore_rng=False)
    tok = load_tokenizer(
        args.checkpoint, meta, args.tokenizer, args.data, args.data_bytes, args.cache_dir
    )
    eos = tok.token_to_id(ENDOFTEXT)

    texts = args.prompt or ["def "]
    # an empty prompt starts from <|endoftext|>, the document boundary (as GPT-2 does)
    prompts = [tok.encode(t, disallowed_special=()) or [eos] for t in texts]
    if max(len(p) for p in prompts) > cfg.block_size:
        raise SystemExit(
            f"generate: a prompt of {max(len(p) for p in prompts)} tokens exceeds "
            f"the model's block_size {cfg.block_size}"
        )
    idx, mask = left_pad(prompts, eos)
    print(
        f"GPT {cfg.n_layer}L {cfg.n_embd}E from {args.checkpoint} (step {meta['step']}); "
        f"{len(prompts)} prompt(s) of {[len(p) for p in prompts]} tokens; "
        f"{'sampling' if args.do_sample else 'greedy'}, "
        f"{'no ' if args.no_cache else ''}KV cache"
    )
    t0 = time.perf_counter()
    out = model.generate(
        idx,
        args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        eos_token_id=eos if args.eos else None,
        pad_token_id=eos,
        use_cache=not args.no_cache,
        seed=args.seed,
        attention_mask=mask,
    )
    seconds = time.perf_counter() - t0
    new = out[:, idx.shape[1] :]  # (B, new)
    completions = []
    for b, text in enumerate(texts):
        row = new[b].tolist()
        if args.eos and eos in row:
            row = row[: row.index(eos)]
        completions.append(row)
        print(f"---- prompt {b}: {text!r} ----")
        print(text + tok.decode(row))
    tps = new.size / max(seconds, 1e-9)
    print(
        f"{new.size} tokens ({len(texts)} × {new.shape[1]}) in {seconds:.2f} s: {tps:.1f} tokens/s"
    )
    common.write_report(
        args.report,
        {
            "checkpoint": args.checkpoint,
            "prompts": texts,
            "prompt_tokens": [len(p) for p in prompts],
            "shape": list(out.shape),
            "new_tokens": completions,
            "completions": [tok.decode(c) for c in completions],
            "seconds": seconds,
            "tokens_per_second": tps,
            "settings": {
                k: getattr(args, k)
                for k in (
                    "max_new_tokens",
                    "do_sample",
                    "temperature",
                    "top_k",
                    "top_p",
                    "repetition_penalty",
                    "seed",
                    "eos",
                    "no_cache",
                )
            },
        },
    )
    return out


if __name__ == "__main__":
    main()
