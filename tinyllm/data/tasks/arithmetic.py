"""Multi-digit arithmetic, answered directly or after a worked scratchpad (a chain of thought).

A question is "a+b=" with two d-digit numbers (or "a*b=" with a d-digit a and a one-digit b).
Schoolbook addition works from the least significant digit up: at column i, with digits aᵢ and
bᵢ and the carry cᵢ coming in from the column to its right (c₀ = 0),

    aᵢ + bᵢ + cᵢ = 10·cᵢ₊₁ + sᵢ        (sᵢ the digit written, cᵢ₊₁ the carry passed on)

and the sum is c_d s_{d−1} … s₁ s₀ read from the top (multiplication by one digit b is the same
with aᵢ·b + cᵢ = 10·cᵢ₊₁ + sᵢ, and a carry up to 8). A model asked for the answer *directly*
must write the leading digit first, yet that digit depends on every carry below it: all d
column steps have to happen inside the forward pass that emits the first token. The
*scratchpad* target writes the columns out, least significant first, each step as
"aᵢ+bᵢ+cᵢ=cᵢ₊₁sᵢ" — so every step needs only the digits it names and the carry written in the
step before it — and then the answer:

    prompt   "345+912="
    direct   "1257"
    scratch  "5+2+0=07 4+1+0=05 3+9+0=12 answer: 1257"

(each target ends with a newline, the end of a completion). Both variants have the same prompt
and the same `answer`, and are scored the same way, exactly, on the final answer: the direct
task reads the completion up to its first newline; the scratchpad task reads what follows the
last "answer:" on that line, so the working is never graded, only the number after it.

Difficulty is the number of digits: `digits=5` makes only 5-digit questions, `digits=(1, 5)` a
uniform mixture of 1 to 5 digits (each number has exactly d digits; for d = 1 that includes 0).
"""

from __future__ import annotations

import numpy as np

from tinyllm.data.tasks.base import Example, Task

ANSWER_MARKER = "answer:"
OPERATIONS = ("+", "*")


def column_steps(a: int, b: int, op: str = "+") -> list[tuple[int, int, int, int, int]]:
    """The schoolbook columns of a op b, least significant first: (aᵢ, bᵢ, cᵢ, cᵢ₊₁, sᵢ).

    For "+", b's digits are consumed column by column; for "*", b is one digit used in every
    column. There is a column per digit of the longer operand (the shorter one is read with
    leading zeros)."""
    width = max(len(str(a)), len(str(b))) if op == "+" else len(str(a))
    a_digits = [int(ch) for ch in reversed(str(a).zfill(width))]
    b_digits = [int(ch) for ch in reversed(str(b).zfill(width))]
    steps, carry = [], 0
    for i, ai in enumerate(a_digits):
        bi = b_digits[i] if op == "+" else b
        total = ai + bi + carry if op == "+" else ai * bi + carry
        steps.append((ai, bi, carry, total // 10, total % 10))
        carry = total // 10
    return steps


def format_steps(steps, op: str = "+") -> str:
    """'5+2+0=07 4+1+0=05 …': each column as aᵢ op bᵢ + cᵢ = cᵢ₊₁ sᵢ, fixed width."""
    return " ".join(f"{ai}{op}{bi}+{ci}={co}{si}" for ai, bi, ci, co, si in steps)


class Arithmetic(Task):
    """`digits`-digit addition (op "+") or multiplication by one digit (op "*"), answered
    directly (`scratchpad=False`) or after the column steps (`scratchpad=True`)."""

    def __init__(self, digits: int | tuple[int, int] = (1, 5), op: str = "+", scratchpad=True):
        pair = (digits, digits) if isinstance(digits, (int, np.integer)) else digits
        if not (
            isinstance(pair, tuple)
            and len(pair) == 2
            and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in pair)
        ):
            raise TypeError(f"Arithmetic: digits must be an int or (low, high), got {digits!r}")
        lo, hi = pair
        if not 1 <= lo <= hi:
            raise ValueError(f"Arithmetic: digits must satisfy 1 <= low <= high, got {digits!r}")
        if op not in OPERATIONS:
            raise ValueError(f"Arithmetic: op must be one of {OPERATIONS}, got {op!r}")
        self.min_digits, self.max_digits = int(lo), int(hi)
        self.op = op
        self.scratchpad = bool(scratchpad)
        word = "add" if op == "+" else "mul"
        self.name = f"{word}{lo}-{hi}" + ("-cot" if scratchpad else "")

    @staticmethod
    def _number(d: int, rng: np.random.Generator) -> int:
        """A uniformly drawn number of exactly d digits (0–9 for d = 1)."""
        low = 0 if d == 1 else 10 ** (d - 1)
        return int(rng.integers(low, 10**d))

    def sample(self, rng: np.random.Generator) -> Example:
        d = int(rng.integers(self.min_digits, self.max_digits + 1))
        a = self._number(d, rng)
        b = self._number(d if self.op == "+" else 1, rng)
        return self.make(a, b)

    def make(self, a: int, b: int) -> Example:
        """The example for a op b (non-negative integers)."""
        if a < 0 or b < 0:
            raise ValueError(f"{self.name}: operands must be non-negative, got {a} and {b}")
        if self.op == "*" and b > 9:
            raise ValueError(f"{self.name}: the multiplier must be one digit, got {b}")
        answer = str(a + b if self.op == "+" else a * b)
        steps = column_steps(a, b, self.op)
        prompt = f"{a}{self.op}{b}="
        if self.scratchpad:
            target = f"{format_steps(steps, self.op)} {ANSWER_MARKER} {answer}\n"
        else:
            target = answer + "\n"
        return self._example(prompt, target, answer, digits=len(str(a)), a=a, b=b, steps=steps)

    def extract(self, completion: str) -> str:
        """Direct: the first line. Scratchpad: what follows the last "answer:" on the first
        line, or "" when the line has no answer marker (no answer given)."""
        line = super().extract(completion)
        if not self.scratchpad:
            return line
        head, marker, tail = line.rpartition(ANSWER_MARKER)
        return tail.strip() if marker else ""
