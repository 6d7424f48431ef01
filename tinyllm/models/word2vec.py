"""word2vec: skip-gram and CBOW with negative sampling (Mikolov et al. 2013).

Before transformers learned a vector per token as part of a language model, word2vec learned
one per word with an objective built for nothing else. Slide a window over the text; the word in
the middle is the *centre*, the words within distance b on either side its *context*.

* **Skip-gram** predicts each context word from the centre: an example per (centre, context)
  pair, input the centre's vector.
* **CBOW** (continuous bag of words) predicts the centre from its context: an example per
  position, input the mean of the context words' vectors.

A full softmax over the vocabulary would cost O(V) per example. Negative sampling asks instead
whether the true target beats K words drawn from a *noise distribution* — the unigram
distribution raised to 3/4, P_n(w) ∝ count(w)^0.75, which gives rare words more chances than
their frequency would:

    L = − log σ(h · u_t) − Σ_{k=1..K} log σ(− h · u_{n_k}),     n_k ~ P_n

(h the input vector, u the output vectors; the gradient and its update live in
tinyllm/kernels/word2vec.py, a numba kernel beside its NumPy reference.) Three more details of
the paper and its C code make the vectors good:

* **Subsampling of frequent words.** Each occurrence of a word with relative frequency f is
  kept with probability min(1, (√(f/s) + 1) · s/f) (s the `sample` threshold, 1e-3 by default;
  the paper writes 1 − √(s/f) for the probability of *discarding*, the C code uses this form).
  "the" and "of" then stop dominating the pairs, and the windows reach further.
* **Dynamic windows.** Each centre draws its window b uniformly from 1 … window, so near words
  count more often than far ones.
* **A linearly decaying learning rate**, from `alpha` to `min_alpha` over all the examples of
  all the epochs.

What comes out is `vectors` (w_in, one row per word); words used alike end up close in cosine
similarity, and relations shared by many pairs become shared offsets, so analogies are answered
by vector arithmetic (3CosAdd): the answer to "a is to b as c is to ?" is the word whose unit
vector is nearest v̂(b) − v̂(a) + v̂(c), the three question words excluded.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from tinyllm import kernels


class Word2Vec:
    """Word vectors by skip-gram (`sg=True`) or CBOW (`sg=False`) with negative sampling.

    The names follow gensim's (`vector_size`, `window`, `negative`, `min_count`, `sample`,
    `ns_exponent`, `alpha`, `min_alpha`, `epochs`); `alpha` defaults to the C code's 0.025 for
    skip-gram and 0.05 for CBOW. `seed` fixes the initial vectors, the
    subsampling, the windows and the noise words: the same seed gives the same vectors.
    """

    def __init__(
        self,
        vector_size: int = 50,
        window: int = 5,
        negative: int = 5,
        sg: bool = True,
        min_count: int = 1,
        sample: float = 1e-3,
        ns_exponent: float = 0.75,
        alpha: float | None = None,
        min_alpha: float = 1e-4,
        epochs: int = 5,
        seed: int = 0,
        dtype=np.float32,
    ):
        if alpha is None:  # the C code's defaults: CBOW's mean input takes larger steps
            alpha = 0.025 if sg else 0.05
        checks = {
            "vector_size": vector_size >= 1,
            "window": window >= 1,
            "negative": negative >= 1,
            "min_count": min_count >= 1,
            "epochs": epochs >= 1,
            "sample": sample >= 0,
            "alpha": np.isfinite(alpha) and alpha > 0,
            "min_alpha": np.isfinite(min_alpha) and 0 <= min_alpha <= alpha,
            "ns_exponent": np.isfinite(ns_exponent),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"Word2Vec: invalid {name}={locals()[name]!r}")
        self.vector_size, self.window, self.negative, self.sg = vector_size, window, negative, sg
        self.min_count, self.sample, self.ns_exponent = min_count, sample, ns_exponent
        self.alpha, self.min_alpha, self.epochs, self.seed = alpha, min_alpha, epochs, seed
        self.dtype = np.dtype(dtype)
        self.index_to_key: list[str] = []
        self.key_to_index: dict[str, int] = {}
        self.vectors = self.out_vectors = None

    # ---- vocabulary ---------------------------------------------------------------------------

    def build_vocab(self, sentences: Iterable[Sequence[str]]) -> "Word2Vec":
        """Count words, keep those seen `min_count` times (most frequent first), set the noise
        distribution and initialise the vectors: w_in ~ U(−0.5/D, 0.5/D), w_out = 0, as the C
        code does (so every first update moves only w_out)."""
        counts = Counter(w for s in _check_sentences(sentences) for w in s)
        kept = sorted(
            (w for w, c in counts.items() if c >= self.min_count), key=lambda w: (-counts[w], w)
        )
        if not kept:
            raise ValueError(
                f"Word2Vec.build_vocab: no word occurs min_count={self.min_count} times"
            )
        self.index_to_key = kept
        self.key_to_index = {w: i for i, w in enumerate(kept)}
        self.counts = np.array([counts[w] for w in kept], dtype=np.int64)
        noise = self.counts.astype(np.float64) ** self.ns_exponent
        self.noise_cdf = np.cumsum(noise / noise.sum())
        rng = np.random.default_rng(self.seed)
        d = self.vector_size
        self.vectors = ((rng.random((len(kept), d)) - 0.5) / d).astype(self.dtype)
        self.out_vectors = np.zeros((len(kept), d), dtype=self.dtype)
        return self

    def keep_probability(self) -> np.ndarray:
        """Per word, the chance an occurrence survives subsampling."""
        if self.sample == 0:
            return np.ones(len(self.counts))
        f = self.counts / self.counts.sum()
        return np.minimum(1.0, (np.sqrt(f / self.sample) + 1.0) * self.sample / f)

    # ---- examples -----------------------------------------------------------------------------

    def examples(self, ids: np.ndarray, sentence_of: np.ndarray, rng: np.random.Generator):
        """The examples of one pass over a run of token ids, after subsampling.

        Returns (inputs, offsets, targets) in the kernel's layout, `at` — the position of each
        example's centre among the n tokens kept — and n. `sentence_of[i]` numbers the sentence
        of token i; windows never cross sentences. Examples go centre by centre, as the C code
        visits them.
        """
        keep = rng.random(len(ids)) < self.keep_probability()[ids]
        ids, sentence_of = ids[keep], sentence_of[keep]
        n = len(ids)
        reach = rng.integers(1, self.window + 1, size=n)  # each centre's window b
        centres, contexts, order = [], [], []
        for o in range(1, self.window + 1):
            for sign in (-1, 1):
                pos = np.arange(n)
                other = pos + sign * o
                ok = (other >= 0) & (other < n) & (reach >= o)
                ok[ok] &= sentence_of[other[ok]] == sentence_of[pos[ok]]
                centres.append(pos[ok])
                contexts.append(other[ok])
                order.append(np.full(ok.sum(), sign * o))
        centre = np.concatenate(centres)
        context = np.concatenate(contexts)
        sort = np.lexsort((np.concatenate(order), centre))
        centre, context = centre[sort], context[sort]
        if self.sg:  # one example per pair: input the centre, predict the context word
            targets = ids[context]
            inputs = ids[centre]
            offsets = np.arange(len(targets) + 1)
            at = centre
        else:  # one example per centre with a context: input its context words, predict it
            heads, counts = np.unique(centre, return_counts=True)
            targets = ids[heads]
            inputs = ids[context]
            offsets = np.concatenate([[0], np.cumsum(counts)])
            at = heads
        return inputs, offsets, targets, at, n

    def noise_words(self, shape, rng: np.random.Generator) -> np.ndarray:
        """Words drawn from the noise distribution P_n ∝ count^ns_exponent."""
        u = rng.random(shape)
        return np.minimum(np.searchsorted(self.noise_cdf, u, side="right"), len(self.counts) - 1)

    # ---- training -----------------------------------------------------------------------------

    def encode(self, sentences) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of the in-vocabulary words and the sentence number of each."""
        ids, sent = [], []
        for k, s in enumerate(_check_sentences(sentences)):
            row = [self.key_to_index[w] for w in s if w in self.key_to_index]
            ids.extend(row)
            sent.extend([k] * len(row))
        return np.array(ids, dtype=np.int64), np.array(sent, dtype=np.int64)

    def train(self, sentences, epochs: int | None = None, chunk: int = 100_000, log=None) -> list:
        """SGD over `epochs` passes; returns the mean loss per example of each epoch.

        Builds the vocabulary first if there is none. The text is cut into chunks of about
        `chunk` tokens (at sentence boundaries) so the example arrays stay small.
        """
        sentences = list(_check_sentences(sentences))
        if self.vectors is None:
            self.build_vocab(sentences)
        epochs = self.epochs if epochs is None else epochs
        ids, sent = self.encode(sentences)
        if len(ids) == 0:
            raise ValueError("Word2Vec.train: no in-vocabulary words in the sentences")
        bounds = _chunk_bounds(sent, chunk)
        # the learning rate decays with the tokens processed, like the C code's word count
        planned = epochs * self.keep_probability()[ids].sum()
        rng = np.random.default_rng(self.seed + 1)
        seen, losses = 0, []
        for epoch in range(epochs):
            total, count = 0.0, 0
            for lo, hi in bounds:
                inputs, offsets, targets, at, kept = self.examples(ids[lo:hi], sent[lo:hi], rng)
                noise = self.noise_words((len(targets), self.negative), rng)
                decay = (self.alpha - self.min_alpha) * (seen + at) / planned
                lr = np.maximum(self.alpha - decay, self.min_alpha)
                total += kernels.sgns_train(
                    self.vectors, self.out_vectors, inputs, offsets, targets, noise, lr
                )
                count += len(targets)
                seen += kept
            losses.append(total / max(count, 1))
            if log is not None:
                log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f} over {count:,} examples")
        return losses

    # ---- queries ------------------------------------------------------------------------------

    def __contains__(self, word) -> bool:
        return word in self.key_to_index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._index(word)]

    def _index(self, word) -> int:
        if self.vectors is None:
            raise RuntimeError("Word2Vec: no vocabulary yet; call build_vocab or train first")
        if word not in self.key_to_index:
            raise KeyError(f"Word2Vec: {word!r} is not in the vocabulary")
        return self.key_to_index[word]

    def unit_vectors(self) -> np.ndarray:
        v = self.vectors.astype(np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def similarity(self, a: str, b: str) -> float:
        ia, ib = self._index(a), self._index(b)
        u = self.unit_vectors()
        return float(u[ia] @ u[ib])

    def nearest(self, query: np.ndarray, topn: int = 10, exclude=()) -> list[tuple[str, float]]:
        """The `topn` words of highest cosine similarity to the vector `query`."""
        u = self.unit_vectors()
        q = np.asarray(query, dtype=np.float64)
        sims = u @ (q / max(np.linalg.norm(q), 1e-12))
        for w in exclude:
            sims[self._index(w)] = -np.inf
        top = np.argsort(-sims, kind="stable")[:topn]
        return [(self.index_to_key[i], float(sims[i])) for i in top if np.isfinite(sims[i])]

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        i = self._index(word)
        return self.nearest(self.unit_vectors()[i], topn, exclude=(word,))

    def analogy(self, a: str, b: str, c: str, topn: int = 1) -> list[tuple[str, float]]:
        """a is to b as c is to …? (3CosAdd: nearest v̂(b) − v̂(a) + v̂(c), a, b, c excluded)."""
        ia, ib, ic = self._index(a), self._index(b), self._index(c)
        u = self.unit_vectors()
        q = u[ib] - u[ia] + u[ic]
        return self.nearest(q, topn, exclude=(a, b, c))


def analogy_accuracy(model: Word2Vec, questions) -> float:
    """Fraction of (a, b, c, d) questions whose 3CosAdd answer is d (skipping unknown words)."""
    asked = [q for q in questions if all(w in model for w in q)]
    if not asked:
        raise ValueError("analogy_accuracy: no question has all four words in the vocabulary")
    return float(np.mean([model.analogy(a, b, c)[0][0] == d for a, b, c, d in asked]))


def neighbour_class_precision(model: Word2Vec, word_class: dict, k: int = 5, by_class=False):
    """Mean, over the words with a class, of the fraction of their k nearest neighbours (in the
    whole vocabulary) that share their class; with `by_class`, that mean for each class."""
    words = [w for w in word_class if w in model]
    if not words:
        raise ValueError("neighbour_class_precision: no classed word is in the vocabulary")
    hits = {
        w: np.mean([word_class.get(n) == word_class[w] for n, _ in model.most_similar(w, k)])
        for w in words
    }
    if not by_class:
        return float(np.mean(list(hits.values())))
    classes = dict.fromkeys(word_class[w] for w in words)
    return {c: float(np.mean([h for w, h in hits.items() if word_class[w] == c])) for c in classes}


def _check_sentences(sentences):
    if isinstance(sentences, str):
        raise TypeError("Word2Vec: sentences must be lists of words, got one str")
    for k, s in enumerate(sentences):
        if isinstance(s, str) or not all(isinstance(w, str) for w in s):
            raise TypeError(f"Word2Vec: sentence {k} must be a list of str words, got {s!r:.60}")
        yield s


def _chunk_bounds(sentence_of: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """[lo, hi) token ranges of about `chunk` tokens that end at sentence boundaries."""
    cuts = np.flatnonzero(np.diff(sentence_of)) + 1
    bounds, lo = [], 0
    for c in cuts:
        if c - lo >= chunk:
            bounds.append((lo, int(c)))
            lo = int(c)
    bounds.append((lo, len(sentence_of)))
    return bounds
