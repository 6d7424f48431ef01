"""Part 2 of examples/train_bert.py: fine-tune a classifier to name a hidden keyword.

The task is made from the corpus itself, so nothing is downloaded. Every line of code that starts
with one of the keywords def, class, return, if, for, raise, import becomes an example; the
keyword is replaced by [MASK], and the classifier, reading the [CLS] position, must say which
keyword it was:

    [CLS] [MASK] _parse(self, argv): [SEP]        -> def
    [CLS] [MASK] ValueError("bad value") [SEP]     -> raise

Training lines come from the training part of the corpus, test lines from the held-out part
without any line that also occurs among the training lines; both are sampled class-balanced,
and the accuracy reported is the balanced one (the mean of the per-class accuracies: chance is
1/7). Not a script of its own: train_bert.py imports `keyword_task`.
"""

from __future__ import annotations

import numpy as np

from tinyllm.data import load_corpus
from tinyllm.engine import no_grad
from tinyllm.models import BertConfig, BertForSequenceClassification
from tinyllm.optim import AdamW, clip_grad_norm_, param_groups_for_weight_decay, warmup_linear

KEYWORDS = ("def", "class", "return", "if", "for", "raise", "import")


def keyword_examples(text: str, tok, max_tokens: int) -> dict[str, list[list[int]]]:
    """{keyword: [token ids of the line after the keyword, ...]} for the lines of `text` that
    start with `keyword + " "`; the ids are cut to `max_tokens`; repeated lines are kept once."""
    found = {k: {} for k in KEYWORDS}
    for line in text.splitlines():
        s = line.strip()
        for k in KEYWORDS:
            if s.startswith(k + " "):
                rest = s[len(k) :]  # keeps the leading space
                found[k].setdefault(rest, tok.encode(rest, disallowed_special=())[:max_tokens])
                break
    return {k: list(v.values()) for k, v in found.items()}


def keyword_rows(examples: list[list[int]], special: dict):
    """[CLS] [MASK] rest [SEP] [PAD]... → (input_ids, attention_mask), each (B, longest + 3)."""
    length = max(len(e) for e in examples) + 3
    ids = np.full((len(examples), length), special["pad_id"], dtype=np.int64)
    am = np.zeros((len(examples), length), dtype=np.int64)
    for b, rest in enumerate(examples):
        row = [special["cls_id"], special["mask_id"], *rest, special["sep_id"]]
        ids[b, : len(row)] = row
        am[b, : len(row)] = 1
    return ids, am


def balanced_batch(train_sets, batch_size, rng):
    """A keyword drawn uniformly for each row, then one of its lines uniformly."""
    labels = rng.integers(0, len(train_sets), size=batch_size)
    return [train_sets[k][rng.integers(len(train_sets[k]))] for k in labels], labels


def classify(model, rows, am, batch=128) -> np.ndarray:
    preds = []
    model.eval()
    with no_grad():
        for i in range(0, len(rows), batch):
            logits, _ = model(rows[i : i + batch], am[i : i + batch])
            preds.append(logits.data.argmax(-1))
    model.train()
    return np.concatenate(preds)


def balanced_accuracy(pred, labels, n_classes) -> float:
    """Mean over classes of the fraction of that class's examples predicted right."""
    return float(
        np.mean([np.mean(pred[labels == k] == k) for k in range(n_classes) if (labels == k).any()])
    )


