"""The book stays true: every command in README.md and docs/*.md runs, every link resolves.

Conventions of the Markdown files (docs/README.md repeats them for writers):

* ```bash blocks hold commands, one per line (a trailing backslash continues a line; lines
  starting with # are comments). Each is run here, in its file's order, and must exit 0. A
  command that is *meant* to fail ends with a comment `# fails: <text>`: it must exit non-zero
  and print <text> (e.g. a simulated out-of-memory error).
* ```python blocks run in one interpreter per file (in this process), in order, sharing their
  names like a session. A ```text block that directly follows a python block is its output
  and must match what the block printed (trailing spaces ignored).
* Any other fence (```text, ```console, a bare ```) is illustration and is not run.
* A command shown in the prose as inline code — `python <script>.py …` or
  `mpirun -n N python <script>.py …` — is run too, in its place in the file's order, unless
  some ```bash block of the book already runs it (the same words, possibly followed by more
  flags): a reader copies those as well.

How a command is run. Commands are written as typed at the repository root, with paths of
scripts relative to it (`python examples/train_gpt.py`). Each file's commands run in a fresh
temporary working directory with the script paths made absolute — so what a command writes
(runs/…, checkpoints, reports) lands there, and later commands of the same file find it, as
they would for a reader. Every command gets small settings appended (`SMALL` below: two
steps, a tiny model, 50 KB of corpus, a shared tokenizer cache), so the whole book runs in a
few minutes on two cores; argparse lets the last flag win. A command that
sets `--device-memory` keeps its model size (the capacity was chosen for that model) and gets
only the cheap flags. A command that sets a flag of `IF_SET` gets that flag's small value
(`--stop-at 200` of the default 400 steps becomes `--stop-at 1` of the two). `mpirun -n N`
keeps its N; `mpirun -f HOSTS` (a host file, for several machines) gets a host file HOSTS in
the working directory that names this machine with N slots, and an absolute path among the
script's arguments (a shared directory such as /shared/ckpt) is taken relative to the working
directory. `python -m pytest …` lines are checked, not re-run: the test files they name must
exist (the suite that CI runs includes them).

README.md's two quick-start commands are special: both create a venv and pip-install the
package, which this test does not repeat. The second must be, character for character, the
command `.ci/run` executes (so CI tests what the README promises). Of the first, the part
after the install — `mpirun -n 4 python examples/train_zero.py` — is run with small settings.

The files' commands run concurrently (a few files at a time, each file's commands in order),
and the README's table of experiments must only list commands that some chapter runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest
from mpi_helpers import mpirun_path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


CACHE_VOCABS = (300, 400)  # the tokenizers the small settings use (GPT; BERT/T5 specials)
DATA_BYTES = "50000"

# ---- small settings appended to each script's command --------------------------------------
# "cheap": always appended; "size": appended unless the command sets --device-memory.
# {cache} is the shared tokenizer cache of this test run.
_TRAIN = [
    "--steps",
    "2",
    "--data-bytes",
    DATA_BYTES,
    "--cache-dir",
    "{cache}",
    "--eval-interval",
    "2",
    "--eval-iters",
    "1",
    "--log-interval",
    "1",
]
_GPT = [
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--n-embd",
    "16",
    "--block-size",
    "32",
    "--vocab-size",
    "300",
    "--batch-size",
    "4",
]
_SIM = [
    "--n-layer",
    "4",
    "--n-head",
    "4",
    "--n-embd",
    "16",
    "--block-size",
    "16",
    "--vocab-size",
    "300",
    "--batch-size",
    "8",
]
_ENC = [
    "--n-layer",
    "1",
    "--n-head",
    "2",
    "--n-embd",
    "16",
    "--block-size",
    "32",
    "--vocab-size",
    "400",
    "--batch-size",
    "4",
]
SMALL = {
    "examples/train_gpt.py": (_TRAIN + ["--sample-tokens", "4"], _GPT),
    "examples/train_bert.py": (
        _TRAIN
        + [
            "--cls-steps",
            "2",
            "--cls-batch-size",
            "4",
            "--cls-len",
            "16",
            "--cls-eval-per-class",
            "2",
        ],
        _ENC,
    ),
    "examples/train_t5.py": (
        _TRAIN
        + [
            "--ft-steps",
            "2",
            "--ft-batch-size",
            "4",
            "--ft-input-len",
            "24",
            "--ft-target-len",
            "8",
            "--ft-eval-examples",
            "2",
        ],
        _ENC,
    ),
    "examples/generate.py": (
        ["--data-bytes", DATA_BYTES, "--cache-dir", "{cache}", "--max-new-tokens", "4"],
        [],
    ),
    "examples/finetune.py": (
        [
            "--steps",
            "2",
            "--data-bytes",
            "30000",
            "--cache-dir",
            "{cache}",
            "--eval-interval",
            "1",
            "--eval-iters",
            "1",
            "--sample-tokens",
            "4",
        ],
        ["--batch-size", "4"],
    ),
    "examples/sft.py": (
        ["--pretrain-steps", "2", "--pretrain-examples", "60", "--steps", "2"]
        + ["--train-examples", "40", "--eval-examples", "4", "--log-interval", "1"],
        ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--vocab-size", "300"]
        + ["--batch-size", "4", "--noise-chars", "8"],
    ),
    "examples/train_zero.py": (_TRAIN + ["--sample-tokens", "4", "--compare-steps", "1"], _SIM),
    "examples/train_ddp.py": (_TRAIN + ["--sample-tokens", "4"], _SIM),
    "examples/train_3d.py": (_TRAIN + ["--sample-tokens", "4"], _SIM),
    "examples/mixed_precision.py": (_TRAIN, _GPT),
    "examples/quantize.py": (_TRAIN + ["--qat-steps", "2", "--eval-batches", "1"], _GPT),
    "examples/scaling.py": (
        ["--budgets", "1e8,1e9", "--data-bytes", DATA_BYTES, "--cache-dir", "{cache}"],
        [],
    ),  # (--table ignores them)
    "examples/test_time_scaling.py": (
        ["--steps", "2", "--eval-per-digit", "2", "--questions", "2", "--samples", "4"],
        ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--max-digits", "2"],
    ),
    "examples/memory_table.py": ([], []),
    "examples/icl.py": (
        ["--steps", "3", "--eval-examples", "8", "--finetune-steps", "2", "--sizes", "tiny,small"],
        [],
    ),
    "examples/precision_table.py": ([], []),
    "benchmarks/collectives.py": (["--max-bytes", "4KiB", "--iters", "2", "--warmup", "1"], []),
    "benchmarks/tokenizer.py": (
        ["--sizes-mb", "0.05", "--vocab-sizes", "400", "--reference-kb", "2"],
        [],
    ),
    "benchmarks/generate.py": (
        [
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "16",
            "--block-size",
            "32",
            "--new",
            "4",
            "8",
        ],
        [],
    ),
    "benchmarks/int8_matmul.py": (["--quick", "--repeats", "1"], []),
    # the benchmarks' smallest runs: one timing each, no start-up / profile extras
    "benchmarks/kernels.py": (["--quick", "--repeats", "1", "--skip-startup"], []),
    "benchmarks/step.py": (
        ["--workloads", "R1", "--repeats", "1", "--steps", "1", "--no-profile"],
        [],
    ),  # (without torch it times tinyllm alone)
    "docs/figures.py": ([], []),
    "examples/rnn_vs_gpt.py": (
        ["--steps", "2", "--gpt-steps", "2", "--data-bytes", "40KB", "--lengths", "16,32"]
        + ["--repeats", "1", "--clip-steps", "2", "--seeds", "1"],
        ["--batch-size", "4", "--seq-len", "16", "--hidden", "16"],
    ),
    "examples/translate.py": (
        ["--steps", "2", "--eval-sentences", "20"],
        ["--batch-size", "8", "--hidden", "16", "--n-embd", "16"],
    ),
    "examples/word2vec.py": (
        ["--sentences", "2000", "--epochs", "1", "--stdlib-bytes", "100KB", "--curve", "500"],
        ["--vector-size", "16"],
    ),
}
# flags that get a small value when a command sets them (stop after 1 of the 2 steps)
IF_SET = {"--stop-at": "1"}
TIMEOUT = 600  # seconds per command: generous, a loaded machine can be very slow
WORKERS = 6  # files run concurrently (much of the time is process start-up)


# ---- reading the Markdown ----------------------------------------------------------------------


@dataclass
class Block:
    lang: str
    body: str
    line: int  # line number of the opening fence (1-based)
    end: int  # line number of the closing fence


def fenced_blocks(text: str) -> list[Block]:
    blocks, lang, start, body = [], None, 0, []
    for i, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```+\s*([\w+-]*)", line)
        if lang is None and fence:
            lang, start, body = fence.group(1).lower(), i, []
        elif lang is not None and re.match(r"^\s*```+\s*$", line):
            blocks.append(Block(lang, "\n".join(body), start, i))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"unclosed ``` fence opened on line {start}"
    return blocks


def block_followers(text: str, blocks: list[Block]) -> list[Block | None]:
    """For each block, the block that directly follows it (only blank lines between), else None."""
    lines = text.splitlines()
    out = []
    for k, b in enumerate(blocks):
        nxt = blocks[k + 1] if k + 1 < len(blocks) else None
        if nxt is not None and any(ln.strip() for ln in lines[b.end : nxt.line - 1]):
            nxt = None
        out.append(nxt)
    return out


@dataclass
class Command:
    doc: str
    line: int
    text: str  # as written in the file (without a `# fails:` note)
    fails: str | None = None  # expected error text for `# fails:` commands


def fenced_commands(path: Path) -> list[Command]:
    """The commands of the file's ```bash blocks."""
    text = path.read_text()
    cmds = []
    for block in fenced_blocks(text):
        if block.lang != "bash":
            continue
        pending, first = "", 0
        for k, raw in enumerate(block.body.splitlines()):
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if not pending:
                first = block.line + 1 + k
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            full = pending + line
            pending = ""
            m = re.search(r"\s+#\s*fails:\s*(.+)$", full)
            if m:
                full = full[: m.start()]
            cmds.append(Command(rel(path), first, full, m.group(1).strip() if m else None))
    return cmds


