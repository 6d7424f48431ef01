"""A synthetic language whose word classes and relations are known, to test word embeddings.

The distributional hypothesis — a word is known by the company it keeps — is what word2vec
turns into vectors. To check that it does, this module writes text from a grammar in which the
company of every word is designed, so the right answers are known in advance:

* **Word classes.** Words of one class fill the same slots of the same templates ("the {color}
  {animal} eats the {food}"), so their contexts have the same distribution and their vectors
  should be neighbours: `word_class` maps every content word to its class.
* **Relations as sums of attributes.** Some words are the product of two attributes, and each
  attribute brings its own context words. A country's words (its name, its capital, its
  language) share the country's landmarks; each *role* (country, capital, language) has its own
  template words. A person word is a gender (he/his/she/her) times an identity (the crown of a
  king and a queen, the school of a boy and a girl). If the words' vectors come out as the sum
  of an attribute vector per attribute, v(paris) − v(france) ≈ v(capital role) − v(country role)
  for every country, and the analogy "france is to paris as japan is to ?" is answered by the
  word nearest v(paris) − v(france) + v(japan). `analogies` lists every such question
  (a, b, c, d): a is to b as c is to d.

The country table is the real one (France, Paris, French, ...) only so that it reads easily; the
landmarks are made-up names, and nothing here is a fact the embedding could know from outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations

import numpy as np

COUNTRIES = (
    ("france", "paris", "french"),
    ("germany", "berlin", "german"),
    ("italy", "rome", "italian"),
    ("spain", "madrid", "spanish"),
    ("japan", "tokyo", "japanese"),
    ("china", "beijing", "chinese"),
    ("russia", "moscow", "russian"),
    ("greece", "athens", "greek"),
    ("poland", "warsaw", "polish"),
    ("sweden", "stockholm", "swedish"),
    ("turkey", "ankara", "turkish"),
    ("finland", "helsinki", "finnish"),
)
ROLES = ("country", "capital", "language")
ROLE_TEMPLATES = {
    "country": ("the nation of {w} borders {r}", "{w} is a country beyond {r}"),
    "capital": ("the mayor of {w} lives by {r}", "{w} is a city with streets near {r}"),
    "language": ("they speak {w} around {r}", "{w} words are spoken at {r}"),
}
# identity → (male word, female word, the identity's own context words)
PEOPLE = (
    ("king", "queen", ("throne", "crown")),
    ("prince", "princess", ("castle", "heir")),
    ("man", "woman", ("work", "town")),
    ("boy", "girl", ("school", "toys")),
    ("father", "mother", ("home", "children")),
    ("son", "daughter", ("parents", "family")),
    ("brother", "sister", ("sibling", "twin")),
    ("uncle", "aunt", ("cousin", "visit")),
    ("husband", "wife", ("marriage", "ring")),
    ("actor", "actress", ("stage", "film")),
    ("waiter", "waitress", ("tables", "tips")),
    ("monk", "nun", ("abbey", "prayer")),
)
PRONOUNS = {"male": ("he", "his", "him"), "female": ("she", "her", "hers")}
PERSON_TEMPLATES = (
    "{p} was the {w} with the {i}",
    "the {w} and {p} {i}",
    "{p} saw the {w} by the {i}",
)
CLASSES = {
    "animal": ("cat", "dog", "horse", "cow", "sheep", "goat", "mouse", "rabbit", "fox", "wolf"),
    "food": ("bread", "apple", "cheese", "rice", "soup", "cake", "meat", "corn", "milk", "grain"),
    "color": ("red", "blue", "green", "yellow", "black", "white", "brown", "grey"),
    "place": ("field", "forest", "river", "barn", "hill", "road", "lake", "garden"),
    "eat_verb": ("eats", "chews", "likes", "wants", "smells", "steals"),
    "move_verb": ("runs", "walks", "sleeps", "hides", "waits", "plays"),
}
CLASS_TEMPLATES = (
    "the {color} {animal} {eat_verb} the {food}",
    "a {animal} {move_verb} near the {place}",
    "the {animal} {move_verb} in the {color} {place}",
    "some {food} lies by the {place}",
)
SYLLABLES = ("ka", "lo", "mi", "ra", "ve", "tu", "no", "si", "de", "po", "ga", "zu", "be", "ri")


@dataclass
class WordGrammar:
    """Sentences of the synthetic language, and the answers to check embeddings against.

    `landmarks` per country, `share` of sentences of each kind (classes, countries, people).
    """

    landmarks: int = 3
    share: tuple = (0.5, 0.3, 0.2)
    seed: int = 0
    word_class: dict = field(init=False)
    analogies: list = field(init=False)
    landmark_words: dict = field(init=False)

    def __post_init__(self):
        if self.landmarks < 1:
            raise ValueError(f"WordGrammar: landmarks must be >= 1, got {self.landmarks}")
        share = np.asarray(self.share, dtype=float)
        if share.shape != (3,) or (share < 0).any() or share.sum() <= 0:
            raise ValueError(f"WordGrammar: share must be 3 non-negative weights, got {self.share}")
        self._share = share / share.sum()
        rng = np.random.default_rng(self.seed)
        names: set[str] = set()
        self.landmark_words = {}
        for country, *_ in COUNTRIES:
            words = []
            while len(words) < self.landmarks:
                name = "".join(rng.choice(SYLLABLES, size=3))
                if name not in names:
                    names.add(name)
                    words.append(name)
            self.landmark_words[country] = tuple(words)
        self.word_class = {w: c for c, words in CLASSES.items() for w in words}
        for row in COUNTRIES:
            self.word_class.update(zip(row, ROLES))
        for male, female, _ in PEOPLE:
            self.word_class[male], self.word_class[female] = "male", "female"
        self.analogies = self._analogies()

    @staticmethod
    def _analogies() -> list[tuple[str, str, str, str]]:
        out = []
        for r1, r2 in permutations(range(len(ROLES)), 2):
            for x, y in permutations(COUNTRIES, 2):
                out.append((x[r1], x[r2], y[r1], y[r2]))
        for x, y in permutations(PEOPLE, 2):
            out.append((x[0], x[1], y[0], y[1]))
        return out

    def sentence(self, rng: np.random.Generator) -> list[str]:
        kind = rng.choice(3, p=self._share)
        if kind == 0:
            template = CLASS_TEMPLATES[rng.integers(len(CLASS_TEMPLATES))]
            fill = {c: words[rng.integers(len(words))] for c, words in CLASSES.items()}
            return template.format(**fill).split()
        if kind == 1:
            row = COUNTRIES[rng.integers(len(COUNTRIES))]
            role = rng.integers(len(ROLES))
            templates = ROLE_TEMPLATES[ROLES[role]]
            marks = self.landmark_words[row[0]]
            text = templates[rng.integers(len(templates))]
            return text.format(w=row[role], r=marks[rng.integers(len(marks))]).split()
        male, female, ident = PEOPLE[rng.integers(len(PEOPLE))]
        gender = rng.integers(2)
        pronouns = PRONOUNS["female" if gender else "male"]
        text = PERSON_TEMPLATES[rng.integers(len(PERSON_TEMPLATES))]
        return text.format(
            p=pronouns[rng.integers(len(pronouns))],
            w=female if gender else male,
            i=ident[rng.integers(len(ident))],
        ).split()

    def sentences(self, n: int, seed: int = 0) -> list[list[str]]:
        """n sentences, the same for the same seed."""
        if n < 0:
            raise ValueError(f"WordGrammar.sentences: n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        return [self.sentence(rng) for _ in range(n)]