def finetune_classifier(model, train_sets, test, special, args, log) -> dict:
    """AdamW with linear warmup/decay on class-balanced batches; returns losses and accuracy."""
    opt = AdamW(param_groups_for_weight_decay(model, args.weight_decay), lr=args.cls_lr)
    rng = np.random.default_rng(args.seed + 3)  # the same batches for every model
    losses = []
    for step in range(args.cls_steps):
        lr = warmup_linear(step, args.cls_lr, max(1, args.cls_steps // 10), args.cls_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        examples, labels = balanced_batch(train_sets, args.cls_batch_size, rng)
        x, am = keyword_rows(examples, special)
        _, loss = model(x, am, labels=labels)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
        if step % args.log_interval == 0 or step == args.cls_steps - 1:
            log(f"cls step {step:4d} | loss {loss.item():.4f} | lr {lr:.2e}")
    test_rows, test_am, test_labels = test
    pred = classify(model, test_rows, test_am)
    return {
        "losses": losses,
        "accuracy": balanced_accuracy(pred, test_labels, len(KEYWORDS)),
        "predictions": pred,
    }


def keyword_task(args, tok, special, model, rng_seed) -> dict:
    corpus = load_corpus(args.data, max_bytes=args.data_bytes)
    max_rest = args.cls_len - 3  # room for [CLS] [MASK] … [SEP]
    train = keyword_examples(corpus.train, tok, max_rest)
    val = keyword_examples(corpus.val, tok, max_rest)
    seen = {k: {tuple(e) for e in v} for k, v in train.items()}
    rng = np.random.default_rng(rng_seed)
    test_examples, test_labels = [], []
    for k, kw in enumerate(KEYWORDS):
        if not train[kw]:
            raise SystemExit(
                f"train_bert: no training line starts with {kw!r}; the corpus "
                f"({corpus.name}, {args.data_bytes} bytes) is too small or not Python"
            )
        unseen = [e for e in val[kw] if tuple(e) not in seen[kw]]
        pick = rng.permutation(len(unseen))[: args.cls_eval_per_class]
        test_examples += [unseen[i] for i in pick]
        test_labels += [k] * len(pick)
    if not test_examples:
        raise SystemExit("train_bert: the validation text holds no keyword lines to test on")
    test_labels = np.array(test_labels)
    test_rows, test_am = keyword_rows(test_examples, special)
    train_sets = [train[kw] for kw in KEYWORDS]
    counts = {kw: [len(train[kw]), int((test_labels == k).sum())] for k, kw in enumerate(KEYWORDS)}
    print(f"keyword task: lines per keyword [train, test] {counts}")

    test = (test_rows, test_am, test_labels)
    head_seed = args.seed + 2  # same head init for both runs
    clf = BertForSequenceClassification.from_pretrained_mlm(
        model, len(KEYWORDS), generator=np.random.default_rng(head_seed)
    )
    print("fine-tuning the pre-trained encoder:")
    result = finetune_classifier(clf, train_sets, test, special, args, print)
    out = {
        "task": "name the keyword hidden by [MASK] at the start of a line of code",
        "labels": list(KEYWORDS),
        "lines": counts,
        "chance": 1 / len(KEYWORDS),
        "losses": result["losses"],
        "accuracy": result["accuracy"],
    }
    print(
        f"keyword task: balanced test accuracy {100 * result['accuracy']:.1f}% "
        f"(chance {100 / len(KEYWORDS):.1f}%)"
    )
    for i in range(0, len(test_examples), max(1, len(test_examples) // 5))[:5]:
        guess, truth = KEYWORDS[result["predictions"][i]], KEYWORDS[test_labels[i]]
        print(f"  [MASK]{tok.decode(test_examples[i])!s:40.40}  -> {guess:6s} (truth {truth})")
    if not args.no_baseline:
        scratch = BertForSequenceClassification(
            BertConfig(**{**model.config.to_dict(), "num_labels": len(KEYWORDS)}),
            generator=np.random.default_rng(head_seed),
        )
        print("the same fine-tuning from a random initialization:")
        base = finetune_classifier(scratch, train_sets, test, special, args, print)
        out["scratch_losses"], out["scratch_accuracy"] = base["losses"], base["accuracy"]
        print(
            f"keyword task: pre-trained {100 * result['accuracy']:.1f}% vs from scratch "
            f"{100 * base['accuracy']:.1f}% balanced test accuracy"
        )
    return out
