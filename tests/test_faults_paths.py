"""Fault class 3 (issue 26): paths. Every command takes inputs and writes outputs whose names hold a leading dash,
a space, non-ASCII letters, a newline and are as long as a name may be (255 bytes with the longest suffix), run
through the console entry point (`python -m mmcot_cli`) under LC_ALL=C — and under LC_ALL=C with PYTHONUTF8=0,
where Python's file-name encoding is ASCII and the command restarts itself in UTF-8 mode. Writers' sibling files
(temporary files, locks, a swapped-out folder) get a shortened name where `.NAME.XXXXXXXX.tmp` would pass the
limit; error lines show such names with the newline escaped, in full; a file name taken for an option gets a hint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import TINY_TEXT, World, assert_one_error, leftovers, release_features

# "- é✓\n" is 8 bytes in UTF-8; the longest suffix below is "preds.jsonl": that name is 255 bytes, NAME_MAX.
ODD = "- é✓\n" + "x" * (255 - 8 - len("preds.jsonl"))
C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
ASCII_NAMES = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}  # file names as ASCII
LOCALES = {"C": C_LOCALE, "C-PYTHONUTF8=0": ASCII_NAMES}


def odd(suffix: str) -> str:
    return ODD + suffix


def run(cwd: Path, *args, env=ASCII_NAMES, code: int = 0) -> subprocess.CompletedProcess:
    """`python -m mmcot_cli ARGS` in `cwd` (odd names are given relative: the dash leads), exit `code` checked."""
    proc = subprocess.run([sys.executable, "-m", "mmcot_cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, errors="backslashreplace", env={**os.environ, **env}, timeout=600)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, f"{args[:3]}: exit {proc.returncode}\n{proc.stderr}"
    return proc


def housekeeping_left(folder: Path) -> list[str]:
    """Temporary files, swapped-out folders or stale locks a command left in `folder` (not inside outputs)."""
    return [n for n in os.listdir(folder) if n.startswith(".") and (n.endswith((".tmp", ".old")) or "lock" in n)]


@pytest.fixture(scope="module")
def odd_world(tmp_path_factory) -> World:
    """The faults world built under odd names through the console entry point under LC_ALL=C: demo
    --generate-only, prepare, extract and train each meet them (as inputs and as outputs)."""
    root = tmp_path_factory.mktemp("odd-paths")
    run(root, "-q", "demo", "--generate-only", "--tiny", "--out", odd("bench"), env=C_LOCALE)
    run(root, "-q", "prepare", "--out", odd("data"), "--", odd("bench"), env=C_LOCALE)
    run(root, "-q", "extract", "-b", "patches", "--data", odd("data"), "--split", "train,val,test", "--out",
        odd("feats"), "--workers", "0", "--chunk-size", "8", env=C_LOCALE)
    run(root, "-q", "train", *TRAIN, "--data", odd("data"), "--out", odd("run"), "--features", odd("feats"),
        env=C_LOCALE)
    return World(root, root / odd("bench"), root / odd("data"), root / odd("feats"), root / odd("run"))


TRAIN = ["--stage", "answer", "--prompt-format", "QCM-A", "--text-model", "t5-scratch", "--epochs", "1",
         "--batch-size", "8", "--limit-train", "8", "--val-split", "none", "--save-every", "1", *TINY_TEXT]


def test_names_fit_the_limit():
    assert len(os.fsencode(odd("preds.jsonl"))) == 255


def test_demo_prepare_extract_train_write_odd_names(odd_world):
    w = odd_world
    assert (w.data / "manifest.json").is_file() and (w.run / "run_config.json").is_file()
    assert json.loads((w.data / "manifest.json").read_text(encoding="utf-8"))
    assert (w.feats / "index.json").is_file() or any(w.feats.iterdir())
    assert housekeeping_left(w.root) == [] and leftovers(w.root) == []


def test_prepare_extract_read_odd_image_names_under_ascii_locale(tmp_path):
    """Image paths inside the data (a JSONL source's image fields) with the same odd names: under an ASCII
    file-name encoding Python could not even open them; prepare and extract read them as UTF-8."""
    from PIL import Image

    src = tmp_path / "src"
    (src / "imgs").mkdir(parents=True)
    rows = []
    for i in range(4):
        name = f"{ODD[:40]}{i}.png"
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(src / "imgs" / name)
        rows.append({"id": f"q{i}", "split": "train", "question": "Which?", "choices": ["a", "b"], "answer": 0,
                     "image": f"imgs/{name}"})
    (src / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run(tmp_path, "-q", "prepare", "--format", "jsonl", "--out", odd("data"), "--", src / "d.jsonl")
    run(tmp_path, "-q", "extract", "-b", "patches", "--data", odd("data"), "--split", "train", "--out",
        odd("feats"), "--workers", "0")
    assert (tmp_path / odd("feats")).is_dir() and housekeeping_left(tmp_path) == []


def test_train_resume_on_odd_names(odd_world, tmp_path):
    import shutil

    shutil.copytree(odd_world.run, tmp_path / odd("run"))
    at = tmp_path / odd("run")  # the inputs as the run was given them (relative to the world's folder)
    run(odd_world.root, "-q", "train", "--resume", *TRAIN, "--data", odd("data"), "--out", at, "--features",
        odd("feats"), "--epochs", "2")
    config = json.loads((tmp_path / odd("run") / "run_config.json").read_text(encoding="utf-8"))
    assert config["train_config"]["epochs"] == 2 and housekeeping_left(tmp_path) == []


def test_generate_into_the_run_and_to_an_odd_out(odd_world, tmp_path):
    import shutil

    shutil.copytree(odd_world.run, tmp_path / odd("run"))
    common = ["--data", odd_world.data, "--split", "test", "--features", odd_world.feats]
    run(tmp_path, "-q", "generate", "--run", odd("run"), *common)
    run(tmp_path, "-q", "generate", "--run", odd("run"), *common, "--out", odd("preds.jsonl"))
    assert (tmp_path / odd("run") / "preds-test.jsonl").read_text(encoding="utf-8") \
        == (tmp_path / odd("preds.jsonl")).read_text(encoding="utf-8")
    assert housekeeping_left(tmp_path) == [] and housekeeping_left(tmp_path / odd("run")) == []


@pytest.fixture(scope="module")
def odd_preds(odd_world) -> Path:
    """The run's test predictions (preds-test.jsonl in the run), also under an odd file name beside the run."""
    import shutil

    run(odd_world.root, "-q", "generate", "--run", odd("run"), "--data", odd("data"), "--split", "test",
        "--features", odd("feats"), env=C_LOCALE)
    shutil.copyfile(odd_world.run / "preds-test.jsonl", odd_world.root / odd("preds.jsonl"))
    return odd_world.root / odd("preds.jsonl")


@pytest.mark.parametrize("locale", LOCALES)
def test_score_and_compare_read_odd_names(odd_world, odd_preds, locale):
    score = run(odd_world.root, "score", "--data", odd("data"), "--json", "--", odd("preds.jsonl"),
                env=LOCALES[locale])
    obj = json.loads(score.stdout)
    assert obj["predictions"].endswith(odd("preds.jsonl")) and obj["acc_average"] is not None
    table = run(odd_world.root, "compare", "--data", odd("data"), "--json", "--", odd("run"), odd("preds.jsonl"),
                env=LOCALES[locale])
    rows = json.loads(table.stdout)["rows"]
    assert len(rows) == 2 and rows[0]["values"] == rows[1]["values"]


@pytest.mark.parametrize("locale", LOCALES)
def test_prompts_read_an_odd_data_dir(odd_world, locale):
    out = run(odd_world.root, "prompts", "--split", "test", "--", odd("data"), env=LOCALES[locale]).stdout
    assert len([line for line in out.splitlines() if line.strip()]) == 12


def test_report_writes_an_odd_out(odd_world, odd_preds, tmp_path):
    run(tmp_path, "-q", "report", "--data", odd_world.data, "--out", odd("report.html"), "--", odd_world.run,
        odd_preds)
    assert (tmp_path / odd("report.html")).read_text(encoding="utf-8").startswith("<!")
    assert housekeeping_left(tmp_path) == []


@pytest.mark.parametrize("sub", ["import", "filter"])
def test_rationales_read_and_write_odd_names(odd_world, odd_preds, tmp_path, sub):
    run(tmp_path, "-q", "rationales", sub, "--data", odd_world.data, "--split", "test", "--out", odd("s.jsonl"),
        "--", odd_preds)
    assert (tmp_path / odd("s.jsonl")).is_file() and housekeeping_left(tmp_path) == []


def test_ask_reads_odd_runs_and_image(odd_world, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), (9, 9, 9)).save(tmp_path / odd("i.png"))
    out = run(tmp_path, "ask", "--rationale-run", odd_world.run, "--answer-run", odd_world.run, "--question",
              "Which?", "--choices", "a|b", "--image", odd("i.png"), "--device", "cpu", "--json").stdout
    answer = json.loads(out)
    assert answer["answer_letter"] in ("A", "B") and answer["image"].endswith(odd("i.png"))
    assert answer["answer_run"]["path"] == str(odd_world.run)


