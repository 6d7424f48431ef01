"""Training batches for the three pre-training objectives, in plain NumPy.

Every builder takes an explicit `np.random.Generator` (same seed -> same batches) and returns
int64 arrays. The data is one long 1-D array of token ids (a tokenized corpus).

Causal language modelling (GPT; nanoGPT's `get_batch`): pick B random windows of T+1
consecutive tokens; the input is the first T, the target the last T -- the same window shifted
by one, so position t is trained to predict token t+1:

    x[b, t] = data[i_b + t],   y[b, t] = data[i_b + t + 1]

Masked language modelling (BERT, Devlin et al. 2019, section 3.1): each non-special token is
chosen with probability 15%. A chosen token is replaced by [MASK] with probability 80%, by a
random (non-special) token with probability 10%, and kept with probability 10%; the model must
predict the original token at every chosen position. Labels hold the original id at chosen
positions and -100 (cross_entropy's ignore_index) elsewhere. Keeping or randomising some chosen
tokens means the model cannot learn that "only [MASK] positions matter", since [MASK] never
appears at fine-tuning time. Simplification: we choose each token independently (a Bernoulli
draw, as Hugging Face's DataCollatorForLanguageModeling does); BERT's original script chose
exactly round(15% x length) positions per sequence.

Span corruption (T5, Raffel et al. 2020, section 3.1.4 and their `random_spans_noise_mask`):
noise_density = 15% of the tokens, in spans of mean length 3, are dropped from the input; each
dropped span is replaced by one sentinel token <extra_id_k>, and the target lists each sentinel
followed by the tokens it replaced:

    original  Thank you for inviting me to your party last week
    inputs    Thank you <X> me to your party <Y> week
    targets   <X> for inviting <Y> last <Z>

For a sequence of length L the counts are fixed, not random:

    noise tokens  N = round(L * noise_density)           (clamped to 1 .. L-1)
    noise spans   S = round(N / mean_noise_span_length)  (at least 1)

and the span lengths are a uniformly random composition (split into S positive parts) of N,
the kept stretches likewise of L - N; kept and noise spans alternate, starting with a kept one.
So inputs have length L - N + S and targets N + S + 1 for every row: batches need no padding.
Targets end with one more sentinel, as in the paper's Figure 2 (T5's code appends EOS
instead; pass eos_id to append one to both). One property of T5's procedure carries over: as the
spans alternate starting with kept tokens, the last span is always noise (the sequence's final
tokens are always dropped). T5 later added an optional random roll of the mask against that;
we keep the original form, in which the lengths above are exact.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

IGNORE_INDEX = -100  # labels with this value add nothing to cross_entropy


def _as_ids(data, name: str = "data") -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 1 or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 1-D integer array of token ids, got shape "
            f"{data.shape} and dtype {data.dtype}"
        )
    return data


def random_windows(data, batch_size: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """B windows of `length` consecutive tokens at uniformly random starts: (B, length) int64."""
    data = _as_ids(data)
    if length <= 0 or batch_size <= 0:
        raise ValueError(f"batch_size and length must be positive, got {batch_size}, {length}")
    if len(data) < length:
        raise ValueError(f"data holds {len(data)} tokens, fewer than one window of {length}")
    starts = rng.integers(0, len(data) - length + 1, size=batch_size)  # (B,)
    return data[starts[:, None] + np.arange(length)].astype(np.int64)  # (B, length)


# ---- causal LM ---------------------------------------------------------------------------


def get_batch(
    data, batch_size: int, block_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y), each (B, T) int64, with y[:, t] = x[:, t+1]'s successor in the data."""
    window = random_windows(data, batch_size, block_size + 1, rng)  # (B, T+1)
    return window[:, :-1], window[:, 1:]


# ---- masked LM -----------------------------------------------------------------------------


