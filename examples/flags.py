"""Checking a program's flags before it does any work.

A training script that accepts `--lr nan` trains NaNs for an hour and exits 0; one that accepts
an unwritable `--report` fails after the hour, naming a temporary file. The cure is old: check
every flag where it is parsed, say what is wrong in one line, and stop before the first byte of
the corpus is read. argparse has the two places for it:

- a **type function** turns one flag's text into its value or raises
  `argparse.ArgumentTypeError` — `positive_int`, `finite_positive_float`, `probability`,
  `readable_text_file`, `writable_file` … below, each a plain function of a string, testable on
  its own;
- **cross-flag checks** after `parse_args` (`n_embd` divisible by `n_head`, a batch that splits
  over the ranks) call `parser.error(...)`.

Either way the parser prints its usage line and `prog: error: <what is wrong>` on stderr and
exits with status 2 — the Unix convention for a usage error, with no traceback. Under mpirun
every rank parses the same flags the same way before any collective, so every rank stops with
status 2 at the same point and none is left waiting for the others.

Output paths are checked before anything is written to them. A file is written atomically (a
temporary name in the same directory, then a rename — tinyllm/runtime/fileio.py), so what must
hold is that the path is not a directory and that its directory exists and accepts new files,
or can be created inside the nearest existing ancestor. "Accepts new files" is tested by
creating (and at once removing) a temporary file there, not by reading permission bits: the
bits do not bind root, and they know nothing of read-only file systems.

`ExampleParser` (made by `parser`) shows every flag's default in `--help` and keeps the usage
line short, so the error is the line that stands out.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
import tempfile


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` shows "(default: …)" after each flag, unless its help already says the default
    in words (defaults of None, "not given", are described that way) or it is an on/off switch."""

    def _get_help_string(self, action):
        text = action.help or ""
        quiet = action.default is None or action.default is False  # not 0 or 0.0, which == False
        if "default" in text or quiet or action.default == argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


_OUR_MESSAGE = re.compile(r"argument (-[\w-]+)(?:/-[\w-]+)*: (must|is|has|names|cannot) (.*)", re.S)


class ExampleParser(argparse.ArgumentParser):
    """An ArgumentParser with cross-flag checks: `add_check(fn)` registers `fn(args) -> problem
    or None`, run by `parse_args` after every flag has been converted; the first problem found
    is a usage error. Its messages read "--lr must be …" rather than "argument --lr: must be …"."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks = []

    def add_check(self, check):
        """Register `check(args) -> str | None` (usable as a decorator)."""
        self.checks.append(check)
        return check

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for check in self.checks:
            problem = check(parsed)
            if problem:
                self.error(problem)
        return parsed

    def error(self, message: str):
        m = _OUR_MESSAGE.match(message)
        if m:
            message = f"{m.group(1)} {m.group(2)} {m.group(3)}"
        super().error(message)


def parser(doc: str) -> ExampleParser:
    """The parser of a script whose module docstring is `doc` (its first line describes it)."""
    return ExampleParser(
        description=doc.strip().split("\n")[0],
        usage="%(prog)s [-h] [options]",
        formatter_class=HelpFormatter,
    )


# ---- numbers -----------------------------------------------------------------------------------


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1: steps, batch sizes, intervals, micro-batches, ranks."""
    value = _int(text, "an integer > 0")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0: counts where 0 means "none" (warmup steps, tokens to sample)."""
    value = _int(text, "an integer ≥ 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {value}")
    return value


def int_in(low: int, high: int):
    """A type function for integers in [low, high]."""

    def int_in_range(text: str) -> int:
        what = f"an integer in [{low}, {high}]"
        value = _int(text, what)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    int_in_range.__name__ = f"int_in_{low}_{high}"
    return int_in_range


def finite_positive_float(text: str) -> float:
    """A finite number > 0: learning rates, scales, model sizes. nan and inf are refused."""
    value = _float(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def finite_nonnegative_float(text: str) -> float:
    """A finite number ≥ 0: weight decay, where 0 switches it off."""
    value = _float(text, "a finite number ≥ 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def float_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False):
    """A type function for finite floats in an interval; `low_open`/`high_open` exclude an end."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    what = f"a number in {interval}"

    def float_in_interval(text: str) -> float:
        value = _float(text, what)
        below = value < low or (low_open and value == low)
        above = value > high or (high_open and value == high)
        if below or above:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    float_in_interval.__name__ = f"float_in_{interval}"
    return float_in_interval


probability = float_in(0.0, 1.0)
probability.__doc__ = "A probability: a number in [0, 1]."
probability.__name__ = "probability"


