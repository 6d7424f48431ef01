"""Every example refuses every bad flag up front: exit status 2, one line naming the flag, no
traceback, and no work done.

Each case runs the script as a user does — a fresh `python examples/<script> <flags>` — in an
empty working directory with a fresh, empty numba cache. "No work done" is then observable
without any clock: nothing was printed on stdout (every script reports its data and model
there before training), nothing was written in the working directory (the data cache, the
checkpoint, the report all go there by default), and no numba kernel was compiled (the fresh
cache directory holds no file). The cases run a few at a time, each with a short timeout.

Under mpirun the same check runs on every rank before any collective, so a bad flag stops all
ranks with status 2 together: the test runs `mpirun -n 2` and counts the two error lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mpi_helpers import run_mpi

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 60  # seconds; a refused flag takes about one interpreter start-up

TRAINING = [
    "train_gpt.py",
    "train_zero.py",
    "train_ddp.py",
    "train_3d.py",
    "train_bert.py",
    "train_t5.py",
    "finetune.py",
    "mixed_precision.py",
    "quantize.py",
]
OTHERS = [
    "generate.py",
    "chat.py",
    "sft.py",
    "scaling.py",
    "memory_table.py",
    "precision_table.py",
    "test_time_scaling.py",
    "word2vec.py",
    "rnn_vs_gpt.py",
    "translate.py",
    "icl.py",
]
# flags these scripts need to get as far as the flag under test (argparse: the last one wins)
BASE = {
    "generate.py": ["--checkpoint", "{ckpt}"],
    "finetune.py": ["--checkpoint", "{ckpt}"],
    "chat.py": ["--checkpoint", "{ckpt}"],
}

# The bad flags of the issue, for every training example: (flags, the flag the error names).
ISSUE = [
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--grad-clip", "-1"], "--grad-clip"),
    (["--eval-interval", "0"], "--eval-interval"),
    (["--log-interval", "0"], "--log-interval"),
    (["--data", "{dir}"], "--data"),
    (["--data", os.devnull], "--data"),
    (["--report", "/proc/tinyllm/report.json"], "--report"),
]

SPECIFIC = {
    "train_gpt.py": [  # the shared flags, all of them, on the reference script
        (["--lr", "0"], "--lr"),
        (["--lr", "-3e-3"], "--lr"),
        (["--lr", "fast"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--steps", "1.5"], "--steps"),
        (["--batch-size", "0"], "--batch-size"),
        (["--eval-iters", "0"], "--eval-iters"),
        (["--data-bytes", "0"], "--data-bytes"),
        (["--warmup", "-1"], "--warmup"),
        (["--seed", "-1"], "--seed"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--weight-decay", "nan"], "--weight-decay"),
        (["--grad-clip", "nan"], "--grad-clip"),
        (["--data", "{empty}"], "--data"),
        (["--data", "{binary}"], "--data"),
        (["--data", "{missing}"], "--data"),
        (["--report", "{dir}"], "--report"),
        (["--report", "{file}/report.json"], "--report"),
        (["--cache-dir", "{file}"], "--cache-dir"),
        (["--checkpoint", "{dir}"], "--checkpoint"),
        (["--checkpoint", "/proc/tinyllm.ckpt.npz"], "--checkpoint"),
        (["--resume", "--checkpoint", "{missing}"], "--resume"),
        (["--stop-at", "0"], "--stop-at"),
        (["--sample-tokens", "-1"], "--sample-tokens"),
        (["--n-layer", "0"], "--n-layer"),
        (["--n-embd", "30"], "--n-embd"),
        (["--vocab-size", "100"], "--vocab-size"),
        (["--dropout", "1"], "--dropout"),
    ],
    "train_zero.py": [
        (["--accum-steps", "0"], "--accum-steps"),
        (["--batch-size", "3", "--accum-steps", "2"], "--batch-size"),
        (["--stage", "0", "--offload", "optimizer"], "--offload"),
        (["--stage", "2", "--prefetch"], "--prefetch"),
        (["--naive-ddp"], "--naive-ddp"),
        (["--sharding-factor", "2"], "--sharding-factor"),
        (["--sharding-factor", "0"], "--sharding-factor"),
        (["--bucket-mb", "0"], "--bucket-mb"),
        (["--device-memory", "0"], "--device-memory"),
        (["--device-memory", "lots"], "--device-memory"),
        (["--profile", "TPU-v9"], "--profile"),
        (["--compare-steps", "0"], "--compare-steps"),
        (["--checkpoint-dir", "{file}"], "--checkpoint-dir"),
        (["--resume", "--checkpoint-dir", "{dir}"], "--resume"),
        (["--stop-at", "-1"], "--stop-at"),
    ],
    "train_ddp.py": [
        (["--accum-steps", "0"], "--accum-steps"),
        (["--offload", "optimizer"], "--offload"),
    ],
    "train_3d.py": [
        (["--tp", "2"], "--tp"),
        (["--dp", "0"], "--dp"),
        (["--pp", "0"], "--pp"),
        (["--micro-batches", "0"], "--micro-batches"),
        (["--micro-batches", "3"], "--micro-batches"),
        (["--device-memory", "0"], "--device-memory"),
        (["--profile", "TPU-v9"], "--profile"),
    ],
    "train_bert.py": [
        (["--cls-len", "100"], "--cls-len"),
        (["--cls-len", "2"], "--cls-len"),
        (["--cls-lr", "nan"], "--cls-lr"),
        (["--cls-batch-size", "0"], "--cls-batch-size"),
        (["--cls-steps", "-1"], "--cls-steps"),
        (["--cls-eval-per-class", "0"], "--cls-eval-per-class"),
        (["--vocab-size", "300"], "--vocab-size"),
        (["--checkpoint", "{dir}"], "--checkpoint"),
    ],
    "train_t5.py": [
        (["--noise-density", "0"], "--noise-density"),
        (["--noise-density", "1"], "--noise-density"),
        (["--mean-span", "0"], "--mean-span"),
        (["--ft-lr", "inf"], "--ft-lr"),
        (["--ft-batch-size", "0"], "--ft-batch-size"),
        (["--ft-target-len", "64"], "--ft-target-len"),
        (["--ft-input-len", "65"], "--ft-input-len"),
        (["--n-decoder-layer", "0"], "--n-decoder-layer"),
        (["--vocab-size", "300"], "--vocab-size"),
    ],
    "finetune.py": [
        (["--domain", "no_such_package"], "--domain"),
        (["--domain", ","], "--domain"),
        (["--checkpoint", "{missing}"], "--checkpoint"),
        (["--checkpoint", "{dir}"], "--checkpoint"),
        (["--checkpoint", os.devnull], "--checkpoint"),
        (["--out-checkpoint", "{dir}"], "--out-checkpoint"),
        (["--out-checkpoint", "/proc/tinyllm.ckpt.npz"], "--out-checkpoint"),
        (["--pretrain-data", "{binary}"], "--pretrain-data"),
        (["--pretrain-data-bytes", "0"], "--pretrain-data-bytes"),
        (["--tokenizer", "{binary}"], "--tokenizer"),
    ],
    "mixed_precision.py": [
        (["--formats", "fp8"], "--formats"),
        (["--formats", ","], "--formats"),
        (["--seeds", "0"], "--seeds"),
        (["--init-scale", "inf"], "--init-scale"),
    ],
    "quantize.py": [
        (["--qat-bits", "1"], "--qat-bits"),
        (["--qat-bits", "9"], "--qat-bits"),
        (["--qat-lr", "nan"], "--qat-lr"),
        (["--qat-steps", "0"], "--qat-steps"),
        (["--threshold", "0"], "--threshold"),
        (["--eval-batches", "0"], "--eval-batches"),
        (["--save", "{dir}"], "--save"),
        (["--checkpoint", "{missing}"], "--checkpoint"),
        (["--checkpoint", "{dir}"], "--checkpoint"),
    ],
    "generate.py": [
        (["--max-new-tokens", "-1"], "--max-new-tokens"),
        (["--temperature", "0"], "--temperature"),
        (["--temperature", "nan"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
        (["--top-p", "0"], "--top-p"),
        (["--top-p", "1.5"], "--top-p"),
        (["--repetition-penalty", "0"], "--repetition-penalty"),
        (["--seed", "-1"], "--seed"),
        (["--checkpoint", "{missing}"], "--checkpoint"),
        (["--checkpoint", "{empty}"], "--checkpoint"),
        (["--checkpoint", os.devnull], "--checkpoint"),
        (["--report", "{dir}"], "--report"),
        (["--report", "/proc/tinyllm/report.json"], "--report"),
        (["--data", "{dir}"], "--data"),
        (["--data", os.devnull], "--data"),
        (["--data-bytes", "0"], "--data-bytes"),
        (["--tokenizer", "{empty}"], "--tokenizer"),
        (["--cache-dir", "{file}"], "--cache-dir"),
    ],
    "chat.py": [
        (["--max-new-tokens", "0"], "--max-new-tokens"),
        (["--temperature", "-1"], "--temperature"),
        (["--top-k", "0"], "--top-k"),
        (["--top-p", "1.5"], "--top-p"),
        (["--seed", "-1"], "--seed"),
        (["--checkpoint", "{missing}"], "--checkpoint"),
        (["--checkpoint", "{dir}"], "--checkpoint"),
    ],
    "sft.py": [
        (["--opinions", "2"], "--opinions"),
        (["--keys", "0"], "--keys"),
        (["--lora-rank", "0"], "--lora-rank"),
        (["--lora-alpha", "nan"], "--lora-alpha"),
        (["--lora-dropout", "1"], "--lora-dropout"),
        (["--lora-targets", "attn.q_proj"], "--lora-targets"),
        (["--lr", "inf"], "--lr"),
        (["--steps", "0"], "--steps"),
        (["--n-embd", "30"], "--n-embd"),
        (["--vocab-size", "259"], "--vocab-size"),
        (["--checkpoint", "{dir}"], "--checkpoint"),
        (["--report", "/proc/tinyllm/report.json"], "--report"),
    ],
    "scaling.py": [
        (["--min-exp", "20", "--max-exp", "18"], "--min-exp"),
        (["--min-exp", "-1"], "--min-exp"),
        (["--budgets", "1e10,x"], "--budgets"),
        (["--sweep", "--budgets", "1e10"], "--budgets"),
        (["--sweep-lr", "nan"], "--sweep-lr"),
        (["--sweep-out", "{dir}"], "--sweep-out"),
        (["--sweep-out", "/proc/tinyllm.csv"], "--sweep-out"),
        (["--data", os.devnull], "--data"),
        (["--data-bytes", "0"], "--data-bytes"),
        (["--cache-dir", "{file}"], "--cache-dir"),
    ],
    "memory_table.py": [
        (["--psi", "nan"], "--psi"),
        (["--psi", "0"], "--psi"),
        (["--devices", "0"], "--devices"),
        (["--rule-params", "inf"], "--rule-params"),
        (["--precision", "fp8"], "--precision"),
    ],
    "precision_table.py": [
        (["--n-params", "-1"], "--n-params"),
        (["--n-params", "nan"], "--n-params"),
    ],
    "test_time_scaling.py": [
        (["--samples", "48"], "--samples"),
        (["--samples", "0"], "--samples"),
        (["--max-digits", "0"], "--max-digits"),
        (["--max-digits", "3", "--scaling-digits", "4"], "--scaling-digits"),
        (["--temperature", "0"], "--temperature"),
        (["--lr", "nan"], "--lr"),
        (["--grad-clip", "-1"], "--grad-clip"),
        (["--n-embd", "30"], "--n-embd"),
        (["--eval-per-digit", "0"], "--eval-per-digit"),
        (["--report", "{dir}"], "--report"),
        (["--checkpoint", "/proc/tinyllm.ckpt.npz"], "--checkpoint"),
    ],
    "rnn_vs_gpt.py": [
        (["--steps", "0"], "--steps"),
        (["--lr", "nan"], "--lr"),
        (["--lengths", "32,0"], "--lengths"),
        (["--clip-lr", "-1"], "--clip-lr"),
        (["--max-norm", "inf"], "--max-norm"),
        (["--data-bytes", "0"], "--data-bytes"),
    ],
    "translate.py": [
        (["--steps", "0"], "--steps"),
        (["--lr", "inf"], "--lr"),
        (["--models", "seq2seq,lstm"], "--models"),
        (["--n-embd", "30"], "--n-embd"),
        (["--eval-sentences", "0"], "--eval-sentences"),
    ],
    "word2vec.py": [
        (["--sentences", "0"], "--sentences"),
        (["--window", "0"], "--window"),
        (["--negative", "-1"], "--negative"),
        (["--alpha", "nan"], "--alpha"),
        (["--sample", "-1e-3"], "--sample"),
        (["--curve", "10,x"], "--curve"),
        (["--stdlib-bytes", "0"], "--stdlib-bytes"),
        (["--report", "{dir}"], "--report"),
    ],
    "icl.py": [
        (["--sizes", "huge"], "--sizes"),
        (["--steps", "0"], "--steps"),
        (["--subst-weight", "0"], "--subst-weight"),
        (["--block-size", "8"], "--block-size"),
        (["--tokens", "bytes"], "--tokens"),
        (["--finetune-lr", "nan"], "--finetune-lr"),
        (["--eval-examples", "0"], "--eval-examples"),
        (["--report", "{dir}"], "--report"),
    ],
}

CASES = [(s, args, flag) for s in TRAINING for args, flag in ISSUE] + [
    (s, args, flag) for s, cases in SPECIFIC.items() for args, flag in cases
]
CASE_IDS = [f"{s}:{' '.join(args)}" for s, args, _ in CASES]
SCRIPTS = TRAINING + OTHERS
# The fast suite runs the issue's list on train_gpt and one case of every script; the rest of
# the matrix (the same checks, the same shared code) runs with the slow tests.
FAST = {f"train_gpt.py:{' '.join(args)}" for args, _ in ISSUE} | {
    next(i for i in CASE_IDS if i.startswith(s + ":")) for s in SCRIPTS
}
CASE_PARAMS = [pytest.param(i, id=i, marks=() if i in FAST else pytest.mark.slow) for i in CASE_IDS]


def fixture_files(root: Path) -> dict:
    """The paths the bad flags point at: a directory, an empty file, a binary file, a regular
    file (to put a path under), a missing file, and a dummy (non-empty) checkpoint."""
    root.mkdir()
    (root / "empty.txt").write_bytes(b"")
    (root / "weights.bin").write_bytes(b"\x93NUMPY\x01\x00v\x00binary\x00data")
    (root / "a_file").write_text("not a directory\n")
    (root / "model.ckpt.npz").write_bytes(b"PK\x03\x04 a checkpoint is checked when loaded")
    return {
        "dir": str(root),
        "empty": str(root / "empty.txt"),
        "binary": str(root / "weights.bin"),
        "file": str(root / "a_file"),
        "missing": str(root / "missing.txt"),
        "ckpt": str(root / "model.ckpt.npz"),
    }


def run_script(script: str, args: list, workdir: Path) -> dict:
    """Run examples/<script> in `workdir` with a fresh numba cache beside it."""
    workdir.mkdir()
    numba_cache = workdir.parent / (workdir.name + "-numba")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return {
        "code": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "written": sorted(p.name for p in workdir.iterdir()),
        "numba_compiled": [str(p) for p in numba_cache.rglob("*") if p.is_file()],
    }


@pytest.fixture(scope="module")
def results(request, tmp_path_factory):
    """Run the selected cases (and `--help` of every script), three processes at a time."""
    tmp = tmp_path_factory.mktemp("bad_flags")
    paths = fixture_files(tmp / "fixtures")
    wanted = {  # the cases this session selected (all of them, unless -k picked some)
        item.callspec.params.get("case")
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    jobs = {}
    for i, (script, args, _) in enumerate(CASES):
        if CASE_IDS[i] in wanted:
            argv = [a.format(**paths) for a in BASE.get(script, []) + args]
            jobs[CASE_IDS[i]] = (script, argv, tmp / f"case{i}")
    for script in SCRIPTS:
        if f"help:{script}" in wanted:
            jobs[f"help:{script}"] = (script, ["--help"], tmp / f"help-{script}")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {k: pool.submit(run_script, *job) for k, job in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_bad_flag_is_a_usage_error_before_any_work(case, results):
    script, args, flag = CASES[CASE_IDS.index(case)]
    r = results[case]
    shown = f"exit {r['code']}\n--- stdout\n{r['stdout']}\n--- stderr\n{r['stderr']}"
    assert r["code"] == 2, shown
    assert "Traceback" not in r["stderr"], shown
    errors = [ln for ln in r["stderr"].splitlines() if ln.startswith(f"{script}: error: ")]
    assert len(errors) == 1, shown
    assert flag in errors[0], shown
    assert len(r["stderr"].splitlines()) == 2, shown  # the short usage line, then the error
    assert r["stdout"] == "", shown  # no data loaded, no model built
    assert r["written"] == [], shown  # no cache, checkpoint or report written
    assert not r["numba_compiled"], shown  # no kernel compiled


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(f"help:{s}", id=s, marks=() if s == "train_zero.py" else pytest.mark.slow)
        for s in SCRIPTS
    ],
)
def test_help_shows_defaults(case, results):
    r = results[case]
    assert r["code"] == 0, r["stderr"]
    assert "(default: " in r["stdout"], r["stdout"]
    assert r["written"] == [] and not r["numba_compiled"]


def test_every_flag_has_help_that_states_its_default():
    """Every flag of every example has a help text, and `--help` states its default: argparse
    appends "(default: …)", or the text says it in words (defaults of None), or the flag is an
    on/off switch."""
    code = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(EXAMPLES)!r})\n"
        "rows = []\n"
        f"for name in {[s[:-3] for s in SCRIPTS if s != 'train_ddp.py']!r}:\n"
        "    p = importlib.import_module(name).build_parser()\n"
        "    fmt = p._get_formatter()\n"
        "    for a in p._actions:\n"
        "        if a.dest == 'help':\n"
        "            continue\n"
        "        rows.append([name, a.option_strings[0], a.help or '',\n"
        "                     fmt._get_help_string(a) or '', a.nargs == 0])\n"
        "print(json.dumps(rows))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, check=True
    ).stdout
    rows = json.loads(out)
    assert len({r[0] for r in rows}) == len(SCRIPTS) - 1  # train_ddp is train_zero's parser
    missing = [f"{name} {flag}" for name, flag, text, _, _ in rows if not text.strip()]
    assert missing == [], f"flags without help: {missing}"
    silent = [
        f"{name} {flag}: {shown!r}"
        for name, flag, _, shown, switch in rows
        if not switch and "default" not in shown
    ]
    assert silent == [], f"flags whose --help does not state the default: {silent}"


@pytest.mark.mpi
@pytest.mark.parametrize(
    "script,args,flag",
    [
        ("train_zero.py", ["--lr", "nan"], "--lr"),  # a type function
        ("train_3d.py", ["--batch-size", "3"], "--batch-size"),  # a check that needs the world
    ],
)
def test_bad_flag_stops_every_rank_with_status_2(script, args, flag, tmp_path):
    r = run_mpi(EXAMPLES / script, 2, args, timeout=TIMEOUT, check=False)
    assert r.returncode == 2, r.describe()
    assert "Traceback" not in r.stderr and "Abort" not in r.stderr, r.describe()
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith(f"{script}: error: ")]
    assert len(errors) == 2 and all(flag in e for e in errors), r.describe()  # one per rank
    assert r.stdout == "", r.describe()
