"""Decoding: turning a next-token distribution into text, one token at a time.

A language model gives, for a prefix x₁…x_t, scores (logits) z over the vocabulary; the next
token is chosen from them, appended, and the model is asked again. How it is chosen is the
decoding strategy. tinyllm follows Hugging Face's `generate` names and order of operations:

1. repetition penalty (Keskar et al. 2019, CTRL): every token already in the sequence has its
   score divided by the penalty if positive, multiplied if negative — it becomes less likely;
2. temperature T: z ← z / T (T < 1 sharpens, T > 1 flattens the distribution);
3. top-k: keep the k highest scores, set the rest to −∞;
4. top-p / nucleus (Holtzman et al. 2020): keep the smallest set of most likely tokens whose
   total probability reaches p — the token whose probability crosses p is kept;
5. greedy (do_sample=False): take argmax z; sampling: draw from softmax(z).

Steps 2–4 only apply when sampling, as in Hugging Face. Generation stops after
`max_new_tokens`, or once every sequence has produced `eos_token_id` — one id or a list of them
(a chat model stops at its end-of-turn token) — and finished sequences are padded with
`pad_token_id` (by default the first EOS id).

Streaming (`streamer=`, Hugging Face's protocol): `streamer.put(ids)` is called once with the
prompt (B, T) and then with each step's new tokens (B,), and `streamer.end()` when generation
stops, so a chat can print every token as soon as it exists. `TextStreamer` prints decoded
text; a token that ends halfway through a UTF-8 character waits for the rest of it.

Batched prompts of different lengths are *left*-padded and described by `attention_mask`
(1 = real token, 0 = padding), so every prompt ends at the same column and the new tokens line
up; padding is never attended to and positions count real tokens only.

KV cache (`use_cache=True`): the first call runs the whole prompt ("prefill") and stores every
layer's keys and values; each later call feeds only the newest token. The tokens produced are
the same as without the cache — only the work differs: O(T) per token instead of O(T²).
When a sequence outgrows the model's block_size, the context is cropped to the last
block_size tokens (as nanoGPT does) and, since every position then shifts, the cache is rebuilt.
"""

from __future__ import annotations

import codecs
import math
import numbers
import sys

import numpy as np

from tinyllm.engine import Tensor, no_grad, policy
from tinyllm.runtime.random import generator_or_default

# ---- logits processing (on NumPy arrays, float64 for stable sorting/cumsum) ----------------


def apply_repetition_penalty(
    scores: np.ndarray, tokens: np.ndarray, penalty: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """scores (B, V); tokens (B, T) already in each sequence (positions where mask==0 skipped)."""
    if penalty == 1.0:
        return scores
    out = scores.copy()
    for b in range(scores.shape[0]):
        seen = tokens[b] if mask is None else tokens[b][mask[b].astype(bool)]
        ids = np.unique(seen)
        s = out[b, ids]
        out[b, ids] = np.where(s < 0, s * penalty, s / penalty)
    return out


def apply_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(int(k), scores.shape[-1])
    kth = np.sort(scores, axis=-1)[:, -k][:, None]  # the k-th largest score per row
    return np.where(scores < kth, -np.inf, scores)


# A mass within this distance of p counts as reaching p: 0.4 + 0.3 + 0.2 sums to 0.8999999999999999
# in floating point, and exp/normalize/cumsum add a few ulps more, yet that set reaches p = 0.9.
TOP_P_TOLERANCE = 1e-9


def apply_top_p(scores: np.ndarray, p: float) -> np.ndarray:
    order = np.argsort(-scores, axis=-1, kind="stable")  # most likely first
    sorted_scores = np.take_along_axis(scores, order, axis=-1)
    probs = np.exp(sorted_scores - sorted_scores[:, :1])
    probs /= probs.sum(axis=-1, keepdims=True)
    before = np.cumsum(probs, axis=-1) - probs  # mass of the tokens ranked above
    remove_sorted = before >= p - TOP_P_TOLERANCE  # the crossing token is kept
    remove_sorted[:, 0] = False  # always keep the most likely
    remove = np.zeros_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, -np.inf, scores)


def choose_next(scores: np.ndarray, do_sample: bool, rng: np.random.Generator) -> np.ndarray:
    """(B, V) processed scores → (B,) token ids."""
    if not do_sample:
        return scores.argmax(axis=-1)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(scores.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=-1), scores.shape[-1] - 1)