PROSE_COMMAND = re.compile(
    r"(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:mpirun\s+-n\s+\d+\s+)?"
    r"python\s+(?:\S+\.py|-m\s+pytest)\b.*"
)


def prose_commands(path: Path) -> list[Command]:
    """Commands written as inline code in the prose (outside fences), e.g. `python x.py --y`."""
    lines = path.read_text().splitlines()
    for b in fenced_blocks("\n".join(lines)):
        for i in range(b.line - 1, b.end):
            lines[i] = ""
    cmds, start = [], 0
    # inline code does not cross a paragraph: look for it paragraph by paragraph
    for k in range(len(lines) + 1):
        if k < len(lines) and lines[k].strip():
            continue
        para = "\n".join(lines[start:k])
        for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", para):
            code = " ".join(m.group(1).split())
            if PROSE_COMMAND.fullmatch(code):
                cmds.append(Command(rel(path), start + 1 + para[: m.start()].count("\n"), code))
        start = k + 1
    return cmds


@lru_cache(maxsize=None)
def _fenced_everywhere() -> tuple:
    return tuple(tuple(c.text.split()) for p in DOC_FILES for c in fenced_commands(p))


def commands_in(path: Path) -> list[Command]:
    """What this test runs of the file: its ```bash commands and, in their place, the prose's
    commands that no ```bash block of the book runs."""

    def run_by_a_block(cmd):
        words = tuple(cmd.text.split())
        return any(r[: len(words)] == words for r in _fenced_everywhere())

    prose = [c for c in prose_commands(path) if not run_by_a_block(c)]
    return sorted(fenced_commands(path) + prose, key=lambda c: c.line)


