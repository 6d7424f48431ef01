"""The arithmetic task: answers are Python's sums and products, every scratchpad step is a right
column of schoolbook arithmetic (re-derived here from the digits, not from the task's code), and
`score` is exact on the final answer only."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tinyllm.data.tasks.arithmetic import Arithmetic

STEP = re.compile(r"^(\d)([+*])(\d)\+(\d)=(\d)(\d)$")


def check_scratchpad(example, op):
    """Parse the scratchpad and check it column by column against the digits of a and b."""
    a, b = example.meta["a"], example.meta["b"]
    working, marker, answer = example.target.rstrip("\n").rpartition(" answer: ")
    assert marker and answer == example.answer
    steps = working.split(" ")
    width = max(len(str(a)), len(str(b))) if op == "+" else len(str(a))
    assert len(steps) == width
    carry, digits = 0, []
    for i, step in enumerate(steps):
        m = STEP.match(step)
        assert m, step
        ai, sym, bi, ci, co, si = m.groups()
        assert sym == op
        assert int(ai) == a // 10**i % 10  # the i-th digit from the right
        assert int(bi) == (b // 10**i % 10 if op == "+" else b)
        assert int(ci) == carry  # the carry written in the step before
        value = int(ai) + int(bi) + carry if op == "+" else int(ai) * int(bi) + carry
        assert 10 * int(co) + int(si) == value
        carry = int(co)
        digits.append(si)
    # the answer is the final carry and the written digits, read from the top
    assert int(str(carry) + "".join(reversed(digits))) == int(example.answer)


@pytest.mark.parametrize("op", ["+", "*"])
def test_answers_and_scratchpads_are_right(op):
    task = Arithmetic((1, 5), op=op, scratchpad=True)
    for ex in task.examples(300, seed=3):
        a, b = ex.meta["a"], ex.meta["b"]
        assert ex.prompt == f"{a}{op}{b}="
        assert int(ex.answer) == (a + b if op == "+" else a * b)
        assert str(int(ex.answer)) == ex.answer  # no leading zeros
        check_scratchpad(ex, op)


def test_scratchpad_on_long_carry_chains():
    task = Arithmetic(5)
    for a, b in [(99999, 1), (99999, 99999), (10000, 90000), (0, 0), (5, 12345)]:
        check_scratchpad(task.make(a, b), "+")


def test_digits_knob_sets_the_length_of_both_operands():
    for d in range(1, 6):
        for ex in Arithmetic(d).examples(50, seed=d):
            assert len(str(ex.meta["a"])) == d and len(str(ex.meta["b"])) == d
            assert ex.meta["digits"] == d
    seen = {ex.meta["digits"] for ex in Arithmetic((2, 4)).examples(200, seed=0)}
    assert seen == {2, 3, 4}
    assert all(ex.meta["b"] < 10 for ex in Arithmetic(4, op="*").examples(50, seed=1))


def test_direct_and_scratchpad_share_prompts_and_answers():
    cot = Arithmetic((1, 5), scratchpad=True).examples(20, seed=7)
    direct = Arithmetic((1, 5), scratchpad=False).examples(20, seed=7)
    assert [e.prompt for e in cot] == [e.prompt for e in direct]
    assert [e.answer for e in cot] == [e.answer for e in direct]
    assert all(e.target == e.answer + "\n" for e in direct)


def test_score_reads_only_the_final_answer():
    cot = Arithmetic(3).make(345, 912)
    assert cot.target == "5+2+0=07 4+1+0=05 3+9+0=12 answer: 1257\n"
    assert cot.score(cot.target) == 1.0
    assert cot.score("wrong working answer: 1257\n") == 1.0  # the working is not graded
    assert cot.score("5+2+0=07 answer: 1258\n") == 0.0
    assert cot.score("5+2+0=07 4+1+0=05 3+9+0=12 1257") == 0.0  # no answer marker
    assert cot.score("answer: 12 answer: 1257\nanswer: 3") == 1.0  # last marker, first line
    assert cot.score("answer: 12570") == 0.0
    direct = Arithmetic(3, scratchpad=False).make(345, 912)
    assert direct.score("1257\n") == 1.0 and direct.score(" 1257 ") == 1.0
    assert direct.score("125") == 0.0 and direct.score("answer: 1257") == 0.0
    with pytest.raises(TypeError, match="str"):
        direct.score(1257)


def test_same_seed_same_examples():
    t = Arithmetic((1, 5))
    assert t.examples(30, seed=11) == t.examples(30, seed=11)
    rng = np.random.default_rng(0)
    assert t.sample(rng) != t.sample(rng)


@pytest.mark.parametrize(
    "kwargs,problem",
    [({"digits": 0}, "digits"), ({"digits": (3, 2)}, "digits"), ({"op": "-"}, "op"),
     ({"digits": "5"}, "digits")],
)  # fmt: skip
def test_bad_settings_are_named(kwargs, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        Arithmetic(**kwargs)
    with pytest.raises(ValueError, match="one digit"):
        Arithmetic(2, op="*").make(12, 34)