def process_scores(scores, tokens, mask, do_sample, temperature, top_k, top_p, repetition_penalty):
    scores = apply_repetition_penalty(scores.astype(np.float64), tokens, repetition_penalty, mask)
    if do_sample:
        if temperature != 1.0:
            scores = scores / temperature
        if top_k is not None:
            scores = apply_top_k(scores, top_k)
        if top_p is not None and top_p < 1.0:
            scores = apply_top_p(scores, top_p)
    return scores


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def _check_options(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty):
    """Every decoding option checked before any work: types, ranges, and NaN / inf."""
    if not _is_int(max_new_tokens) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int ≥ 0, got {max_new_tokens!r}")
    if not isinstance(do_sample, (bool, np.bool_)):
        raise TypeError(f"generate: do_sample must be True or False, got {do_sample!r}")
    if not _is_real(temperature) or not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"generate: temperature must be a finite number ≥ 0, got {temperature!r}")
    if do_sample and temperature == 0:
        raise ValueError("generate: temperature must be > 0 when sampling, got 0")
    if top_k is not None and (not _is_int(top_k) or top_k <= 0):
        raise ValueError(f"generate: top_k must be a positive integer, got {top_k!r}")
    if top_p is not None and (not _is_real(top_p) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p!r}")
    if (
        not _is_real(repetition_penalty)
        or not math.isfinite(repetition_penalty)
        or repetition_penalty <= 0
    ):
        raise ValueError(
            f"generate: repetition_penalty must be a finite number > 0, got {repetition_penalty!r}"
        )


def _check_ids_in_vocab(eos, pad, vocab_size) -> None:
    """End and padding ids must be tokens the model can emit."""
    if eos is not None and (eos >= vocab_size).any():
        raise ValueError(
            f"generate: eos_token_id {eos.tolist()} is outside the vocabulary [0, {vocab_size})"
        )
    if pad is not None and (not _is_int(pad) or not 0 <= pad < vocab_size):
        raise ValueError(
            f"generate: pad_token_id must be a token id in [0, {vocab_size}), got {pad!r}"
        )


def eos_ids(eos_token_id) -> np.ndarray | None:
    """`eos_token_id` (None, an int, or a sequence of ints) as an int64 array, validated."""
    if eos_token_id is None:
        return None
    ids = np.atleast_1d(np.asarray(eos_token_id))
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu" or (ids < 0).any():
        raise ValueError(
            f"generate: eos_token_id must be a token id or a non-empty list of ids, "
            f"got {eos_token_id!r}"
        )
    return ids.astype(np.int64)


class TextStreamer:
    """Print tokens as text while they are generated (Hugging Face's `TextStreamer`).

    Batch size 1 only (one stream of text). `skip_prompt` leaves out the prompt; special tokens
    (end of turn, end of text) are not printed when `skip_special_tokens`. Bytes of a character
    split over two tokens are held back until the character is complete.
    """

    def __init__(
        self, tokenizer, skip_prompt: bool = True, skip_special_tokens: bool = True, file=None
    ):
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.skip_special_tokens = skip_special_tokens
        self.file = file
        self._prompt_seen = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""  # everything printed so far

    def put(self, ids) -> None:
        """The first call brings the prompt (1, T) or (T,); each later one the new token."""
        ids = np.asarray(ids)
        if ids.ndim == 2 and ids.shape[0] != 1:
            raise ValueError(f"TextStreamer: batch size must be 1, got ids of shape {ids.shape}")
        ids = ids.reshape(-1)
        is_prompt, self._prompt_seen = not self._prompt_seen, True
        if is_prompt and self.skip_prompt:
            return
        out = []
        for i in ids.tolist():
            if self.skip_special_tokens and self.tokenizer.is_special_id(int(i)):
                continue
            out.append(self._decoder.decode(self.tokenizer.id_to_bytes(int(i))))
        self._write("".join(out))

    def end(self) -> None:
        self._write(self._decoder.decode(b"", final=True))

    def _write(self, text: str) -> None:
        if text:
            self.text += text
            f = self.file if self.file is not None else sys.stdout
            f.write(text)
            f.flush()


