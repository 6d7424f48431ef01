"""word2vec's inner loop: one stochastic-gradient step of negative sampling per training pair.

word2vec (Mikolov et al. 2013) keeps two tables of vectors: `w_in[v]`, the vector of word v as
an *input*, and `w_out[v]`, its vector as a *prediction target*. A training example is a set of
input words I (skip-gram: the one centre word; CBOW: the words of its context window), the word
to predict t (skip-gram: one context word; CBOW: the centre word) and K noise words n₁ … n_K
drawn from the unigram distribution raised to the power 0.75. With h = mean_{i∈I} w_in[i] and
σ the logistic function, negative sampling replaces the softmax over the vocabulary by K + 1
binary questions — "is this the real target, or noise?":

    L = − log σ(h · w_out[t]) − Σ_k log σ(− h · w_out[n_k])

Its gradients, with g_c = σ(h · w_out[c]) − y_c (y = 1 for the target, 0 for noise):

    ∂L/∂w_out[c] = g_c h            ∂L/∂h = Σ_c g_c w_out[c]            ∂L/∂w_in[i] = ∂L/∂h / |I|

SGD applies them example by example with learning rate η: every w_out[c] is moved as soon as
its term is computed, and the inputs afterwards by the accumulated ∂L/∂h (the order of
Mikolov's C code). A noise word equal to the target is skipped, also as in that code. (The C
code's CBOW adds the whole ∂L/∂h to every input word; here each gets its share of the mean's
gradient, ∂L/∂h / |I|, which is the exact derivative.)

Examples are processed strictly in order, so the updates are sequential: the reference and the
kernel give the same vectors (to rounding), and the same seed gives the same vectors on every
run. (The C code and gensim run threads without locks — "Hogwild" — and are not reproducible.)

Signature (both implementations; w_in, w_out are updated in place):

    sgns_train(w_in (V, D), w_out (V, D), inputs (M,) int, offsets (N + 1,) int,
               targets (N,) int, noise (N, K) int, lr (N,)) -> loss summed over the N examples

Example e has input words inputs[offsets[e]:offsets[e + 1]] and learning rate lr[e] (the linear
decay of the learning rate is the caller's).
"""

from __future__ import annotations

import math

import numpy as np

from tinyllm.kernels.jit import jit

# ---- reference (plain NumPy) ----------------------------------------------------------------


def _log_sigmoid(x: float) -> float:
    return -np.logaddexp(0.0, -x)


def sgns_train_reference(w_in, w_out, inputs, offsets, targets, noise, lr) -> float:
    loss = 0.0
    for e in range(len(targets)):
        words = inputs[offsets[e] : offsets[e + 1]]
        if len(words) == 0:
            continue
        h = w_in[words].mean(axis=0)
        grad_h = np.zeros_like(h)
        for c, label in [(targets[e], 1.0)] + [(n, 0.0) for n in noise[e]]:
            if label == 0.0 and c == targets[e]:
                continue
            score = float(h @ w_out[c])
            loss -= _log_sigmoid(score if label else -score)
            g = 1.0 / (1.0 + np.exp(-score)) - label
            grad_h += g * w_out[c]
            w_out[c] -= lr[e] * g * h
        np.subtract.at(w_in, words, lr[e] * grad_h / len(words))
    return float(loss)


# ---- numba kernel ---------------------------------------------------------------------------


@jit(fastmath=False)
def _sgns_train(w_in, w_out, inputs, offsets, targets, noise, lr):
    d = w_in.shape[1]
    k = noise.shape[1]
    h = np.empty(d, dtype=w_in.dtype)
    grad_h = np.empty(d, dtype=w_in.dtype)
    loss = 0.0
    for e in range(targets.shape[0]):
        lo, hi = offsets[e], offsets[e + 1]
        if hi == lo:
            continue
        h[:] = 0.0
        for p in range(lo, hi):
            row = w_in[inputs[p]]
            for j in range(d):
                h[j] += row[j]
        inv = 1.0 / (hi - lo)
        for j in range(d):
            h[j] *= inv
        grad_h[:] = 0.0
        t = targets[e]
        for q in range(k + 1):
            c = t if q == 0 else noise[e, q - 1]
            if q > 0 and c == t:
                continue
            label = 1.0 if q == 0 else 0.0
            out = w_out[c]
            score = 0.0
            for j in range(d):
                score += h[j] * out[j]
            s = score if q == 0 else -score
            # −log σ(s) = log(1 + e^(−s)), written so that neither branch overflows
            loss += math.log1p(math.exp(-s)) if s > 0 else -s + math.log1p(math.exp(s))
            g = 1.0 / (1.0 + math.exp(-score)) - label
            step = lr[e] * g
            for j in range(d):
                grad_h[j] += g * out[j]
                out[j] -= step * h[j]
        scale = lr[e] * inv
        for p in range(lo, hi):
            row = w_in[inputs[p]]
            for j in range(d):
                row[j] -= scale * grad_h[j]
    return loss


def sgns_train_numba(w_in, w_out, inputs, offsets, targets, noise, lr) -> float:
    for name, a in (("w_in", w_in), ("w_out", w_out)):
        if not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError(f"sgns_train: {name} must be a writeable C-contiguous array")
    ints = [np.ascontiguousarray(a, dtype=np.int64) for a in (inputs, offsets, targets, noise)]
    rates = np.ascontiguousarray(lr, dtype=w_in.dtype)
    return float(_sgns_train(w_in, w_out, *ints, rates))