def grad_clip(text: str) -> float:
    """The global gradient-norm limit: a finite number > 0, or 0 / off / none / inf for no
    clipping, returned as max_norm = ∞ — with it, the clipping factor min(1, max_norm / ‖g‖) is
    always 1, so every clipping function leaves the gradients as they are."""
    problem = f"must be a finite number > 0, or 0 / off for no clipping, got {text}"
    if text.strip().lower() in ("off", "none"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    if value == 0 or value == math.inf:
        return math.inf
    if not value > 0 or not math.isfinite(value):  # negative, -inf or nan
        raise argparse.ArgumentTypeError(problem)
    return value


_BYTES = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", re.IGNORECASE)


def byte_count(text: str) -> int:
    """A size in bytes, ≥ 1: '64MB' → 64·10⁶, '1GiB' → 2³⁰, '1000' → 1000."""
    m = _BYTES.fullmatch(str(text))
    if not m:
        raise argparse.ArgumentTypeError(
            f"must be a byte count such as 64MB, 1GiB or 1000, got {text!r}"
        )
    value, unit, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    power = "KMGT".index(unit) + 1 if unit else 0
    count = int(value * (1024 if binary else 1000) ** power)
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return count


def comma_list(item_type, *, choices=None):
    """A type function for a comma-separated, non-empty list, each item checked by `item_type`
    (or required to be one of `choices`)."""

    def comma_separated(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(
                f"names nothing: give a comma-separated list, got {text!r}"
            )
        if choices is not None:
            unknown = [t for t in items if t not in choices]
            if unknown:
                raise argparse.ArgumentTypeError(
                    f"has unknown {', '.join(unknown)}; choose from {', '.join(choices)}"
                )
            return items
        out = []
        for t in items:
            try:
                out.append(item_type(t))
            except argparse.ArgumentTypeError as e:
                raise argparse.ArgumentTypeError(f"has a bad item {t!r}: each item {e}") from None
        return out

    comma_separated.__name__ = "comma_list"
    return comma_separated


# ---- files -------------------------------------------------------------------------------------

TEXT_PROBE_BYTES = 1 << 16  # how much of a text file is read to tell text from binary


def _existing_regular_file(text: str, kind: str) -> str:
    """The checks every input file shares: it exists, is a regular file, can be opened, and is
    not empty. Each failure has its own message, so the fix is obvious."""
    path = os.path.expanduser(text)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise argparse.ArgumentTypeError(f"names a {kind} that does not exist: {text}") from None
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot be read: {text}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise argparse.ArgumentTypeError(f"is a directory, not a {kind}: {text}")
    if not stat.S_ISREG(st.st_mode):
        raise argparse.ArgumentTypeError(
            f"is not a regular file ({text} is a device, pipe or socket): give a {kind}"
        )
    if st.st_size == 0:
        raise argparse.ArgumentTypeError(f"is an empty file, not a {kind}: {text}")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot be read: {text}: {e.strerror}") from None
    return path


def readable_file(text: str) -> str:
    """An existing, readable, non-empty regular file (a checkpoint, say)."""
    return _existing_regular_file(text, "file")


def readable_text_file(text: str) -> str:
    """An existing, readable, non-empty UTF-8 text file. A directory, a device such as /dev/null,
    an empty file and a binary file (a NUL byte, or bytes that are not UTF-8, in its first
    64 KiB) each get their own message."""
    path = _existing_regular_file(text, "text file")
    with open(path, "rb") as f:
        head = f.read(TEXT_PROBE_BYTES)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise argparse.ArgumentTypeError(
            f"is a binary file, not UTF-8 text: {text} has a NUL byte at offset {nul}"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if not (e.reason == "unexpected end of data" and len(head) == TEXT_PROBE_BYTES):
            raise argparse.ArgumentTypeError(
                f"is not UTF-8 text: {text} has {e.reason} at byte {e.start}"
            ) from None
    return path


def _accepts_new_files(directory: str) -> str | None:
    """None if a file can be created in `directory`, else the reason it cannot."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=directory)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(probe)
    return None


def _creatable_directory(text: str, directory: str) -> None:
    """Raise unless `directory` is a writable directory, or can be made inside the nearest
    ancestor that exists."""
    probe = os.path.abspath(directory)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise argparse.ArgumentTypeError(
            f"cannot be written: {text} would need a directory where the file {probe} is"
        )
    reason = _accepts_new_files(probe)
    if reason is not None:
        where = "" if probe == os.path.abspath(directory) else " (to create its directory)"
        raise argparse.ArgumentTypeError(
            f"cannot be written: no new file can be created in {probe}{where}: {reason}"
        )


def writable_file(text: str) -> str:
    """A file the program may (atomically) create or replace: not a directory, not a device, and
    its directory accepts new files or can be created."""
    path = os.path.expanduser(text)
    if not text or text.endswith(os.sep):
        raise argparse.ArgumentTypeError(f"must name a file, got {text!r}")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"is a directory; give a file name inside it: {text}")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise argparse.ArgumentTypeError(
            f"is not a regular file ({text} is a device, pipe, socket or broken link)"
        )
    _creatable_directory(text, os.path.dirname(os.path.abspath(path)))
    return path


def writable_dir(text: str) -> str:
    """A directory the program may write files into: an existing writable one, or one that can
    be created; not an existing file."""
    path = os.path.expanduser(text)
    if not text:
        raise argparse.ArgumentTypeError("must name a directory, got ''")
    if os.path.lexists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"is a file, not a directory: {text}")
    _creatable_directory(text, path)
    return path


def add_report(parser) -> None:
    """The `--report PATH` flag every example shares: where to write its JSON report."""
    parser.add_argument(
        "--report",
        type=writable_file,
        default=None,
        metavar="PATH",
        help="write a JSON report here (default: none)",
    )