def mask_tokens(
    input_ids,
    rng: np.random.Generator,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    mlm_probability: float = 0.15,
    mask_fraction: float = 0.8,
    random_fraction: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of an int array of any shape. Returns (inputs, labels), int64.

    special_ids are never chosen (nor drawn as random replacements); random replacements are
    drawn uniformly from the other ids in [0, vocab_size).
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    special = np.unique(np.asarray(list(special_ids) + [mask_id], dtype=np.int64))
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"mask_tokens: ids must lie in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]"
        )
    if not (
        0 <= mlm_probability <= 1
        and mask_fraction >= 0
        and random_fraction >= 0
        and mask_fraction + random_fraction <= 1
    ):
        raise ValueError(
            f"mask_tokens: bad probabilities p={mlm_probability}, "
            f"mask={mask_fraction}, random={random_fraction}"
        )
    ordinary = np.setdiff1d(np.arange(vocab_size), special)  # candidates for random tokens
    if len(ordinary) == 0:
        raise ValueError("mask_tokens: every id is special; nothing to draw random tokens from")

    chosen = ~np.isin(ids, special) & (rng.random(ids.shape) < mlm_probability)
    labels = np.where(chosen, ids, IGNORE_INDEX)
    u = rng.random(ids.shape)  # one draw decides the fate of a chosen token
    to_mask = chosen & (u < mask_fraction)
    to_random = chosen & (u >= mask_fraction) & (u < mask_fraction + random_fraction)
    random_ids = ordinary[rng.integers(0, len(ordinary), size=ids.shape)]
    inputs = np.where(to_mask, mask_id, np.where(to_random, random_ids, ids))
    return inputs.astype(np.int64), labels.astype(np.int64)


def make_mlm_batch(
    sequences: Sequence[Sequence[int]],
    rng: np.random.Generator,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    mask_id: int,
    vocab_size: int,
    special_ids: Iterable[int] = (),
    length: int | None = None,
    mlm_probability: float = 0.15,
):
    """[CLS] seq [SEP] [PAD]..., masked. Returns (input_ids, labels, attention_mask), (B, L).

    length: L, the padded length (default: the longest sequence + 2). attention_mask is 1 for
    real tokens ([CLS], [SEP] included) and 0 for padding.
    """
    longest = max((len(s) for s in sequences), default=0) + 2
    length = longest if length is None else length
    if length < longest:
        raise ValueError(
            f"make_mlm_batch: length={length} < longest sequence + [CLS] + [SEP] = {longest}"
        )
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), length), dtype=np.int64)
    for b, seq in enumerate(sequences):
        n = len(seq)
        ids[b, 0], ids[b, 1 : n + 1], ids[b, n + 1] = cls_id, seq, sep_id
        attention_mask[b, : n + 2] = 1
    special = set(special_ids) | {cls_id, sep_id, pad_id, mask_id}
    inputs, labels = mask_tokens(
        ids,
        rng,
        mask_id=mask_id,
        vocab_size=vocab_size,
        special_ids=special,
        mlm_probability=mlm_probability,
    )
    return inputs, labels, attention_mask


def get_mlm_batch(data, batch_size: int, block_size: int, rng: np.random.Generator, **ids):
    """Random windows of block_size - 2 tokens, as masked [CLS] window [SEP] rows (no padding).

    Keyword arguments as make_mlm_batch (cls_id, sep_id, pad_id, mask_id, vocab_size, ...).
    Returns (input_ids, labels, attention_mask), each (B, block_size) int64.
    """
    if block_size < 3:
        raise ValueError(
            f"get_mlm_batch: block_size={block_size} leaves no room for tokens "
            "between [CLS] and [SEP]"
        )
    windows = random_windows(data, batch_size, block_size - 2, rng)
    return make_mlm_batch(list(windows), rng, **ids)


# ---- span corruption ---------------------------------------------------------------------------