# ---- turning a written command into one to run -----------------------------------------------

QUICK_START_INSTALL = "python3.11 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && "


@dataclass
class Plan:
    argv: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    pytest_paths: list | None = None  # a pytest command: the paths it names
    files: dict = field(default_factory=dict)  # written in the working directory first


def this_machine() -> str:
    """A name for this machine in an MPICH host file: its host name if that resolves."""
    name = socket.gethostname()
    try:
        socket.gethostbyname(name)
        return name
    except OSError:
        return "localhost"


def plan(cmd: Command, cache: Path) -> Plan:
    text = cmd.text
    if text.startswith(QUICK_START_INSTALL):
        # README quick start: the venv and install are this test's environment already.
        text = text[len(QUICK_START_INSTALL) :].replace(".venv/bin/", "")
    words = shlex.split(text, comments=True)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    prefix, files = [], {}
    if words and words[0] == "mpirun" and "python" in words:
        options, words = words[1 : words.index("python")], words[words.index("python") :]
        opts = dict(zip(options[::2], options[1::2]))
        assert len(options) % 2 == 0 and "-n" in opts and set(opts) <= {"-n", "-f"}, (
            f"{cmd.doc}:{cmd.line}: mpirun takes `-n N` and optionally `-f HOSTS` here: "
            f"{cmd.text!r}"
        )
        prefix = [mpirun_path()] + options
        if "-f" in opts:  # a host file listing only this machine
            files[opts["-f"]] = f"{this_machine()}:{opts['-n']}\n"
    assert words and words[0] == "python", (
        f"{cmd.doc}:{cmd.line}: a command must be `python …` or `mpirun [-f HOSTS] -n N "
        f"python …` (optionally after VAR=value): {cmd.text!r}"
    )
    if words[1:3] == ["-m", "pytest"]:
        paths, rest = [], iter(words[3:])
        for w in rest:
            if w in ("-m", "-k", "-p", "--timeout", "--durations"):  # options that take a value
                next(rest, None)
            elif not w.startswith("-"):
                paths.append(w.split("::")[0])
        return Plan(pytest_paths=paths)
    script = words[1]
    assert script in SMALL, (
        f"{cmd.doc}:{cmd.line}: no small settings for {script}; add it to "
        f"SMALL in tests/test_docs.py"
    )
    cheap, size = SMALL[script]
    extra = cheap + ([] if "--device-memory" in words else size)
    extra += [w for flag, value in IF_SET.items() if flag in words for w in (flag, value)]
    extra = [w.replace("{cache}", str(cache)) for w in extra]
    # a reader's absolute path (a shared file system) → the same path under the working dir
    args = ["." + w if w.startswith("/") else w for w in words[2:]]
    argv = prefix + [sys.executable, str(ROOT / script)] + args + extra
    return Plan(argv=argv, env=env, files=files)


