"""Tasks with exact answers: the ground truth that prompting, fine-tuning and alignment are
measured against.

A *task* is a generator of examples. Each example is a question with exactly one right answer,
made by code from a seed, so a learner can make as many as it wants and nothing is downloaded:

    example = task.sample(rng)      # rng: a numpy Generator, so every example is reproducible
    example.prompt                  # the text the model is given (may hold demonstrations)
    example.target                  # what a perfect model writes after the prompt: the worked
                                    # steps, if the task has any, then the answer
    example.answer                  # the final answer alone
    example.score(completion)       # 1.0 if the completion's final answer is the answer, else 0.0

Scoring is exact: the task reads the final answer out of a completion (`Task.extract`: by
default, the completion up to its first newline, stripped of spaces) and compares strings. A
chain-of-thought task writes its working first and its answer after a marker ("answer: ..."), and
extracts what follows the marker, so a model is scored on its answer, not on its working.

Difficulty is a constructor knob of each task (digits, string length, number of keys, ...), so
one task can be made harder until a model of a given size fails it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Example:
    """One question. `target` is prompt's ideal continuation; `answer` is its final answer."""

    prompt: str
    target: str
    answer: str
    task: "Task" = field(repr=False, compare=False)
    meta: dict = field(default_factory=dict, compare=False)

    def score(self, completion: str) -> float:
        """Exact-match score of a model's completion of `prompt`: 1.0 or 0.0."""
        return self.task.score(self, completion)


class Task:
    """A family of examples with exact answers. Subclasses implement `sample`.

    `name` identifies the task in reports; `extract` reads the final answer out of a completion.
    """

    name = "task"
    answer_end = "\n"

    def sample(self, rng: np.random.Generator) -> Example:
        raise NotImplementedError(f"{type(self).__name__}.sample")

    def extract(self, completion: str) -> str:
        """The final answer in a completion: the text before the first `answer_end`, stripped."""
        if not isinstance(completion, str):
            raise TypeError(
                f"{self.name}: a completion must be a str, got {type(completion).__name__}"
            )
        return completion.split(self.answer_end, 1)[0].strip()

    def score(self, example: Example, completion: str) -> float:
        return 1.0 if self.extract(completion) == example.answer else 0.0

    def examples(self, n: int, seed: int) -> list[Example]:
        """`n` examples from `seed`: the same list on every run and machine."""
        if n < 0:
            raise ValueError(f"{self.name}: n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(n)]

    def _example(self, prompt: str, target: str, answer: str, **meta) -> Example:
        return Example(prompt=prompt, target=target, answer=answer, task=self, meta=dict(meta))


class Mixture(Task):
    """Sample from several tasks with given weights (uniform by default)."""

    def __init__(self, tasks: Sequence[Task], weights: Sequence[float] | None = None):
        if not tasks:
            raise ValueError("Mixture: needs at least one task")
        w = np.ones(len(tasks)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(tasks),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(
                f"Mixture: weights must be {len(tasks)} non-negative numbers, got {weights}"
            )
        self.tasks = list(tasks)
        self.weights = w / w.sum()
        self.name = "mixture(" + ",".join(t.name for t in self.tasks) + ")"

    def sample(self, rng: np.random.Generator) -> Example:
        return self.tasks[int(rng.choice(len(self.tasks), p=self.weights))].sample(rng)
