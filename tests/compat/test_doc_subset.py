"""docs/15-coming-from-pytorch.md lists every public name of each torch stand-in; this checks
the list against the stand-ins themselves, both ways, so the chapter cannot promise a name that
does not resolve nor omit one that does. It also checks that every listed name resolves through
the stand-in to the tinyllm object it claims to be."""

import re
from pathlib import Path

import pytest

from tinyllm import torch_compat

DOC = Path(__file__).resolve().parents[2] / torch_compat.DOCS


def documented() -> dict[str, set[str]]:
    text = DOC.read_text()
    section = text.split("## The supported subset", 1)[1].split("\n## ", 1)[0]
    entries = re.split(r"\n- ", "\n" + section)
    out = {}
    for entry in entries:
        m = re.match(r"`(torch[\w.]*)`: (.*)", entry, re.S)
        if m:
            out[m.group(1)] = set(re.findall(r"`(\w+)`", m.group(2)))
    return out


def public(stand_in) -> set[str]:
    return {
        n
        for n in dir(stand_in)
        if not n.startswith("_") and not isinstance(getattr(stand_in, n), torch_compat.StandIn)
    }


def test_the_chapter_lists_every_stand_in_with_names():
    listed = documented()
    expected = {name for name, m in torch_compat.MODULES.items() if public(m)}
    assert set(listed) == expected


@pytest.mark.parametrize("module", sorted(torch_compat.MODULES))
def test_listed_names_are_exactly_the_stand_ins_names(module):
    stand_in = torch_compat.MODULES[module]
    listed = documented().get(module, set())
    assert listed == public(stand_in), (
        f"{module}: listed but missing {sorted(listed - public(stand_in))}, "
        f"present but not listed {sorted(public(stand_in) - listed)}"
    )
    for name in listed:
        assert getattr(stand_in, name) is not None


def test_a_name_outside_the_list_is_unsupported_and_names_itself():
    with pytest.raises(torch_compat.Unsupported, match=r"torch\.nn\.Conv2d"):
        _ = torch_compat.MODULES["torch.nn"].Conv2d
    # helpers that a tinyllm module merely imports are not part of torch's surface
    with pytest.raises(torch_compat.Unsupported):
        _ = torch_compat.MODULES["torch.nn.init"].generator_or_default
    with pytest.raises(torch_compat.Unsupported):
        _ = torch_compat.MODULES["torch.nn.init"].annotations