@dataclass
class Result:
    cmd: Command
    argv: list
    returncode: int
    output: str
    seconds: float

    def ok(self) -> bool:
        if self.cmd.fails is not None:
            return self.returncode != 0 and self.cmd.fails.lower() in self.output.lower()
        return self.returncode == 0

    def describe(self) -> str:
        want = f"a failure mentioning {self.cmd.fails!r}" if self.cmd.fails else "exit 0"
        tail = "\n".join(self.output.splitlines()[-60:])
        return (
            f"{self.cmd.doc}:{self.cmd.line}: {self.cmd.text}\n$ {' '.join(self.argv)}\n"
            f"wanted {want}; got exit {self.returncode} after {self.seconds:.1f} s\n{tail}"
        )


def run_file(path: Path, workdir: Path, cache: Path) -> list[Result]:
    """Run the file's commands in order in `workdir`; stop at the first that goes wrong."""
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for cmd in commands_in(path):
        p = plan(cmd, cache)
        if p.pytest_paths is not None:
            missing = [q for q in p.pytest_paths if not (ROOT / q).exists()]
            results.append(
                Result(
                    cmd,
                    ["(pytest: checked, not re-run)"],
                    1 if missing else 0,
                    f"missing test files: {missing}" if missing else "",
                    0.0,
                )
            )
            continue
        for name, content in p.files.items():
            (workdir / name).write_text(content)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SIM_TIMEOUT": "120",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **p.env,
        }
        start = time.monotonic()
        try:
            proc = subprocess.run(
                p.argv,
                cwd=workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=TIMEOUT,
            )
            rc, out = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as e:
            rc, out = -9, f"timed out after {TIMEOUT} s\n{e.stdout or ''}"
        results.append(Result(cmd, p.argv, rc, out, time.monotonic() - start))
        if not results[-1].ok():
            break
    return results


# ---- the tests ------------------------------------------------------------------------------


def test_there_is_a_book():
    names = {p.name for p in DOC_FILES}
    assert "README.md" in names and len(DOC_FILES) >= 15, sorted(names)
    toc = (ROOT / "docs" / "README.md").read_text()
    for p in DOC_FILES[1:]:
        if p.name != "README.md":
            assert f"]({p.name})" in toc, f"docs/README.md does not list {p.name}"


