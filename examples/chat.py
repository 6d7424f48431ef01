"""Chat with an instruction-tuned GPT: the chat template, tokens streamed as they are generated.

    python examples/sft.py                                    # writes runs/sft.ckpt.npz
    python examples/chat.py --checkpoint runs/sft.ckpt.npz
    you> reverse: tinyllm
    assistant> mllynit

Each line you type becomes a user turn; the whole conversation so far is rendered with the chat
template (tinyllm/data/chat.py) and the model continues it after an open `<|assistant|>` header
until it writes `<|end|>` (or `--max-new-tokens`). Its reply joins the conversation, so the next
question sees the earlier turns. When the conversation outgrows the model's context
(block_size), the oldest turns are dropped (a `--system` prompt is kept).

Commands: `/reset` starts a new conversation, `/quit` (or end of input) leaves.

Decoding is greedy by default; `--do-sample` with `--temperature`, `--top-k`, `--top-p`,
`--repetition-penalty` and `--seed` samples (tinyllm.generate). The tokenizer is the
checkpoint's own; it must hold the chat tokens, i.e. the checkpoint is a fine-tuned chat model
(examples/sft.py), not a base model.

When stdin is not a terminal (a pipe, a file, a test), lines are read from it one by one and
each is echoed after the `you>` prompt, so the transcript reads the same.
"""

from __future__ import annotations

import os
import sys

import flags

from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import ByteLevelBPE
from tinyllm.data.chat import CHAT_SPECIAL_TOKENS, ChatFormat
from tinyllm.generate import TextStreamer
from tinyllm.models import GPT, GPTConfig


def build_parser():
    p = flags.parser(__doc__)
    p.add_argument(
        "--checkpoint",
        type=flags.readable_file,
        default=os.path.join("runs", "sft.ckpt.npz"),
        help="a chat (instruction-tuned) GPT checkpoint that stores its tokenizer",
    )
    p.add_argument(
        "--system", default=None, help="a system prompt (first turn, always kept; default: none)"
    )
    p.add_argument(
        "--max-new-tokens",
        type=flags.positive_int,
        default=128,
        help="longest reply, in tokens",
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
        help="sample among the k likeliest tokens only (default: all)",
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
    return p


def load_chat_model(path: str) -> tuple[GPT, ChatFormat]:
    """The GPT in `path` and the chat format over the tokenizer it stores."""
    meta = load_checkpoint(path, None, restore_rng=False)
    if not meta.get("config") or "n_layer" not in meta["config"]:
        raise SystemExit(f"chat: {path} holds no GPT config")
    if meta.get("tokenizer") is None:
        raise SystemExit(
            f"chat: {path} stores no tokenizer; a chat needs the one it was tuned with"
        )
    tok = ByteLevelBPE.from_bytes(meta["tokenizer"], source=path)
    missing = [t for t in CHAT_SPECIAL_TOKENS if t not in tok.special_tokens]
    if missing:
        raise SystemExit(
            f"chat: the tokenizer in {path} has no chat tokens ({', '.join(missing)}): it is "
            "a base model; fine-tune it first (python examples/sft.py), then chat with "
            "runs/sft.ckpt.npz"
        )
    cfg = GPTConfig(**meta["config"])
    if cfg.vocab_size != tok.vocab_size:
        raise SystemExit(
            f"chat: {path}'s model has {cfg.vocab_size} token rows but its tokenizer "
            f"{tok.vocab_size} tokens"
        )
    model = GPT(cfg)
    load_checkpoint(path, model, restore_rng=False)
    model.eval()
    return model, ChatFormat(tok)


def fit_context(fmt: ChatFormat, turns: list[dict], budget: int) -> list[dict]:
    """Drop the oldest non-system turns (a user turn and its reply together) until the prompt
    leaves `budget` tokens of room… or only the newest user turn is left."""
    system = turns[:1] if turns and turns[0]["role"] == "system" else []
    rest = turns[len(system) :]
    while len(rest) > 1 and len(fmt.render_prompt(system + rest)) > budget:
        rest = rest[2:] if len(rest) > 2 else rest[1:]
    return system + rest


def main(argv=None, stdin=None, stdout=None):
    args = build_parser().parse_args(argv)
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    model, fmt = load_chat_model(args.checkpoint)
    block = model.config.block_size
    interactive = stdin.isatty()
    start = [{"role": "system", "content": args.system}] if args.system else []
    turns = list(start)
    out.write(
        f"chat with {args.checkpoint} ({model.config.n_layer} layers, {model.config.n_embd} "
        f"wide, context {block} tokens); /reset, /quit\n"
    )
    seed = args.seed
    while True:
        out.write("you> ")
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            break
        line = line.rstrip("\n")
        if not interactive:
            out.write(line + "\n")
        if line.strip() == "/quit":
            break
        if line.strip() == "/reset":
            turns = list(start)
            out.write("(new conversation)\n")
            continue
        if not line.strip():
            continue
        turns.append({"role": "user", "content": line})
        turns = fit_context(fmt, turns, block - min(args.max_new_tokens, block // 2))
        prompt = fmt.render_prompt(turns)
        if len(prompt) >= block:
            out.write(f"(that message is {len(prompt)} tokens; the context holds {block})\n")
            turns.pop()
            continue
        out.write("assistant> ")
        streamer = TextStreamer(fmt.tokenizer, file=out)
        ids = model.generate(
            prompt[None],
            min(args.max_new_tokens, block - len(prompt)),
            do_sample=args.do_sample,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            repetition_penalty=args.repetition_penalty,
            eos_token_id=fmt.end_of_turn_id,
            seed=seed,
            streamer=streamer,
        )
        seed += 1  # a new draw per reply, still reproducible
        out.write("\n")
        turns.append({"role": "assistant", "content": fmt.reply(ids[0, len(prompt) :])})
    out.flush()
    return turns


if __name__ == "__main__":
    main()
