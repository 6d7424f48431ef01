"""The type functions and the parser of examples/flags.py, one function at a time.

Each check is stated against what the flag means, not against the function's own output: a
learning rate is a finite number > 0, so nan, inf, 0 and negatives are refused and every finite
positive float comes back unchanged; "no clipping" must leave a gradient exactly as it was
(tinyllm's clip_grad_norm_ is the referee); an output path check must neither create the
directory it approves nor leave a probe file behind.
"""

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import flags  # noqa: E402  (examples/flags.py, as the scripts import it)

from tinyllm import Tensor  # noqa: E402
from tinyllm.optim import clip_grad_norm_  # noqa: E402

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def refuses(fn, text, *words):
    """`fn(text)` raises ArgumentTypeError whose message contains every word."""
    with pytest.raises(argparse.ArgumentTypeError) as e:
        fn(text)
    for w in words:
        assert w in str(e.value), (text, str(e.value))
    return str(e.value)


# ---- numbers -------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10**12))
def test_positive_int_keeps_every_positive_integer(n):
    assert flags.positive_int(str(n)) == n


@pytest.mark.parametrize("text", ["0", "-1", "-100"])
def test_positive_int_refuses_zero_and_negatives(text):
    refuses(flags.positive_int, text, "integer > 0", text)


@pytest.mark.parametrize("text", ["1.5", "abc", "", "1e3", "nan"])
def test_positive_int_refuses_non_integers(text):
    refuses(flags.positive_int, text, "integer > 0")


def test_nonnegative_int_accepts_zero_refuses_negatives():
    assert flags.nonnegative_int("0") == 0
    assert flags.nonnegative_int("7") == 7
    refuses(flags.nonnegative_int, "-1", "≥ 0", "-1")


def test_int_in_closed_range():
    bits = flags.int_in(2, 8)
    assert [bits(str(b)) for b in range(2, 9)] == list(range(2, 9))
    for bad in ("1", "9", "x"):
        refuses(bits, bad, "[2, 8]")


@given(st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False))
def test_finite_positive_float_keeps_every_finite_positive_float(x):
    assert flags.finite_positive_float(repr(x)) == x


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "0", "-0.0", "-3e-4"])
def test_finite_positive_float_refuses_nan_inf_zero_negative(text):
    refuses(flags.finite_positive_float, text, "finite number > 0", text)


def test_finite_positive_float_refuses_words():
    refuses(flags.finite_positive_float, "fast", "finite number > 0", "'fast'")


def test_finite_nonnegative_float():
    assert flags.finite_nonnegative_float("0") == 0.0
    assert flags.finite_nonnegative_float("0.1") == 0.1
    for bad in ("-0.1", "nan", "inf"):
        refuses(flags.finite_nonnegative_float, bad, "≥ 0")


def test_probability_is_the_closed_unit_interval():
    assert flags.probability("0") == 0.0 and flags.probability("1") == 1.0
    assert flags.probability("0.25") == 0.25
    for bad in ("-0.01", "1.01", "nan", "inf"):
        refuses(flags.probability, bad, "[0, 1]")


def test_float_in_open_ends_exclude_exactly_the_end():
    top_p = flags.float_in(0.0, 1.0, low_open=True)
    assert top_p("1") == 1.0 and top_p("1e-9") == 1e-9
    refuses(top_p, "0", "(0, 1]")
    dropout = flags.float_in(0.0, 1.0, high_open=True)
    assert dropout("0") == 0.0 and dropout("0.999") == 0.999
    refuses(dropout, "1", "[0, 1)")


@pytest.mark.parametrize("text", ["0", "0.0", "-0", "off", "OFF", "none", "inf", "Infinity"])
def test_grad_clip_off_leaves_the_gradient_unchanged(text, rng):
    """ "Off" must mean the clipping step is the identity, even for a huge gradient."""
    max_norm = flags.grad_clip(text)
    p = Tensor(np.zeros((4, 5)), requires_grad=True)
    p.grad = rng.standard_normal((4, 5)) * 1e6
    before = p.grad.copy()
    clip_grad_norm_([p], max_norm)
    np.testing.assert_array_equal(p.grad, before)


def test_grad_clip_positive_value_clips_to_that_norm(rng):
    max_norm = flags.grad_clip("0.5")
    assert max_norm == 0.5
    p = Tensor(np.zeros(10), requires_grad=True)
    p.grad = rng.standard_normal(10) * 10
    clip_grad_norm_([p], max_norm)
    assert math.isclose(float(np.linalg.norm(p.grad)), 0.5, rel_tol=1e-5)


@pytest.mark.parametrize("text", ["-1", "-0.5", "nan", "-inf", "x"])
def test_grad_clip_refuses_negative_and_nan(text):
    refuses(flags.grad_clip, text, "finite number > 0", "0 / off")


@pytest.mark.parametrize(
    "text,expected",
    [("1000", 1000), ("64MB", 64 * 10**6), ("1GiB", 2**30), ("1.5KB", 1500), ("12mb", 12 * 10**6)],
)
def test_byte_count(text, expected):
    assert flags.byte_count(text) == expected


@pytest.mark.parametrize("text", ["0", "0MB", "-5MB", "lots", "5XB", ""])
def test_byte_count_refuses_zero_and_nonsense(text):
    refuses(flags.byte_count, text, repr(text))


def test_comma_list_checks_every_item():
    budgets = flags.comma_list(flags.finite_positive_float)
    assert budgets("1e10, 3e10,") == [1e10, 3e10]
    refuses(budgets, "1e10,nan", "'nan'", "finite number > 0")
    refuses(budgets, " , ", "names nothing")
    formats = flags.comma_list(str, choices=("fp32", "bf16"))
    assert formats("bf16,fp32") == ["bf16", "fp32"]
    refuses(formats, "fp32,fp8", "unknown fp8", "fp32, bf16")