def test_readme_quick_start_is_what_ci_runs():
    cmds = fenced_commands(ROOT / "README.md")
    train, tests = cmds[0].text, cmds[1].text
    assert train.startswith(QUICK_START_INSTALL) and tests.startswith(QUICK_START_INSTALL)
    assert train.endswith("mpirun -n 4 .venv/bin/python examples/train_zero.py"), train
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines, f".ci/run does not run the README's test command:\n{tests}"


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_relative_links_point_to_files(path):
    text = path.read_text()
    inside = set()
    for b in fenced_blocks(text):  # links inside code are not links
        inside.update(range(b.line, b.end + 1))
    text = "\n".join(ln for i, ln in enumerate(text.splitlines(), 1) if i not in inside)
    text = re.sub(r"(`+).*?\1", "", text)  # nor inside inline code
    broken = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#")[0]
        if not (path.parent / file).exists():
            broken.append(target)
    assert not broken, f"{rel(path)}: links to missing files: {broken}"


def test_readme_experiments_are_run_by_some_chapter():
    """The README lists experiments as inline code; each must be a command a chapter runs
    (word for word, possibly followed by more flags)."""
    readme = (ROOT / "README.md").read_text()
    listed = re.findall(r"^\|\s*`((?:mpirun -n \d+ )?python [^`]+)`", readme, flags=re.MULTILINE)
    assert listed, "no experiments table in README.md"
    run = [c.text.split() for p in DOC_FILES[1:] for c in commands_in(p)]
    # a chapter may add flags (e.g. --report PATH) after the command the README lists
    missing = [c for c in listed if not any(r[: len(c.split())] == c.split() for r in run)]
    assert not missing, (
        f"README experiments that no chapter runs (add them to a ```bash block): {missing}"
    )


@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_python_blocks_run_and_print_what_the_book_shows(path):
    text = path.read_text()
    blocks = fenced_blocks(text)
    followers = block_followers(text, blocks)
    namespace = {"__name__": "__docs__"}
    for block, nxt in zip(blocks, followers):
        if block.lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block.body, f"{rel(path)}:{block.line}", "exec"), namespace)
        if nxt is not None and nxt.lang == "text":
            got = [ln.rstrip() for ln in out.getvalue().rstrip("\n").splitlines()]
            want = [ln.rstrip() for ln in nxt.body.rstrip("\n").splitlines()]
            assert got == want, (
                f"{rel(path)}:{block.line}: the python block printed\n"
                + "\n".join(got)
                + "\nbut the book shows\n"
                + "\n".join(want)
            )


@pytest.fixture(scope="module")
def command_runs(tmp_path_factory):
    """Every file's commands, files concurrently; → {path relative to the root: [Result]}."""
    from tinyllm.data import standard_special_tokens

    sys.path.insert(0, str(ROOT / "examples"))
    from common import prepare_text_data  # examples/common.py: the examples' data cache

    tmp = tmp_path_factory.mktemp("docs")
    cache = tmp / "cache"
    # the two tokenizers of the small settings, built once here instead of racing in processes
    prepare_text_data(None, CACHE_VOCABS[0], int(DATA_BYTES), cache, log=lambda *_: None)
    prepare_text_data(
        None,
        CACHE_VOCABS[1],
        int(DATA_BYTES),
        cache,
        special_tokens=standard_special_tokens(),
        log=lambda *_: None,
    )
    # the longest files first, so that the pool is not left waiting for one at the end
    files = sorted(DOC_FILES, key=lambda p: -sum("mpirun" in c.text for c in commands_in(p)))
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {
            rel(p): pool.submit(run_file, p, tmp / rel(p).replace("/", "_"), cache) for p in files
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_commands_exit_as_the_book_says(command_runs, path):
    results = command_runs[rel(path)]
    bad = [r for r in results if not r.ok()]
    assert not bad, bad[0].describe()
    assert len(results) == len(commands_in(path))


def test_figure_tool_draws_points_where_they_belong():
    """docs/figures.py's text chart: the first point of a rising curve in the bottom-left
    cell, the last in the top-right; curves are found wherever a report nests them."""
    sys.path.insert(0, str(ROOT / "docs"))
    import figures

    report = {"losses": [1.0, 3.0], "scratch": {"losses": [2.0, 2.5], "val_losses": [[1, 2.2]]}}
    names = [name for name, _, _ in figures.find_curves(report)]
    assert names == ["train", "scratch/train", "scratch/val"]
    rows = figures.text_chart([("up", [0, 10], [1.0, 3.0])], width=20, height=5).splitlines()
    grid = [row.split("|", 1)[1] for row in rows[:5]]
    assert grid[0][-1] == "*" and grid[-1][0] == "*"
    assert sum(row.count("*") for row in grid) == 2
    assert figures.event_mark("F3") == "3" and figures.event_mark("B1") == "b"
