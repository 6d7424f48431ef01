"""String transformations and rule induction (tinyllm/data/tasks/strings.py, induction.py).

Truths used: answers worked out by hand for fixed inputs; the held-out split checked against
the definition (sha256 of the rule) by enumerating all 720 rules of a 6-letter alphabet; the
prompt re-parsed line by line, so a demonstration that contradicts the rule is caught.
"""

import hashlib
import itertools

import numpy as np
import pytest

from tinyllm.data.tasks.induction import SubstitutionTask, rule_split
from tinyllm.data.tasks.strings import StringTask, few_shot_prompt, transform


@pytest.mark.parametrize(
    "name,x,y",
    [
        ("reverse", "tinyllm", "mllynit"),
        ("sort", "banana", "aaabnn"),
        ("uppercase", "abc", "ABC"),
        ("caesar1", "xyz", "yza"),
        ("caesar3", "abc", "def"),
        ("caesar0", "abc", "abc"),
        ("every_second", "abcdefg", "aceg"),
        ("every_second", "ab", "a"),
        ("rotate", "abcd", "bcda"),
        ("rotate", "a", "a"),
    ],
)
def test_transform_by_hand(name, x, y):
    assert transform(name, x) == y


@pytest.mark.parametrize("name", ["reverse", "sort", "uppercase", "caesar2", "every_second"])
def test_string_task_score_is_exact(name):
    task = StringTask(name, length=4, shots=2)
    ex = task.sample(np.random.default_rng(0))
    assert ex.answer == transform(name, ex.meta["query"])
    assert ex.target == ex.answer + "\n"
    assert ex.score(ex.answer) == 1.0
    assert ex.score(ex.answer + "\nanything after the line") == 1.0
    assert ex.score(" " + ex.answer + " ") == 1.0  # spaces around the answer are stripped
    assert ex.score(ex.answer[:-1]) == 0.0
    assert ex.score(ex.answer + "x") == 0.0
    assert ex.score("") == 0.0


def test_string_prompt_layout_and_demonstrations_are_right():
    task = StringTask("reverse", length=(2, 5), shots=3)
    ex = task.sample(np.random.default_rng(1))
    lines = ex.prompt.split("\n")
    assert lines[0] == "reverse" and len(lines) == 1 + 3 + 1
    for line in lines[1:-1]:
        x, y = line.split(">")
        assert y == x[::-1] and 2 <= len(x) <= 5
    assert lines[-1] == ex.meta["query"] + ">"
    assert few_shot_prompt("h", [("ab", "ba")], "cd") == "h\nab>ba\ncd>"


def test_string_task_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown transformation 'shout'"):
        StringTask("shout")
    with pytest.raises(ValueError, match="caesar needs a shift"):
        StringTask("caesarX")
    with pytest.raises(ValueError, match="length"):
        StringTask("reverse", length=0)
    with pytest.raises(ValueError, match="shots"):
        StringTask("reverse", shots=(3, 1))
    with pytest.raises(ValueError, match="alphabet"):
        StringTask("reverse", alphabet="aB")


def test_substitution_score_and_prompt_follow_one_rule():
    task = SubstitutionTask("abcdef", length=3, shots=8, split="heldout")
    for ex in task.examples(20, seed=3):
        table = dict(zip("abcdef", ex.meta["rule"]))
        lines = ex.prompt.split("\n")
        assert lines[0] == "subst" and len(lines) == 10
        for line in lines[1:-1]:  # every demonstration obeys the prompt's rule
            x, y = line.split(">")
            assert y == "".join(table[c] for c in x)
        q = lines[-1][:-1]
        assert ex.answer == "".join(table[c] for c in q)
        assert ex.score(ex.answer) == 1.0 and ex.score(ex.answer[::-1] + "z") == 0.0
        shown = {c for line in lines[1:-1] for c in line.split(">")[0]}
        assert ex.meta["covered"] == (set(q) <= shown)


def test_substitution_by_hand():
    # the rule a→f b→e c→d d→c e→b f→a, worked out by hand
    assert SubstitutionTask.apply("abcdef", "fedcba", "cab") == "dfe"


def test_heldout_rules_are_disjoint_from_training_rules_and_match_the_definition():
    train = SubstitutionTask("abcdef", split="train")
    held = SubstitutionTask("abcdef", split="heldout")
    tr, he = set(train.all_rules()), set(held.all_rules())
    every = {"".join(p) for p in itertools.permutations("abcdef")}
    assert tr.isdisjoint(he) and tr | he == every
    for r in every:  # the split is the hash rule of the docstring, computed here on its own
        h = int(hashlib.sha256(f"abcdef:{r}".encode()).hexdigest()[:16], 16)
        assert (r in he) == (h % 5 == 0)
    assert 0.1 < len(he) / len(every) < 0.3  # about one in five
    # sampled prompts stay in their split
    assert {e.meta["rule"] for e in train.examples(200, seed=0)} <= tr
    assert {e.meta["rule"] for e in held.examples(200, seed=0)} <= he
    assert rule_split("abcdef", next(iter(he))) == "heldout"


def test_fixed_rules_must_belong_to_the_split():
    held_rule = SubstitutionTask("abcdef", split="heldout").all_rules()[0]
    task = SubstitutionTask("abcdef", split="heldout", rules=[held_rule], shots=0)
    assert {e.meta["rule"] for e in task.examples(10, seed=0)} == {held_rule}
    with pytest.raises(ValueError, match="is a heldout rule, not train"):
        SubstitutionTask("abcdef", split="train", rules=[held_rule])
    with pytest.raises(ValueError, match="not a permutation"):
        SubstitutionTask("abcdef", split="heldout", rules=["aabcde"])
    with pytest.raises(ValueError, match="split must be"):
        SubstitutionTask(split="test")


def test_same_seed_same_examples_and_shots_in_range():
    for task in (StringTask("sort", length=(1, 6), shots=(0, 8)), SubstitutionTask()):
        a, b = task.examples(30, seed=7), task.examples(30, seed=7)
        assert [(e.prompt, e.target) for e in a] == [(e.prompt, e.target) for e in b]
        assert [e.prompt for e in task.examples(30, seed=8)] != [e.prompt for e in a]
        shots = [e.meta["shots"] for e in task.examples(300, seed=1)]
        assert min(shots) == 0 and max(shots) == 8
