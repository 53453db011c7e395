"""Fault class 4 (issue 17): text the readers mishandled. Every JSONL input is read by one line reader that
splits on "\\n" only (U+2028, U+2029 and U+0085 are valid inside JSON strings); a lone surrogate escaped in JSON is
one `file:line` error (a skipped item with --skip-bad); a non-UTF-8 argument is one line; a stdout that cannot
encode every character gets escapes instead of a traceback; a file whose every line is bad says why its first line
is; duplicate choices are a warning."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from faultkit import (
    TINY_TEXT,
    aokvqa_item,
    aokvqa_source,
    assert_one_error,
    jsonl_source,
    leftovers,
    mmcot,
    mmcot_subprocess,
    predictions,
    world,  # noqa: F401 (fixture)
)

SEPARATORS = "one\u2028two\u2029three\u0085four"  # str.splitlines() breaks this into four lines
SURROGATE = '"bad \\udc80 text"'  # JSON text: an escaped lone surrogate


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def _write_rows(path, rows, surrogate_in: int | None = None):
    """rows as JSONL (raw non-ASCII, as mmcot writes it); row `surrogate_in` gets a lone surrogate in its text."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if surrogate_in is not None:
        lines[surrogate_in] = lines[surrogate_in].replace('"SURROGATE"', SURROGATE)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _test_qids(world):
    return [r["qid"] for r in _rows(world.data / "test.jsonl")]


def _answer_run(world, tmp_path):
    """The world's answer run, relabelled to take a rationale (QCMG-A), so generate reads --rationales."""
    run = world.copy("run", tmp_path)
    config = json.loads((run / "run_config.json").read_text())
    config["prompt_format"] = "QCMG-A"
    (run / "run_config.json").write_text(json.dumps(config))
    return run


def _stage1(world, tmp_path, text_of):
    """A stage-1 predictions folder (preds-<split>.jsonl for every split) whose rationale for qid q is text_of(q)."""
    folder = tmp_path / "stage1"
    folder.mkdir()
    for split in ("train", "val", "test"):
        rows = [{"qid": r["qid"], "prediction": text_of(r["qid"]), "stage": "rationale"}
                for r in _rows(world.data / f"{split}.jsonl")]
        _write_rows(folder / f"preds-{split}.jsonl", rows)
    return folder


TRAIN_ANSWER = ["train", "--stage", "answer", "--prompt-format", "QCMG-A", "--text-model", "t5-scratch", "--epochs",
                "1", "--batch-size", "8", "--limit-train", "8", "--val-split", "none", *TINY_TEXT]


# --------------------------------------------------------------------------- U+2028 / U+2029 / U+0085 in strings


def test_prepare_jsonl_keeps_line_separators_inside_strings(tmp_path):
    src = jsonl_source(tmp_path / "src")
    rows = _rows(src)
    rows[1]["question"] = f"Q {SEPARATORS}?"
    _write_rows(src, rows)
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data")
    assert res.exit_code == 0, res.stderr
    train = _rows(tmp_path / "data" / "train.jsonl")
    assert len(train) == 4 and train[1]["question"] == f"Q {SEPARATORS}?"


