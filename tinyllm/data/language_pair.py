"""A synthetic language pair for translation: word order that must be rearranged, words that
must agree.

Machine translation is hard for a model that reads left to right because the target's words
do not come in the source's order, and the form of a target word can depend on a source word
far away. This pair is made to have both, with a grammar small enough to learn in minutes:

    source (subject–verb–object, adjectives before the noun, articles first):
        the big red dog sees a cat near the old trees
    target (subject–object–verb, adjectives after the noun, articles last, a postposition):
        dog-m big-m red-m the-m  cat-f a-f  trees-pl old-pl the-pl nahe  sees-sg

(the target words are made-up names: `vask`, `lomi-a`, …). Three kinds of dependency:

* **Reordering.** Inside a noun phrase the order is reversed (noun, adjectives, article); the
  verb moves to the end, after the object and the place — the farthest move of the sentence.
* **Agreement.** Every target noun has a gender; its adjectives and article take the gender's
  form (or the plural form). The verb takes the singular or plural form of its *subject*, a
  word it is now far away from.
* **Lengths.** 0–3 adjectives per phrase and an optional place phrase give sources of 5–17
  words, so accuracy can be measured by length.

A translation is deterministic: `translate(source_words)` is the reference, and `sample(rng)`
gives a (source, target) pair of word lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOUNS = ("dog", "cat", "bird", "horse", "tree", "house", "river", "child", "king", "stone",
         "flower", "road")  # fmt: skip
ADJECTIVES = ("big", "small", "red", "old", "young", "green", "dark", "quiet", "tall", "cold")
VERBS = ("see", "like", "follow", "find", "help", "hear", "touch", "fear")
ARTICLES = ("the", "a")
PLACE = "near"
SYLLABLES = ("va", "lo", "mi", "ke", "su", "ra", "po", "ni", "de", "ta", "zo", "bu", "fe", "gi")
PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def _plural(noun: str) -> str:
    return noun + "s"


def _third_person(verb: str) -> str:
    return verb + "s"


@dataclass
class LanguagePair:
    """The grammar, the vocabularies of both sides, and the reference translation."""

    max_adjectives: int = 3
    place_probability: float = 0.5
    seed: int = 0
    source_vocab: list = field(init=False)
    target_vocab: list = field(init=False)

    def __post_init__(self):
        if not 0 <= self.max_adjectives <= 5:
            raise ValueError(f"LanguagePair: max_adjectives must be 0…5, got {self.max_adjectives}")
        if not 0.0 <= self.place_probability <= 1.0:
            raise ValueError(
                f"LanguagePair: place_probability must be in [0, 1], got {self.place_probability}"
            )
        rng = np.random.default_rng(self.seed)
        used: set[str] = set()

        def word() -> str:
            while True:
                w = "".join(rng.choice(SYLLABLES, size=2))
                if w not in used:
                    used.add(w)
                    return w

        self.noun = {n: word() for n in NOUNS}
        self.gender = {n: ("m", "f")[int(rng.integers(2))] for n in NOUNS}
        self.adjective = {a: word() for a in ADJECTIVES}
        self.verb = {v: word() for v in VERBS}
        self.article = {a: word() for a in ARTICLES}
        self.place = word()
        src = [*NOUNS, *map(_plural, NOUNS), *ADJECTIVES, *VERBS, *map(_third_person, VERBS)]
        src += [*ARTICLES, PLACE]
        tgt = [*self.noun.values(), *(n + "i" for n in self.noun.values())]
        tgt += [f"{a}-{form}" for a in self.adjective.values() for form in ("m", "f", "pl")]
        tgt += [f"{a}-{form}" for a in self.article.values() for form in ("m", "f", "pl")]
        tgt += [f"{v}-{form}" for v in self.verb.values() for form in ("sg", "pl")] + [self.place]
        self.source_vocab = [PAD, BOS, EOS, *src]
        self.target_vocab = [PAD, BOS, EOS, *tgt]
        self.source_index = {w: i for i, w in enumerate(self.source_vocab)}
        self.target_index = {w: i for i, w in enumerate(self.target_vocab)}

    # ---- the grammar ------------------------------------------------------------------------

    def _phrase(self, rng) -> list[str]:
        k = int(rng.integers(self.max_adjectives + 1))
        adjs = [str(a) for a in rng.choice(ADJECTIVES, size=k, replace=False)] if k else []
        noun = NOUNS[int(rng.integers(len(NOUNS)))]
        if rng.random() < 0.5:
            noun = _plural(noun)
        return [ARTICLES[int(rng.integers(2))], *adjs, noun]

    def sample(self, rng: np.random.Generator) -> tuple[list[str], list[str]]:
        subject, obj = self._phrase(rng), self._phrase(rng)
        verb = VERBS[int(rng.integers(len(VERBS)))]
        if subject[-1] in NOUNS:  # a singular subject: "sees"
            verb = _third_person(verb)
        source = [*subject, verb, *obj]
        if rng.random() < self.place_probability:
            source += [PLACE, *self._phrase(rng)]
        return source, self.translate(source)

    def translate(self, source: list[str]) -> list[str]:
        """The reference translation of a source sentence of this grammar."""
        phrases, verb, place, cur = [], None, False, []
        for w in source:
            if w in ARTICLES and cur:
                phrases.append(cur)
                cur = []
            if w == PLACE:
                phrases.append(cur)
                cur, place = [], True
            elif w in VERBS or (w.endswith("s") and w[:-1] in VERBS):
                phrases.append(cur)
                cur, verb = [], w
            else:
                cur.append(w)
        phrases.append(cur)
        phrases = [p for p in phrases if p]
        if verb is None or len(phrases) not in (2, 3):
            raise ValueError(f"LanguagePair.translate: not a sentence of the grammar: {source}")
        out = [w for p in phrases[:2] for w in self._translate_phrase(p)]
        if place:
            out += [*self._translate_phrase(phrases[2]), self.place]
        singular = phrases[0][-1] in NOUNS
        base = verb[:-1] if singular else verb
        return [*out, f"{self.verb[base]}-{'sg' if singular else 'pl'}"]

    def _translate_phrase(self, phrase: list[str]) -> list[str]:
        article, *adjs, noun = phrase
        plural = noun not in NOUNS
        stem = noun[:-1] if plural else noun
        form = "pl" if plural else self.gender[stem]
        head = self.noun[stem] + ("i" if plural else "")
        return [
            head,
            *(f"{self.adjective[a]}-{form}" for a in adjs),
            f"{self.article[article]}-{form}",
        ]

    # ---- as ids -----------------------------------------------------------------------------

    def batch(self, pairs, max_source=None, max_target=None, pad_side: str = "left"):
        """Arrays for a batch of (source, target) word lists.

        Returns src (B, S) padded on `pad_side` ("left" by default, so that a recurrent
        encoder's last step is the last word; "right" for a transformer's positions),
        src_mask (B, S) with 1 on words, tgt_in (B, T) = [BOS, y…] and labels (B, T) = [y…, EOS]
        right-padded, with −100 on padding.
        """
        s = max_source or max(len(a) for a, _ in pairs)
        t = (max_target or max(len(b) for _, b in pairs)) + 1
        src = np.zeros((len(pairs), s), dtype=np.int64)
        mask = np.zeros((len(pairs), s), dtype=np.int64)
        tgt_in = np.zeros((len(pairs), t), dtype=np.int64)
        labels = np.full((len(pairs), t), -100, dtype=np.int64)
        if pad_side not in ("left", "right"):
            raise ValueError(
                f"LanguagePair.batch: pad_side must be 'left' or 'right', got {pad_side!r}"
            )
        for i, (a, b) in enumerate(pairs):
            ids = [self.source_index[w] for w in a]
            cols = slice(s - len(ids), s) if pad_side == "left" else slice(0, len(ids))
            src[i, cols] = ids
            mask[i, cols] = 1
            y = [self.target_index[w] for w in b] + [self.target_index[EOS]]
            tgt_in[i, : len(y)] = [self.target_index[BOS], *y[:-1]]
            labels[i, : len(y)] = y
        return src, mask, tgt_in, labels

    def decode(self, ids) -> list[str]:
        """Target ids up to the first EOS, as words."""
        out = []
        for i in ids:
            w = self.target_vocab[int(i)]
            if w == EOS:
                break
            if w not in (PAD, BOS):
                out.append(w)
        return out
