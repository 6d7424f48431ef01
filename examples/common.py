"""What every example shares: flags, data, evaluation, progress lines, the JSON report, resume.

The examples (examples/train_*.py …) are the experiments of the book; this module keeps them
short and alike. It is scaffolding for programs, not part of the library: it lives beside the
scripts (each imports it as `import common`, since a script's own folder is on Python's path)
and is free to make the choices a program makes — it raises glibc's malloc thresholds for the
process (tinyllm/runtime/allocator.py), which the library itself never does on import. Every
training example accepts the same core flags —

    --steps --batch-size --lr --seed --data --report PATH

— where `--batch-size` is the *global* batch (split across data-parallel ranks, so the same flags
give the same losses on any number of ranks), and writes the same JSON report: `losses` (global
loss per step), `val_losses`, `params`, `tokens_per_second`, plus what the script adds. Every
flag is checked as it is parsed (examples/flags.py): a bad value stops the script with a
one-line usage error before any data is read.

Data: `prepare_text_data` loads the corpus (the Python standard library's source by default, or
any UTF-8 file), trains a byte-level BPE tokenizer on its training part, and encodes both parts.
The result is cached under `--cache-dir` (default runs/cache), keyed by a hash of the corpus
text and the tokenizer settings, so a second run — or the other MPI ranks — start in seconds.

MFU (model FLOPs utilization, PaLM appendix B): model FLOPs per second ÷ peak FLOP/s, where the
model FLOPs of a token are 6N + 12·L·H·Q·T and the peak is measured on this machine by a BLAS
matmul benchmark (tinyllm.accounting.measure_matmul_peak).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import time

import flags
import numpy as np

from tinyllm.checkpoint import load_checkpoint, new_run_id, save_checkpoint
from tinyllm.data import ByteLevelBPE, get_batch, load_corpus, tokenize_corpus
from tinyllm.engine import no_grad
from tinyllm.models import GPTConfig
from tinyllm.optim import warmup_cosine
from tinyllm.runtime import allocator
from tinyllm.runtime.fileio import atomic_write_bytes

allocator.configure()  # a training program: keep freed arrays' pages for the next step


# ---- stop and resume: the checkpoint also carries the batch stream and the report ------------


def save_run(
    path: str, model, optimizer, step: int, config: dict, data_rng, report: dict, tokenizer=None
):
    """Checkpoint a run so that `resume_run` continues it with the losses of an uninterrupted
    one: model, optimizer, step, config and tokenizer (tinyllm.checkpoint), plus the batch
    generator's state and the report so far (which keeps the run's id across resumes)."""
    run_id = report.setdefault("run_id", new_run_id())
    save_checkpoint(
        path,
        model,
        optimizer,
        step=step,
        config=config,
        extra={"data_rng": data_rng.bit_generator.state, "report": report},
        tokenizer=tokenizer,
        run_id=run_id,
    )
    print(f"checkpoint saved to {path}")


def resume_run(path: str, model, optimizer, data_rng, tokenizer=None) -> tuple[int, dict]:
    """Load what `save_run` wrote into model, optimizer and data_rng; → (step, report). A
    checkpoint whose tokenizer is not `tokenizer` (other --data?) is a CheckpointError."""
    meta = load_checkpoint(path, model, optimizer, tokenizer=tokenizer)
    data_rng.bit_generator.state = meta["extra"]["data_rng"]
    print(f"resumed from {path} at step {meta['step']}")
    return meta["step"], meta["extra"]["report"]


def resume_needs_checkpoint(args) -> str | None:
    """The cross-flag check of `--resume`: the `--checkpoint` to continue must exist."""
    if args.resume:
        try:
            flags.readable_file(args.checkpoint)
        except argparse.ArgumentTypeError as e:
            return f"--resume: --checkpoint {e}"
    return None


# ---- flags ----------------------------------------------------------------------------------


def add_common_args(
    parser: argparse.ArgumentParser, *, steps: int, batch_size: int, lr: float, seed: int = 1337
) -> argparse.ArgumentParser:
    """The training flags every example shares, each checked where it is parsed (flags.py)."""
    g = parser.add_argument_group("training (shared by every example)")
    g.add_argument("--steps", type=flags.positive_int, default=steps, help="optimizer steps")
    g.add_argument(
        "--batch-size",
        type=flags.positive_int,
        default=batch_size,
        help="global batch (sequences per step, split across data-parallel ranks)",
    )
    g.add_argument("--lr", type=flags.finite_positive_float, default=lr, help="peak learning rate")
    g.add_argument(
        "--seed",
        type=flags.nonnegative_int,
        default=seed,
        help="seed of the model and the batches",
    )
    g.add_argument(
        "--data",
        type=flags.readable_text_file,
        default=None,
        help="UTF-8 text file to train on (default: the Python standard library)",
    )
    g.add_argument(
        "--data-bytes",
        type=flags.positive_int,
        default=2_000_000,
        help="bytes of the corpus to read",
    )
    flags.add_report(g)
    g.add_argument(
        "--cache-dir",
        type=flags.writable_dir,
        default=os.path.join("runs", "cache"),
        help="where tokenizers and encoded corpora are cached",
    )
    g.add_argument(
        "--eval-interval",
        type=flags.positive_int,
        default=50,
        help="steps between validations",
    )
    g.add_argument(
        "--eval-iters", type=flags.positive_int, default=4, help="batches per validation"
    )
    g.add_argument(
        "--log-interval",
        type=flags.positive_int,
        default=10,
        help="steps between progress lines",
    )
    g.add_argument(
        "--warmup",
        type=flags.nonnegative_int,
        default=None,
        help="warmup steps (default: steps/20)",
    )
    g.add_argument(
        "--weight-decay",
        type=flags.finite_nonnegative_float,
        default=0.1,
        help="AdamW's decoupled weight decay (0: none)",
    )
    g.add_argument(
        "--grad-clip",
        type=flags.grad_clip,
        default=1.0,
        help="clip the global gradient norm to this (0 or off: no clipping)",
    )
    return parser


def add_model_args(
    parser: flags.ExampleParser,
    *,
    n_layer: int,
    n_head: int,
    n_embd: int,
    block_size: int,
    vocab_size: int,
    dropout: float = 0.0,
    n_special: int = 1,
):
    """The model-size flags; `n_special` special tokens must fit in the vocabulary beside the
    256 byte tokens."""
    g = parser.add_argument_group("model size")
    g.add_argument("--n-layer", type=flags.positive_int, default=n_layer, help="blocks")
    g.add_argument(
        "--n-head", type=flags.positive_int, default=n_head, help="attention heads per block"
    )
    g.add_argument(
        "--n-embd",
        type=flags.positive_int,
        default=n_embd,
        help="embedding width (a multiple of --n-head)",
    )
    g.add_argument(
        "--block-size", type=flags.positive_int, default=block_size, help="context length"
    )
    g.add_argument(
        "--vocab-size",
        type=flags.positive_int,
        default=vocab_size,
        help="BPE vocabulary size (256 bytes + merges + special tokens)",
    )
    g.add_argument(
        "--dropout",
        type=flags.float_in(0.0, 1.0, high_open=True),
        default=dropout,
        help="dropout probability",
    )

    @parser.add_check
    def model_shape(args):
        if args.n_embd % args.n_head:
            return (
                f"--n-embd {args.n_embd} must divide by --n-head {args.n_head} "
                "(each head gets n_embd / n_head dimensions)"
            )
        least = 256 + n_special
        if args.vocab_size < least:
            return (
                f"--vocab-size must be at least {least} (256 bytes + {n_special} special "
                f"tokens), got {args.vocab_size}"
            )
        return None

    return parser


def gpt_config(args, vocab_size: int) -> GPTConfig:
    """The GPTConfig that the model flags (`add_model_args`) describe, for `vocab_size` tokens."""
    return GPTConfig(
        block_size=args.block_size,
        vocab_size=vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=args.dropout,
    )


# ---- data -----------------------------------------------------------------------------------


def data_cache_key(text: str, vocab_size: int, special_tokens) -> str:
    h = hashlib.sha256()
    h.update(text.encode("utf-8", errors="surrogatepass"))
    h.update(
        json.dumps(
            {"vocab_size": vocab_size, "special": list(special_tokens), "format": 2}
        ).encode()
    )
    return h.hexdigest()[:16]


def prepare_text_data(
    data: str | None,
    vocab_size: int,
    max_bytes: int,
    cache_dir: str | None = os.path.join("runs", "cache"),
    special_tokens=("<|endoftext|>",),
    log=print,
    only_load: bool = False,
):
    """(tokenizer, train_ids, val_ids) for the corpus, trained/encoded once and cached.

    With `only_load=True` the cache must already exist."""
    corpus = load_corpus(data, max_bytes=max_bytes)
    key = data_cache_key(corpus.train + "\x00" + corpus.val, vocab_size, special_tokens)
    tok_path = ids_path = None
    if cache_dir:
        tok_path = os.path.join(cache_dir, f"tokenizer-{key}.txt")
        ids_path = os.path.join(cache_dir, f"ids-{key}.npz")
        if os.path.exists(tok_path) and os.path.exists(ids_path):
            tok = ByteLevelBPE.load(tok_path)
            with np.load(ids_path, allow_pickle=False) as z:
                return tok, z["train"], z["val"]
    if only_load:
        raise FileNotFoundError(f"prepare_text_data: cache {tok_path} / {ids_path} missing")
    t0 = time.perf_counter()
    tok = ByteLevelBPE().train(
        corpus.train, vocab_size=vocab_size, special_tokens=list(special_tokens)
    )
    t1 = time.perf_counter()
    train_ids, val_ids = tokenize_corpus(corpus, tok)
    t2 = time.perf_counter()
    log(
        f"data: {corpus!r}; BPE vocab {tok.vocab_size} trained in {t1 - t0:.1f} s, "
        f"encoded {len(train_ids):,} + {len(val_ids):,} tokens in {t2 - t1:.1f} s "
        f"({len(corpus.train.encode()) / max(1, len(train_ids)):.2f} bytes/token)"
    )
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        tok.save(tok_path)
        buf = io.BytesIO()
        np.savez(buf, train=train_ids, val=val_ids)
        atomic_write_bytes(ids_path, buf.getvalue())
    return tok, train_ids, val_ids


def share_text_data(comm, args, log=print):
    """`prepare_text_data` for several MPI ranks: rank 0 builds (or loads from its cache) the
    tokenizer and the encoded corpus and sends them to the others over `comm` (anything with
    `rank` and `bcast_json`, e.g. a sim.Communicator) — no files shared between ranks, so it
    works across machines."""
    payload = None
    if comm.rank == 0:
        tok, train_ids, val_ids = prepare_text_data(
            args.data, args.vocab_size, args.data_bytes, args.cache_dir, log=log
        )
        payload = {
            "merges": [[a.hex(), b.hex()] for a, b in tok.merges],
            "special": list(tok.special_tokens),
            "train": train_ids.tolist(),
            "val": val_ids.tolist(),
        }
    payload = comm.bcast_json(payload)
    if comm.rank == 0:
        return tok, train_ids, val_ids
    tok = ByteLevelBPE(
        [(bytes.fromhex(a), bytes.fromhex(b)) for a, b in payload["merges"]], payload["special"]
    )
    return (
        tok,
        np.array(payload["train"], dtype=np.int64),
        np.array(payload["val"], dtype=np.int64),
    )


# ---- evaluation, progress, report -----------------------------------------------------------


def estimate_loss(
    forward,
    data: np.ndarray,
    batch_size: int,
    block_size: int,
    iters: int,
    rng: np.random.Generator,
) -> float:
    """Mean loss of `forward(x, y) -> (logits, loss)` over `iters` random batches, no grad."""
    losses = []
    with no_grad():
        for _ in range(iters):
            x, y = get_batch(data, batch_size, block_size, rng)
            _, loss = forward(x, y)
            losses.append(loss.item())
    return float(np.mean(losses))


class Throughput:
    """Tokens per second and MFU over the last interval."""

    def __init__(self, flops_per_token: float | None = None, peak_flops: float | None = None):
        self.flops_per_token = flops_per_token
        self.peak = peak_flops
        self.t = time.perf_counter()
        self.tokens = 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def read(self) -> tuple[float, float | None]:
        now = time.perf_counter()
        dt = max(now - self.t, 1e-9)
        tps = self.tokens / dt
        mfu = None
        if self.flops_per_token and self.peak:
            mfu = tps * self.flops_per_token / self.peak
        self.t, self.tokens = now, 0
        return tps, mfu


def write_report(path: str | None, report: dict) -> None:
    """Write the JSON report atomically (nothing is written when path is None)."""
    if not path:
        return
    atomic_write_bytes(path, (json.dumps(report, indent=2, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def lr_at(step: int, args) -> float:
    """Warmup then cosine decay to 10% of the peak (tinyllm.optim.warmup_cosine)."""
    warmup = args.warmup if args.warmup is not None else max(1, args.steps // 20)
    return warmup_cosine(step, args.lr, warmup, args.steps, args.lr * 0.1)