def decode_loop(
    next_scores,
    prompt: np.ndarray,
    mask: np.ndarray,
    max_new_tokens: int,
    do_sample: bool,
    temperature: float,
    top_k,
    top_p,
    repetition_penalty: float,
    eos_token_id,
    pad_token_id,
    rng,
    streamer=None,
) -> np.ndarray:
    """The shared loop: `next_scores(tokens, mask, n_new)` returns (B, V) logits for the next
    position given the sequences so far, of which the last `n_new` columns are new since the
    previous call."""
    tokens, mask = prompt, mask
    b = tokens.shape[0]
    finished = np.zeros(b, dtype=bool)
    n_new = tokens.shape[1]
    eos = eos_ids(eos_token_id)
    if streamer is not None:
        streamer.put(tokens)
    for _ in range(max_new_tokens):
        scores = next_scores(tokens, mask, n_new)
        scores = process_scores(
            scores, tokens, mask, do_sample, temperature, top_k, top_p, repetition_penalty
        )
        nxt = choose_next(scores, do_sample, rng)
        if eos is not None:
            nxt = np.where(finished, pad_token_id, nxt)
            finished |= np.isin(nxt, eos)
        tokens = np.concatenate([tokens, nxt[:, None].astype(tokens.dtype)], axis=1)
        mask = np.concatenate([mask, np.ones((b, 1), dtype=mask.dtype)], axis=1)
        n_new = 1
        if streamer is not None:
            streamer.put(nxt)
        if eos is not None and finished.all():
            break
    if streamer is not None:
        streamer.end()
    return tokens


def generate(
    model,
    idx,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    eos_token_id: int | list[int] | None = None,
    pad_token_id: int | None = None,
    use_cache: bool = True,
    seed: int | None = None,
    attention_mask=None,
    generator=None,
    streamer=None,
) -> np.ndarray:
    """Generate from a decoder-only model (GPT). idx (B, T) ints → (B, T + new) ints, a
    Tensor when idx is one (as torch code expects), else a NumPy array."""

    _check_options(max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty)
    as_tensor = isinstance(idx, Tensor)
    idx = policy.integer_ids("generate", idx)
    if isinstance(attention_mask, Tensor):
        attention_mask = attention_mask.data
    if idx.ndim == 1:
        idx = idx[None, :]
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"generate: idx must be a non-empty (batch, time) array, got {idx.shape}")
    mask = (
        np.ones_like(idx)
        if attention_mask is None
        else np.asarray(attention_mask).astype(idx.dtype)
    )
    if mask.shape != idx.shape:
        raise ValueError(f"generate: attention_mask {mask.shape} must match idx {idx.shape}")
    rng = np.random.default_rng(seed) if seed is not None else generator_or_default(generator)
    eos = eos_ids(eos_token_id)
    pad = (None if eos is None else int(eos[0])) if pad_token_id is None else pad_token_id
    _check_ids_in_vocab(eos, pad, model.config.vocab_size)
    if idx.min() < 0 or idx.max() >= model.config.vocab_size:
        bad = idx[(idx < 0) | (idx >= model.config.vocab_size)].flat[0]
        raise ValueError(
            f"generate: prompt token id {int(bad)} is outside the vocabulary "
            f"[0, {model.config.vocab_size})"
        )
    block = model.config.block_size
    state = {"caches": None}
    padded = bool((mask == 0).any())

    def next_scores(tokens, m, n_new):
        with no_grad():
            if tokens.shape[1] > block:  # crop the context (nanoGPT)
                tokens, m = tokens[:, -block:], m[:, -block:]
                state["caches"] = None
                n_new = tokens.shape[1]
            if not use_cache:
                logits, _ = model(tokens, attention_mask=m if padded else None)
                return logits.data[:, -1]
            caches = state["caches"]
            if caches is None or caches[0].length + n_new > block:
                caches = state["caches"] = model.make_cache(tokens.shape[0])
                n_new = tokens.shape[1]
            logits, _ = model(
                tokens[:, -n_new:], caches=caches, attention_mask=m if padded else None
            )
            return logits.data[:, -1]

    was_training = model.training
    model.eval()
    try:
        tokens = decode_loop(
            next_scores,
            idx,
            mask,
            max_new_tokens,
            do_sample,
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            eos_token_id,
            pad,
            rng,
            streamer,
        )
        return Tensor(tokens) if as_tensor else tokens
    finally:
        model.train(was_training)