def test_extract_shards_and_merge_on_odd_names(odd_world, tmp_path):
    ext = ["-q", "extract", "-b", "patches", "--data", odd_world.data, "--split", "train,val,test", "--out",
           odd("feats"), "--workers", "0", "--chunk-size", "8"]
    run(tmp_path, *ext, "--shard", "0/2")
    run(tmp_path, *ext, "--shard", "1/2")
    run(tmp_path, "-q", "extract", "--merge", odd("feats"))
    assert housekeeping_left(tmp_path) == [] and leftovers(tmp_path) == []
    run(tmp_path, "-q", "generate", "--run", odd_world.run, "--data", odd_world.data, "--split", "test",
        "--features", odd("feats"), "--out", "p.jsonl")


def test_import_features_and_import_run_on_odd_names(odd_world, tmp_path):
    from t5_layouts import make_t5_dir

    npy, name_map = release_features(odd_world, tmp_path / odd("rel"))
    run(tmp_path, "-q", "import-features", "--name-map", name_map, "--data", odd_world.data, "--backbone",
        "patches", "--out", odd("feats"), "--", npy)
    ckpt = make_t5_dir(tmp_path / odd("ckpt"), tokenizer="spiece", weights="bin", tied=True)
    run(tmp_path, "-q", "import-run", "--stage", "answer", "--out", odd("run"), "--", ckpt.name)
    assert (tmp_path / odd("run") / "run_config.json").is_file()
    assert housekeeping_left(tmp_path) == [] and leftovers(tmp_path) == []