# ---- input files ---------------------------------------------------------------------------


def test_readable_text_file_accepts_utf8_text(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("def f(x):\n    return 'π'\n", encoding="utf-8")
    assert flags.readable_text_file(str(f)) == str(f)


def test_readable_text_file_each_failure_has_its_own_message(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "weights.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00binary")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait\n".encode("latin-1"))
    messages = {
        "missing": refuses(flags.readable_text_file, str(tmp_path / "nope.txt"), "does not exist"),
        "directory": refuses(flags.readable_text_file, str(tmp_path), "is a directory"),
        "device": refuses(flags.readable_text_file, os.devnull, "not a regular file", os.devnull),
        "empty": refuses(flags.readable_text_file, str(empty), "empty", str(empty)),
        "binary": refuses(flags.readable_text_file, str(binary), "binary", "NUL byte at offset 4"),
        "not utf-8": refuses(flags.readable_text_file, str(latin1), "not UTF-8", "byte 3"),
    }
    assert len(set(messages.values())) == len(messages)


def test_readable_text_file_accepts_a_character_cut_by_the_probe(tmp_path):
    """The probe reads the first 64 KiB; a 2-byte character straddling that edge is text."""
    f = tmp_path / "edge.txt"
    f.write_bytes(b"a" * (flags.TEXT_PROBE_BYTES - 1) + "é\n".encode("utf-8"))
    assert flags.readable_text_file(str(f)) == str(f)


@pytest.mark.skipif(ROOT_USER, reason="root reads every file")
def test_readable_text_file_refuses_an_unreadable_file(tmp_path):
    f = tmp_path / "secret.txt"
    f.write_text("text\n")
    f.chmod(0)
    try:
        refuses(flags.readable_text_file, str(f), "cannot be read")
    finally:
        f.chmod(0o644)


def test_readable_file_takes_binary_but_not_empty_or_directories(tmp_path):
    ckpt = tmp_path / "model.npz"
    ckpt.write_bytes(b"PK\x03\x04\x00binary")
    assert flags.readable_file(str(ckpt)) == str(ckpt)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    refuses(flags.readable_file, str(empty), "empty")
    refuses(flags.readable_file, str(tmp_path), "is a directory")


# ---- output paths --------------------------------------------------------------------------


def test_writable_file_in_a_new_directory_creates_nothing(tmp_path):
    target = tmp_path / "runs" / "deep" / "report.json"
    assert flags.writable_file(str(target)) == str(target)
    assert list(tmp_path.iterdir()) == []  # no directory made, no probe file left behind


def test_writable_file_existing_file_may_be_replaced(tmp_path):
    f = tmp_path / "report.json"
    f.write_text("{}")
    assert flags.writable_file(str(f)) == str(f)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_writable_file_refusals(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    refuses(flags.writable_file, str(tmp_path), "is a directory")
    refuses(flags.writable_file, str(tmp_path) + "/", "must name a file")
    refuses(flags.writable_file, str(a_file / "report.json"), "where the file", str(a_file))
    refuses(flags.writable_file, os.devnull, "not a regular file")
    # /proc accepts no new files, not even from root
    refuses(flags.writable_file, "/proc/tinyllm-report.json", "cannot be written", "/proc")


@pytest.mark.skipif(ROOT_USER, reason="root writes into read-only directories")
def test_writable_file_refuses_a_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        refuses(flags.writable_file, str(ro / "sub" / "x.json"), "cannot be written", str(ro))
    finally:
        ro.chmod(0o755)


def test_writable_dir(tmp_path):
    assert flags.writable_dir(str(tmp_path)) == str(tmp_path)
    new = tmp_path / "cache" / "sub"
    assert flags.writable_dir(str(new)) == str(new)
    assert not (tmp_path / "cache").exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    refuses(flags.writable_dir, str(a_file), "is a file, not a directory")
    refuses(flags.writable_dir, str(a_file / "sub"), "where the file")
    refuses(flags.writable_dir, "/proc/tinyllm-cache", "cannot be written")


# ---- the parser ----------------------------------------------------------------------------


def make_parser():
    p = flags.parser("Demo.\n\nMore text.")
    p.add_argument("--lr", type=flags.finite_positive_float, default=0.1, help="rate")
    p.add_argument("--n", type=flags.positive_int, default=4, help="count")
    p.add_argument("--m", type=flags.positive_int, default=2, help="divides --n")
    p.add_argument("--out", default=None, help="a path (default: none)")
    p.add_argument("--wd", type=float, default=0.0, help="decay")  # 0.0 == False, yet shown
    p.add_check(lambda a: f"--n {a.n} must divide by --m {a.m}" if a.n % a.m else None)
    return p


def usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        make_parser().parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln]
    assert len(lines) == 2 and lines[0].startswith("usage:"), err
    return lines[1]


def test_parser_error_names_the_flag_first(capsys):
    assert usage_error(["--lr", "nan"], capsys).endswith(
        "error: --lr must be a finite number > 0, got nan"
    )


def test_parser_runs_cross_flag_checks_after_parsing(capsys):
    assert make_parser().parse_args(["--n", "6", "--m", "3"]).n == 6
    assert usage_error(["--n", "5", "--m", "2"], capsys).endswith(
        "error: --n 5 must divide by --m 2"
    )


def test_help_shows_defaults_but_not_none(capsys):
    with pytest.raises(SystemExit) as e:
        make_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "rate (default: 0.1)" in out and "count (default: 4)" in out
    assert "a path (default: none)" in out and "(default: None)" not in out
    assert "decay (default: 0.0)" in out