def span_counts(
    length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """(noise tokens N, noise spans S) for a sequence of `length` tokens, as T5 computes them."""
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    if not 0 < noise_density < 1 or mean_noise_span_length <= 0:
        raise ValueError(
            f"span corruption: noise_density={noise_density} must be in (0, 1) and "
            f"mean_noise_span_length={mean_noise_span_length} positive"
        )
    n_noise = min(max(round(length * noise_density), 1), length - 1)
    n_spans = max(round(n_noise / mean_noise_span_length), 1)
    # each of the S noise and S kept spans needs a token (T5 leaves this to the caller)
    n_spans = min(n_spans, n_noise, length - n_noise)
    return n_noise, n_spans


def span_corruption_lengths(
    length: int, noise_density: float = 0.15, mean_noise_span_length: float = 3.0
) -> tuple[int, int]:
    """(input length, target length) of one corrupted sequence of `length` tokens."""
    n_noise, n_spans = span_counts(length, noise_density, mean_noise_span_length)
    return length - n_noise + n_spans, n_noise + n_spans + 1


def random_segmentation(n_items: int, n_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Lengths of a uniformly random split of n_items into n_segments positive parts.

    Choose n_segments - 1 distinct cut points among the n_items - 1 gaps between items; every
    composition is one choice of cuts, so all are equally likely (T5's `_random_segmentation`).
    """
    cuts = np.sort(rng.choice(n_items - 1, size=n_segments - 1, replace=False)) + 1
    return np.diff(np.concatenate([[0], cuts, [n_items]]))


def random_spans_noise_mask(
    length: int,
    rng: np.random.Generator,
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
) -> np.ndarray:
    """Boolean (length,) mask, True at noise tokens: S kept spans and S noise spans alternating,
    kept first, with random lengths (T5's random_spans_noise_mask)."""
    n_noise, n_spans = span_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = random_segmentation(n_noise, n_spans, rng)
    kept_lengths = random_segmentation(length - n_noise, n_spans, rng)
    interleaved = np.stack([kept_lengths, noise_lengths], axis=1).reshape(-1)  # kept, noise, ...
    is_noise = np.repeat(np.tile([False, True], n_spans), interleaved)
    return is_noise


def span_corrupt(
    tokens, noise_mask: np.ndarray, sentinel_ids: Sequence[int], eos_id: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) for one sequence: noise spans -> sentinels, and the reverse."""
    tokens = _as_ids(tokens, "tokens").astype(np.int64)
    noise_mask = np.asarray(noise_mask, dtype=bool)
    if noise_mask.shape != tokens.shape:
        raise ValueError(f"noise mask shape {noise_mask.shape} != tokens shape {tokens.shape}")
    # a span starts where the mask differs from the previous position
    span_start = noise_mask & ~np.concatenate([[False], noise_mask[:-1]])
    n_spans = int(span_start.sum())
    if len(sentinel_ids) < n_spans + 1:
        raise ValueError(
            f"span_corrupt: {n_spans} spans need {n_spans + 1} sentinel ids, "
            f"got {len(sentinel_ids)}"
        )
    sentinels = np.asarray(sentinel_ids, dtype=np.int64)
    span_index = np.maximum(np.cumsum(span_start) - 1, 0)  # noise span of each position
    # inputs: kept tokens, and each noise span's first position turned into its sentinel
    keep = ~noise_mask | span_start
    inputs = np.where(span_start, sentinels[span_index], tokens)[keep]
    # targets: the noise tokens, each span preceded by its sentinel, then a closing sentinel
    noise_tokens = tokens[noise_mask]
    targets = np.insert(noise_tokens, np.flatnonzero(span_start[noise_mask]), sentinels[:n_spans])
    targets = np.append(targets, sentinels[n_spans])  # <Z> in the paper's Figure 2
    if eos_id is not None:
        inputs, targets = np.append(inputs, eos_id), np.append(targets, eos_id)
    return inputs.astype(np.int64), targets.astype(np.int64)


def get_span_corruption_batch(
    data,
    batch_size: int,
    length: int,
    rng: np.random.Generator,
    *,
    sentinel_ids: Sequence[int],
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    eos_id: int | None = None,
):
    """Random windows of `length` tokens, span-corrupted. Returns (inputs, targets) int64 with
    shapes (B, length - N + S [+1]) and (B, N + S + 1 [+1]) -- see span_corruption_lengths."""
    windows = random_windows(data, batch_size, length, rng)
    rows = [
        span_corrupt(
            w,
            random_spans_noise_mask(length, rng, noise_density, mean_noise_span_length),
            sentinel_ids,
            eos_id,
        )
        for w in windows
    ]
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])