def test_rationales_import_output_reads_back(world, tmp_path):
    """mmcot reads its own output: a rationale set holding raw U+2028 is a valid input of filter and train."""
    qids = [r["qid"] for r in _rows(world.data / "train.jsonl")]
    teacher = _write_rows(tmp_path / "teacher.jsonl", [{"qid": q, "rationale": f"r {SEPARATORS}", "answer": 0}
                                                       for q in qids])
    imported, kept = tmp_path / "imported.jsonl", tmp_path / "kept.jsonl"
    assert mmcot("-q", "rationales", "import", teacher, "--data", world.data, "--out", imported).exit_code == 0
    assert "\u2028" in imported.read_text(encoding="utf-8")
    res = mmcot("-q", "rationales", "filter", imported, "--data", world.data, "--out", kept, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["rationales"] == len(qids)
    assert {r["rationale"] for r in _rows(kept)} == {f"r {SEPARATORS}"}
    res = mmcot("-q", "train", "--stage", "rationale", "--data", world.data, "--text-model", "t5-scratch", "--out",
                tmp_path / "run", "--epochs", "1", "--batch-size", "8", "--limit-train", "8", "--val-split", "none",
                "--rationale-source", imported, *TINY_TEXT, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads((tmp_path / "run" / "run_config.json").read_text())["rationale_source"]["examples"] > 0


def test_score_reads_predictions_with_line_separators(world, tmp_path):
    qids = _test_qids(world)
    preds = _write_rows(tmp_path / "p.jsonl", [{"qid": q, "prediction": f"Solution: {SEPARATORS}. The answer is (A)."}
                                               for q in qids])
    res = mmcot("score", preds, "--data", world.data, "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["num_predictions"] == len(qids)


def test_generate_and_train_read_rationales_with_line_separators(world, tmp_path):
    stage1 = _stage1(world, tmp_path, lambda q: f"Solution: {q} {SEPARATORS}.")
    res = mmcot("-q", *TRAIN_ANSWER, "--data", world.data, "--out", tmp_path / "trained", "--rationales", stage1,
                "--train-on", "generated")
    assert res.exit_code == 0, res.stderr
    # Every train rationale was read whole: one per qid, each still holding its separators (not split in four).
    from mmcot_cli.runs.rationales import load_rationales

    train_qids = [r["qid"] for r in _rows(world.data / "train.jsonl")]
    loaded = load_rationales(stage1, "train")
    assert loaded.for_qids(train_qids) == [f"Solution: {q} {SEPARATORS}." for q in train_qids]
    recorded = json.loads((tmp_path / "trained" / "run_config.json").read_text())["rationales"]
    assert recorded["train_on"] == "generated" and recorded["train"]["count"] == len(train_qids)
    out = tmp_path / "a.jsonl"
    res = mmcot("-q", "generate", "--run", _answer_run(world, tmp_path), "--data", world.data, "--features",
                world.feats, "--device", "cpu", "--rationales", stage1, "--out", out, "--max-new-tokens", "4")
    assert res.exit_code == 0, res.stderr
    assert len(_rows(out)) == len(_test_qids(world))


def test_report_and_compare_read_predictions_with_line_separators(world, tmp_path):
    run = world.copy("run", tmp_path)
    _write_rows(run / "preds-test.jsonl", [{"qid": q, "prediction": f"Solution: {SEPARATORS}. The answer is (A)."}
                                           for q in _test_qids(world)])
    res = mmcot("-q", "report", run, "--data", world.data, "--out", tmp_path / "r.html")
    assert res.exit_code == 0, res.stderr
    res = mmcot("-q", "compare", run, run, "--data", world.data, "--markdown")
    assert res.exit_code == 0, res.stderr


# --------------------------------------------------------------------------- lone surrogates


def test_prepare_jsonl_lone_surrogate(tmp_path):
    src = jsonl_source(tmp_path / "src")
    rows = _rows(src)
    rows[2]["question"] = "SURROGATE"
    _write_rows(src, rows, surrogate_in=2)
    res = mmcot("prepare", src, "--out", tmp_path / "data")
    assert_one_error(res, 1, f"{src}:3", "lone surrogate \\udc80")
    assert not (tmp_path / "data").exists()
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data", "--skip-bad", "--json")
    assert res.exit_code == 0, res.stderr
    assert "Traceback" not in res.stderr and f"{src}:3" in res.stderr and "lone surrogate" in res.stderr
    assert [r["qid"] for r in _rows(tmp_path / "data" / "train.jsonl")] == ["q0", "q1", "q3"]


def test_prepare_aokvqa_lone_surrogate(tmp_path):
    items = [aokvqa_item(i) for i in range(4)]
    items[1]["question"] = "SURROGATE"
    src = tmp_path / "src"
    src.mkdir()
    (src / "aokvqa_v1p0_train.json").write_text(json.dumps(items).replace('"SURROGATE"', SURROGATE))
    res = mmcot("prepare", src, "--out", tmp_path / "data")
    assert_one_error(res, 1, "aokvqa_v1p0_train.json: item 1", "a1", "lone surrogate \\udc80")
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data", "--skip-bad", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr and "lone surrogate" in res.stderr
    assert [r["qid"] for r in _rows(tmp_path / "data" / "train.jsonl")] == ["a0", "a2", "a3"]


def test_prepare_scienceqa_lone_surrogate(world, tmp_path):
    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    problems = json.loads((bench / "problems.json").read_text())
    victim = json.loads((bench / "pid_splits.json").read_text())["test"][0]
    problems[victim]["hint"] = "SURROGATE"
    (bench / "problems.json").write_text(json.dumps(problems).replace('"SURROGATE"', SURROGATE))
    res = mmcot("prepare", bench, "--out", tmp_path / "data")
    assert_one_error(res, 1, "problems.json", f"qid {victim}", "lone surrogate \\udc80")
    assert not (tmp_path / "data").exists()
    res = mmcot("-q", "prepare", bench, "--out", tmp_path / "data", "--skip-bad", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr and "lone surrogate" in res.stderr
    assert victim not in [r["qid"] for r in _rows(tmp_path / "data" / "test.jsonl")]


def test_score_lone_surrogate(world, tmp_path):
    qids = _test_qids(world)
    rows = [{"qid": q, "prediction": "The answer is (A)."} for q in qids]
    rows[1]["prediction"] = "SURROGATE"
    preds = _write_rows(tmp_path / "p.jsonl", rows, surrogate_in=1)
    assert_one_error(mmcot("score", preds, "--data", world.data), 1, f"{preds}:2", "lone surrogate")
    res = mmcot("score", preds, "--data", world.data, "--skip-bad", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr and f"{preds}:2" in res.stderr
    results = tmp_path / "results.json"
    results.write_text('{"results": {"%s": 0, "\\udc80": 1}}' % qids[0])
    assert_one_error(mmcot("score", results, "--data", world.data), 1, "results", "lone surrogate")


@pytest.mark.parametrize("sub", ["import", "filter"])
def test_rationales_lone_surrogate(world, tmp_path, sub):
    qids = [r["qid"] for r in _rows(world.data / "train.jsonl")]
    rows = [{"qid": q, "rationale": "SURROGATE" if i == 1 else "fine", "answer": 0} for i, q in enumerate(qids)]
    teacher = _write_rows(tmp_path / "teacher.jsonl", rows, surrogate_in=1)
    out = tmp_path / "set.jsonl"
    assert_one_error(mmcot("rationales", sub, teacher, "--data", world.data, "--out", out), 1, f"{teacher}:2",
                     "lone surrogate")
    assert not out.exists()
    res = mmcot("-q", "rationales", sub, teacher, "--data", world.data, "--out", out, "--skip-bad", "--json")
    assert res.exit_code == 0 and "Traceback" not in res.stderr and f"{teacher}:2" in res.stderr
    assert qids[1] not in {r["qid"] for r in _rows(out)}


def test_train_rationale_source_lone_surrogate(world, tmp_path):
    src = _write_rows(tmp_path / "set.jsonl", [{"qid": "1", "rationale": "SURROGATE"}], surrogate_in=0)
    res = mmcot("train", "--stage", "rationale", "--data", world.data, "--text-model", "t5-scratch", "--out",
                tmp_path / "run", "--epochs", "1", "--val-split", "none", "--rationale-source", src, *TINY_TEXT)
    assert_one_error(res, 1, f"{src}:1", "lone surrogate")
    assert not (tmp_path / "run" / "model").exists()


def test_train_and_generate_rationales_lone_surrogate(world, tmp_path):
    stage1 = _stage1(world, tmp_path, lambda q: "SURROGATE")
    for split in ("train", "test"):
        path = stage1 / f"preds-{split}.jsonl"
        path.write_text(path.read_text().replace('"SURROGATE"', SURROGATE, 1))
    res = mmcot(*TRAIN_ANSWER, "--data", world.data, "--out", tmp_path / "trained", "--rationales", stage1,
                "--train-on", "generated")
    assert_one_error(res, 1, "preds-train.jsonl:1", "lone surrogate")
    out = tmp_path / "a.jsonl"
    res = mmcot("generate", "--run", _answer_run(world, tmp_path), "--data", world.data, "--features", world.feats,
                "--device", "cpu", "--rationales", stage1, "--out", out)
    assert_one_error(res, 1, "preds-test.jsonl:1", "lone surrogate")
    assert not out.exists() and leftovers(tmp_path) == []


def test_report_and_compare_lone_surrogate(world, tmp_path):
    run = world.copy("run", tmp_path)
    predictions(world, run / "preds-test.jsonl")
    path = run / "preds-test.jsonl"
    path.write_text(path.read_text().replace('"Solution: x.', SURROGATE[:-1] + ' Solution: x.', 1))
    res = mmcot("report", run, "--data", world.data, "--out", tmp_path / "r.html")
    assert_one_error(res, 1, f"{path}:1", "lone surrogate")
    assert not (tmp_path / "r.html").exists()
    res = mmcot("compare", path, "--data", world.data, "--markdown")
    assert_one_error(res, 1, f"{path}:1", "lone surrogate")


# --------------------------------------------------------------------------- non-UTF-8 arguments and stdout


@pytest.mark.parametrize("command", [["prepare", "{path}", "--out", "{tmp}/d"], ["score", "{path}", "--data", "{data}"],
                                     ["rationales", "import", "{path}", "--data", "{data}", "--out", "{tmp}/r.jsonl"],
                                     ["extract", "-b", "patches", "--data", "{data}", "--out", "{path}"],
                                     ["ask", "--rationale-run", "{run}", "--answer-run", "{run}", "--question",
                                      "{path}", "--choices", "a|b"]],
                         ids=["prepare", "score", "rationales", "extract", "ask"])
def test_non_utf8_argument_is_one_line(world, tmp_path, command):
    """Bytes that are not UTF-8 in a path (Python keeps them as lone surrogates) are one line, exit 2."""
    path = os.fsdecode(os.fsencode(str(tmp_path)) + b"/bad\xff.jsonl")
    if os.path.supports_unicode_filenames or os.fsencode(path) == path.encode("utf-8", "replace"):
        pytest.skip("this platform cannot hold non-UTF-8 file names")
    with open(os.fsencode(path), "w") as fh:
        fh.write(jsonl_source(tmp_path / "src").read_text())
    args = [a.format(path=path, tmp=tmp_path, data=world.data, run=world.run) for a in command]
    res = mmcot(*args)
    assert_one_error(res, 2, "bad\\udcff.jsonl", "not valid UTF-8")
    assert not (tmp_path / "d").exists() and not (tmp_path / "r.jsonl").exists()


NARROW = {"ascii": {"PYTHONIOENCODING": "ascii"},
          "C-locale": {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}}


@pytest.fixture(scope="module")
def narrow_inputs(world, tmp_path_factory):
    """A DATA_DIR with non-ASCII questions, and predictions and teacher rationales with non-ASCII text."""
    tmp = tmp_path_factory.mktemp("narrow")
    src = jsonl_source(tmp / "src", [{"id": "warm", "split": "test", "question": "Which is warmer: 20 °C → 30 °C?",
                                      "choices": ["20 °C", "30 °C"], "answer": 1}])
    assert mmcot("-q", "prepare", src, "--out", tmp / "data").exit_code == 0
    qids = _test_qids(world)
    preds = _write_rows(tmp / "p.jsonl", [{"qid": q, "prediction": "The answer is (A) → ✓."} for q in qids])
    teacher = _write_rows(tmp / "t.jsonl", [{"qid": qids[0], "rationale": "→ ✓"}])
    return tmp, preds, teacher


@pytest.mark.parametrize("env,command", [
    ("ascii", ["backbones"]), ("ascii", ["backbones", "--json"]), ("ascii", ["score", "{preds}", "--data", "{data}"]),
    ("ascii", ["prompts", "{tmp}/data", "--split", "test"]),
    ("ascii", ["rationales", "import", "{teacher}", "--data", "{data}", "--split", "test", "--out", "{tmp}/s.jsonl"]),
    ("C-locale", ["backbones"]), ("C-locale", ["score", "{preds}", "--data", "{data}", "--json"]),
    ("C-locale", ["prompts", "{tmp}/data", "--split", "test"]),
], ids=lambda v: v if isinstance(v, str) else "-".join(a for a in v if not a.startswith("{"))[:30])
def test_narrow_stdout_gets_escapes_not_a_traceback(world, narrow_inputs, env, command):
    tmp, preds, teacher = narrow_inputs
    args = [a.format(tmp=tmp, preds=preds, teacher=teacher, data=world.data) for a in command]
    proc = mmcot_subprocess(*args, env=NARROW[env])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "UnicodeEncodeError" not in proc.stderr
    assert proc.stdout.strip() or proc.stderr.strip()
    if "--json" in args or args[0] == "prompts":  # JSON stays valid JSON: non-ASCII as \u escapes
        assert proc.stdout.isascii()
        objs = [json.loads(line) for line in proc.stdout.split("\n") if line.strip()] if args[0] == "prompts" \
            else [json.loads(proc.stdout)]
        assert args[0] == "score" or not json.dumps(objs, ensure_ascii=False).isascii()  # escapes decode back


# --------------------------------------------------------------------------- files with no usable line


def test_prepare_jsonl_every_line_bad_names_the_first(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"\xef\xbb\xbfgarbage\nmore garbage\n")
    for extra in ([], ["--skip-bad"]):
        res = mmcot("prepare", src, "--out", tmp_path / "data", *extra)
        assert_one_error(res, 1, "no usable problems", f"{src}:1", "invalid JSON")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\n")
    assert_one_error(mmcot("prepare", binary, "--out", tmp_path / "data"), 1, "no usable problems", f"{binary}:1")
    assert not (tmp_path / "data").exists()


def test_prepare_jsonl_byte_order_mark_is_not_content(tmp_path):
    src = jsonl_source(tmp_path / "src")
    src.write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "data")
    assert res.exit_code == 0, res.stderr
    assert len(_rows(tmp_path / "data" / "train.jsonl")) == 4


def test_prepare_every_item_skipped_names_the_first(world, tmp_path):
    src = aokvqa_source(tmp_path / "aok", {"train": [{"question_id": "x"}]})
    res = mmcot("prepare", src, "--out", tmp_path / "data", "--skip-bad")
    assert_one_error(res, 1, "no usable problems", "item 0", "missing field")
    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    problems = json.loads((bench / "problems.json").read_text())
    (bench / "problems.json").write_text(json.dumps({q: {"question": p["question"]} for q, p in problems.items()}))
    res = mmcot("prepare", bench, "--out", tmp_path / "data", "--skip-bad")
    assert_one_error(res, 1, "no usable problems", "missing field")
    assert not (tmp_path / "data").exists()


def test_score_and_rationales_every_line_bad_names_the_first(world, tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("garbage\n{\n")
    for args, needle in ((["score", garbage, "--data", world.data], "no usable predictions"),
                         (["rationales", "import", garbage, "--data", world.data, "--out", tmp_path / "s.jsonl"],
                          "no usable rationales")):
        res = mmcot(*args, "--skip-bad")  # each skipped line is a warning; then one error naming the first
        lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.exit_code == 1 and len(lines) == 1 and "Traceback" not in res.stderr
        assert needle in lines[0] and f"{garbage}:1:1: invalid JSON" in lines[0]
    assert not (tmp_path / "s.jsonl").exists()


# --------------------------------------------------------------------------- duplicate choices


def test_duplicate_choices_are_a_warning_in_every_reader(world, tmp_path):
    src = jsonl_source(tmp_path / "src", [{"id": "dup", "split": "train", "question": "Q?",
                                          "choices": ["yes", "no", "Yes"], "answer": 0}])
    res = mmcot("-q", "prepare", src, "--out", tmp_path / "d1", "--json")
    assert res.exit_code == 0 and f"{src}:7" in res.stderr and "dup" in res.stderr and "twice" in res.stderr

    items = [aokvqa_item(i) for i in range(3)]
    items[1]["choices"] = ["a", "b", "a", "c"]
    res = mmcot("-q", "prepare", aokvqa_source(tmp_path / "aok", {"train": items}), "--out", tmp_path / "d2")
    assert res.exit_code == 0 and "item 1" in res.stderr and "a1" in res.stderr and "twice" in res.stderr

    bench = tmp_path / "bench"
    shutil.copytree(world.bench, bench)
    problems = json.loads((bench / "problems.json").read_text())
    victim = json.loads((bench / "pid_splits.json").read_text())["test"][0]
    problems[victim]["choices"] = [problems[victim]["choices"][0]] * 2
    problems[victim]["answer"] = 0
    (bench / "problems.json").write_text(json.dumps(problems))
    res = mmcot("-q", "prepare", bench, "--out", tmp_path / "d3")
    warnings = [line for line in res.stderr.splitlines() if "twice" in line]
    assert res.exit_code == 0 and len(warnings) == 1 and victim in warnings[0] and "problems.json" in warnings[0]
