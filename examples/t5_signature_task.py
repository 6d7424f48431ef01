"""Part 2 of examples/train_t5.py: fine-tune on a task made from the corpus, no download — *list
a function's parameters*.

Every one-line `def` statement of the corpus is an example; the input is the line, the target
is the names of its parameters in order, as Python's own parser (`ast`) reads them — so the
model must copy the names and leave out the annotations, defaults, commas, `*` and `/`:

    input   def get(self, key: str, default=None, *args, **kwargs) -> Any:
    target  self key default args kwargs <|endoftext|>

Training lines come from the training part of the corpus; test lines from the held-out part
(other modules), minus any line that also occurs in common. The test decodes greedily with
the KV cache (`T5.generate(..., use_cache=True)`) until <|endoftext|> and reports exact-match
accuracy (every parameter name right, in order, and nothing else).

Not a script of its own: train_t5.py imports `signature_task`.
"""

from __future__ import annotations

import ast
import time

import numpy as np

from tinyllm.data import load_corpus
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay, warmup_linear


def parameter_names(def_line: str) -> list[str] | None:
    """The parameter names of a one-line `def ...:` statement, in order, by Python's parser;
    None when the line is not a complete def statement."""
    try:
        tree = ast.parse(def_line + " pass")
    except SyntaxError:
        return None
    node = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args]
    names += [a.vararg.arg] if a.vararg else []
    names += [x.arg for x in a.kwonlyargs]
    names += [a.kwarg.arg] if a.kwarg else []
    return names


def signature_examples(text, tok, eos_id, max_in, max_out) -> dict[tuple, tuple]:
    """{input ids: target ids} for the one-line defs of `text` that fit the lengths."""
    out = {}
    for line in text.splitlines():
        s = line.strip()
        if not (s.startswith("def ") or s.startswith("async def ")) or not s.endswith(":"):
            continue
        names = parameter_names(s)
        if names is None:
            continue
        src = tuple(tok.encode(s, disallowed_special=()))
        tgt = tuple(tok.encode(" ".join(names), disallowed_special=())) + (eos_id,)
        if len(src) <= max_in and len(tgt) <= max_out:
            out.setdefault(src, tgt)
    return out


def seq2seq_batch(pairs, pad_id):
    """Right-padded (input_ids, attention_mask, labels): labels −100 after each target."""
    s = max(len(p[0]) for p in pairs)
    t = max(len(p[1]) for p in pairs)
    x = np.full((len(pairs), s), pad_id, dtype=np.int64)
    am = np.zeros((len(pairs), s), dtype=np.int64)
    y = np.full((len(pairs), t), -100, dtype=np.int64)
    for b, (src, tgt) in enumerate(pairs):
        x[b, : len(src)], am[b, : len(src)], y[b, : len(tgt)] = src, 1, tgt
    return x, am, y


def exact_match(model, pairs, pad_id, eos_id, max_new, batch=50):
    """Greedy, cached decoding of every input; → (fraction exactly right, predictions)."""
    right, preds = 0, []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        x, am, _ = seq2seq_batch(chunk, pad_id)
        out = model.generate(
            x, max_new, attention_mask=am, eos_token_id=eos_id, pad_token_id=pad_id, use_cache=True
        )  # (B, 1 + ≤max_new)
        for row, (_, tgt) in zip(out[:, 1:], chunk):
            row = row.tolist()
            pred = tuple(row[: row.index(eos_id) + 1]) if eos_id in row else tuple(row)
            preds.append(pred)
            right += pred == tgt
    return right / max(len(pairs), 1), preds


def signature_task(args, tok, model, pad_id, eos_id) -> dict:
    corpus = load_corpus(args.data, max_bytes=args.data_bytes)
    lengths = (args.ft_input_len, args.ft_target_len)
    train = signature_examples(corpus.train, tok, eos_id, *lengths)
    val = signature_examples(corpus.val, tok, eos_id, *lengths)
    test = [(s, t) for s, t in val.items() if s not in train]
    test = [
        test[i]
        for i in np.random.default_rng(args.seed + 5).permutation(len(test))[
            : args.ft_eval_examples
        ]
    ]
    train = list(train.items())
    if not train or not test:
        raise SystemExit(
            f"train_t5: {len(train)} training and {len(test)} test def lines — "
            "the corpus is too small or not Python"
        )
    print(f"parameter task: {len(train)} training and {len(test)} test def lines")
    before, _ = exact_match(model, test, pad_id, eos_id, args.ft_target_len)
    opt = AdamW(param_groups_for_weight_decay(model, args.weight_decay), lr=args.ft_lr)
    rng = np.random.default_rng(args.seed + 3)
    losses = []
    for step in range(args.ft_steps):
        lr = warmup_linear(step, args.ft_lr, max(1, args.ft_steps // 10), args.ft_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        pick = rng.integers(0, len(train), size=args.ft_batch_size)
        x, am, y = seq2seq_batch([train[i] for i in pick], pad_id)
        _, loss = model(x, labels=y, attention_mask=am)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
        if step % args.log_interval == 0 or step == args.ft_steps - 1:
            print(f"ft step {step:4d} | loss {loss.item():.4f} | lr {lr:.2e}", flush=True)
    t0 = time.perf_counter()
    acc, preds = exact_match(model, test, pad_id, eos_id, args.ft_target_len)
    dt = time.perf_counter() - t0
    new_tokens = sum(len(p) for p in preds)
    print(
        f"parameter task: exact match {100 * acc:.1f}% of {len(test)} test lines (before "
        f"fine-tuning {100 * before:.1f}%); decoded {new_tokens / dt:.0f} tok/s with the cache"
    )
    examples = []
    for (src, tgt), pred in list(zip(test, preds))[:5]:
        examples.append(
            {
                "input": tok.decode(list(src)),
                "target": tok.decode(list(tgt[:-1])),
                "generated": tok.decode([i for i in pred if i != eos_id]),
            }
        )
        e = examples[-1]
        print(f"  {e['input']!s:50.50} -> {e['generated'][:40]!r} (truth {e['target']!r})")
    return {
        "task": "def line -> its parameter names (labels by ast)",
        "train_examples": len(train),
        "test_examples": len(test),
        "losses": losses,
        "exact_match": acc,
        "exact_match_before": before,
        "decode_tokens_per_second": new_tokens / max(dt, 1e-9),
        "examples": examples,
    }