@pytest.mark.parametrize("locale", LOCALES)
def test_errors_show_odd_names_whole_on_one_line(odd_world, tmp_path, locale):
    """A missing file under an odd name: one line with the newline escaped and the whole name (not cut at the
    error line's usual length); an odd name given where an option is expected: a hint to write ./NAME or --."""
    missing = odd("gone.jsonl")
    res = run(tmp_path, "score", "--data", odd_world.data, "--", missing, env=LOCALES[locale], code=1)
    shown = missing.replace("\n", "\\n")
    assert_one_error(res, 1, shown, "not found")
    (tmp_path / "-preds.jsonl").write_text("")
    res = run(tmp_path, "score", "-preds.jsonl", "--data", odd_world.data, env=LOCALES[locale], code=2)
    assert_one_error(res, 2, "./-preds.jsonl", "--")


def test_sibling_names_of_a_long_name_fit_and_differ(tmp_path):
    """In-process: writers' sibling names of 255-byte names (multi-byte letters cut whole) stay under the limit,
    differ for different names, and the atomic write, the lock and the debris sweep all use them."""
    from mmcot_cli.io import atomic_open, sibling_stem
    from mmcot_cli.outputs import claim_output_file, remove_debris_of

    a, b = tmp_path / ("é" * 127 + "a"), tmp_path / ("é" * 127 + "b")
    assert len(os.fsencode(a.name)) == 255
    stems = {sibling_stem(a), sibling_stem(b)}
    assert len(stems) == 2 and all(len(os.fsencode(f".{s}.abcdefgh.tmp")) <= 255 for s in stems)
    assert all(s.encode("utf-8") for s in stems)  # cut at a character boundary: no lone surrogate
    assert sibling_stem(tmp_path / "short.json") == "short.json"
    with claim_output_file(a, "test"):
        with atomic_open(a) as fh:
            fh.write("x")
    assert a.read_text() == "x"
    debris = tmp_path / f".{sibling_stem(a)}.abcd1234.tmp"
    debris.write_text("half")
    remove_debris_of(a)
    assert not debris.exists()
