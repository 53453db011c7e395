"""`mmcot demo` end to end at the tiny size (same code path as the default run, a model too small to learn)."""

import json
from dataclasses import replace

import pytest

from mmcot_cli.demo.run import SIZES, DemoConfig, chance_accuracy, run_demo
from mmcot_cli.errors import UnknownNameError, UsageError
from mmcot_cli.evaluation.score import CATEGORIES

ACC_KEYS = [key for key, _, _ in CATEGORIES]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny demo through the CLI with --json (shared by the tests below: it is the slow part)."""
    from typer.testing import CliRunner

    from mmcot_cli.cli import app

    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(app, ["--quiet", "demo", "--tiny", "--out", str(out), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result


def test_json_has_both_score_objects(tiny_run):
    out, result = tiny_run
    summary = json.loads(result.stdout)  # stdout is only the JSON object
    for mode in ("multimodal", "text_only"):
        score = summary[mode]
        for key in ACC_KEYS:
            assert key in score and key in score["counts"]
        assert score["num_gold"] == summary["benchmark"]["splits"]["test"]
        assert score["has_answers"] is True
        assert set(score["rationale"]) >= {"rouge_l", "bleu_1", "bleu_4", "num_scored"}
        assert score["rationale"]["num_scored"] == score["num_gold"]
        assert summary["rationale_image_questions"][mode]["num_scored"] == score["counts"]["acc_has_image"]["total"]
    assert 0 < summary["chance"]["acc_has_image"] < 100
    assert summary["seconds"]["total"] > 0
    assert json.loads((out / "demo.json").read_text()) == summary


def test_outputs_exist_and_parse(tiny_run):
    out, _ = tiny_run
    summary = json.loads((out / "demo.json").read_text())
    for name in ("problems.json", "pid_splits.json", "captions.json"):
        json.loads((out / "benchmark" / name).read_text())
    for split in ("train", "val", "test"):
        assert (out / "data" / f"{split}.jsonl").is_file()
    assert json.loads((out / "features" / "patches" / "manifest.json").read_text())["feature_shape"] == [49, 192]
    test_qids = [json.loads(line)["qid"] for line in (out / "data" / "test.jsonl").read_text().splitlines()]
    for mode in ("multimodal", "text_only"):
        runs = summary["paths"]["runs"][mode]
        rationale_cfg = json.loads((out / "runs" / mode / "rationale" / "run_config.json").read_text())
        answer_cfg = json.loads((out / "runs" / mode / "answer" / "run_config.json").read_text())
        # The text-only runs really have no image features; the multimodal ones do.
        assert (rationale_cfg["feature_shape"] is None) == (mode == "text_only")
        assert (answer_cfg["feature_shape"] is None) == (mode == "text_only")
        assert answer_cfg["rationales"]["train_on"] == "generated"
        for split in ("train", "val", "test"):
            rows = [json.loads(line) for line in open(f"{runs['rationale']}/preds-{split}.jsonl")]
            assert rows and all(r["stage"] == "rationale" for r in rows)
        answers = [json.loads(line) for line in open(f"{runs['answer']}/preds-test.jsonl")]
        assert [r["qid"] for r in answers] == test_qids  # every test item once, in the split's order
        assert all(r["stage"] == "answer" for r in answers)


def test_table_output(tiny_run):
    from rich.console import Console

    from mmcot_cli.cli.demo import print_demo_tables

    out, _ = tiny_run
    console = Console(record=True, width=200)
    print_demo_tables(json.loads((out / "demo.json").read_text()), console)
    text = console.export_text()
    for needle in ("multimodal", "text-only", "chance", "IMG (acc_has_image)", "ROUGE-L (image questions)",
                   "demo.json", str(out / "runs" / "multimodal" / "answer")):
        assert needle in text


def test_demo_writes_its_report(tiny_run):
    out, result = tiny_run
    summary = json.loads(result.stdout)
    assert summary["paths"]["report"] == str((out / "report.html").resolve())
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<b>multimodal</b>" in page and "<b>text-only</b>" in page
    assert "Corrected by vision (multimodal)" in page and 'src="http' not in page
    # A synthetic benchmark, labelled as such, with no published ScienceQA rows beside its scores.
    assert "Synthetic benchmark (mmcot demo)" in page and '<tr class="pub">' not in page


def test_rerun_replaces_earlier_output(tmp_path):
    out = tmp_path / "d"
    run_demo(DemoConfig(out=str(out), size="tiny", modes=("text_only",), n_problems=30))
    (out / "stale.txt").write_text("from an earlier run")
    summary = run_demo(DemoConfig(out=str(out), size="tiny", modes=("text_only",), n_problems=20))
    assert not (out / "stale.txt").exists() and not (out / "features").exists()  # text-only needs none
    assert "multimodal" not in summary and summary["text_only"]["num_gold"] == summary["benchmark"]["splits"]["test"]
    assert json.loads((out / "demo.json").read_text())["benchmark"]["count"] == 20


def test_generate_only(cli, tmp_path):
    result = cli("--quiet", "demo", "--generate-only", "--out", tmp_path / "bench", "--problems", "30", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["benchmark"]["count"] == 30
    assert (tmp_path / "bench" / "problems.json").is_file() and not (tmp_path / "bench" / "data").exists()
    assert not (tmp_path / "bench" / ".mmcot-demo").exists()
    # Generating again into the benchmark folder replaces it.
    assert cli("--quiet", "demo", "--generate-only", "--out", tmp_path / "bench", "--problems", "20").exit_code == 0
    assert len(json.loads((tmp_path / "bench" / "problems.json").read_text())) == 20


def test_refuses_foreign_folder_and_bad_options(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = cli("demo", "--tiny", "--out", tmp_path / "mine")
    assert result.exit_code == 2 and "not written by `mmcot demo`" in result.stderr  # the shared output guard
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    result = cli("demo", "--tiny", "--out", tmp_path / "x", "--backbone", "nope")
    assert result.exit_code == 2 and "nope" in result.stderr
    assert cli("demo", "--tiny", "--quick", "--out", tmp_path / "y").exit_code == 2
    with pytest.raises(UnknownNameError):
        run_demo(DemoConfig(out=str(tmp_path / "z"), size="huge"))
    with pytest.raises(UnknownNameError):
        run_demo(DemoConfig(out=str(tmp_path / "z"), size="tiny", modes=("both",)))


def test_sizes_and_chance():
    assert SIZES["quick"].n_problems < SIZES["default"].n_problems
    records = [{"choices": ["a", "b"], "image": "image.png"}, {"choices": ["a", "b", "c", "d"], "image": None}]
    assert chance_accuracy(records, lambda r: True) == 37.5
    assert chance_accuracy(records, lambda r: bool(r["image"])) == 50.0
    assert chance_accuracy(records, lambda r: False) is None

def test_too_small_benchmark(tmp_path):
    with pytest.raises(UsageError):
        run_demo(DemoConfig(out=str(tmp_path / "d"), size="tiny", n_problems=1))


def _script_commands(text: str) -> list[tuple[str, list[str]]]:
    """(subcommand, --options) of every `mmcot SUB …` / `"${LAUNCH[@]}" SUB …` line; COMMON=(…) goes to train."""
    import re
    import shlex

    text = text.replace("\\\n", " ")
    common = re.search(r"COMMON=\((.*?)\)", text, re.S)
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        for prefix in ("mmcot ", '"${LAUNCH[@]}" '):
            if line.startswith(prefix):
                words = shlex.split(line[len(prefix):])
                opts = [w.split("=")[0] for w in words if w.startswith("--")]
                if '"${COMMON[@]}"' in line:
                    opts += [w for w in shlex.split(common.group(1)) if w.startswith("--")]
                found.append((words[0], opts))
    return found


@pytest.mark.parametrize("script", ["scienceqa_base.sh", "scienceqa_large.sh"])
def test_example_scripts_use_real_commands_and_options(script):
    from pathlib import Path

    from typer.main import get_command

    from mmcot_cli.cli import app

    text = (Path(__file__).resolve().parents[1] / "examples" / script).read_text()
    commands = get_command(app).commands
    found = _script_commands(text)
    assert [sub for sub, _ in found] == ["prepare", "extract", "train", "generate", "train", "generate", "score",
                                         "score"]
    for sub, opts in found:
        known = {o for p in commands[sub].params for o in list(p.opts) + list(p.secondary_opts)}
        assert set(opts) <= known, (sub, sorted(set(opts) - known))
    # The fixed hand-off: stage 2 reads the stage-1 run (by qid), which generated train, val and test.
    assert '--rationales "$WORK/rationale"' in text and "--split train,val,test" in text
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    assert "--backbone vit" in code and "main_central" not in code and "main.py" not in code


# `demo --quick` end to end (outputs, the image effect, the same scores on other kernels): tests/test_cpu_numerics.py


def test_too_few_problems_leave_no_output_folder(cli, tmp_path):
    res = cli("demo", "--tiny", "--problems", "2", "--out", tmp_path / "d")
    assert res.exit_code == 2 and "--problems" in res.stderr
    assert not (tmp_path / "d").exists()


def test_tiny_demo_on_a_decoder_only_backbone(tmp_path):
    """`mmcot demo --text-model llama-scratch`: the same pipeline on a decoder-only LM (prefix fusion here; the
    multimodal runs record it, the text-only runs have no fusion)."""
    summary = run_demo(DemoConfig(out=str(tmp_path / "out"), size="tiny", n_problems=30, parallel=False,
                                  text_model="llama-scratch", fusion="prefix"))
    assert set(summary) >= {"multimodal", "text_only"}
    multimodal = json.loads((tmp_path / "out" / "runs" / "multimodal" / "answer" / "run_config.json").read_text())
    text_only = json.loads((tmp_path / "out" / "runs" / "text_only" / "answer" / "run_config.json").read_text())
    assert (multimodal["text_backbone"], multimodal["text_kind"], multimodal["fusion"]) == (
        "llama-scratch", "causal", "prefix")
    assert text_only["text_kind"] == "causal" and text_only["fusion"] is None
    with pytest.raises(UsageError, match="the demo trains t5-scratch or llama-scratch"):
        DemoConfig(text_model="qwen3-0.6b")


def test_interrupted_rerun_leaves_the_earlier_output(tmp_path, monkeypatch):
    """The earlier output is replaced only when the new run has finished: Ctrl-C/SIGTERM or a failure midway
    (after the new run has written its benchmark and data) puts it back as it was."""
    from mmcot_cli.demo import run as demo_run
    from mmcot_cli.errors import Terminated

    out = tmp_path / "d"
    run_demo(DemoConfig(out=str(out), size="tiny", modes=("text_only",), n_problems=20))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    summary = (out / "demo.json").read_text()

    for error in (Terminated, KeyboardInterrupt, RuntimeError):
        def interrupted(*args, error=error, **kwargs):
            assert (out / "data").is_dir() and not (out / "demo.json").exists()  # the new run is under way
            assert (out / ".mmcot-previous" / "demo.json").read_text() == summary
            raise error()

        monkeypatch.setattr(demo_run, "_run_mode", interrupted)
        with pytest.raises(error):
            run_demo(DemoConfig(out=str(out), size="tiny", modes=("text_only",), n_problems=30))
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()
                 if "mmcot-lock" not in p.name}
        assert after == {k: v for k, v in before.items() if "mmcot-lock" not in k.name}
        assert json.loads((out / "demo.json").read_text())["benchmark"]["count"] == 20


def test_killed_rerun_is_put_in_order_by_the_next(tmp_path):
    """kill -9 leaves the earlier output set aside: the next demo into the folder restores it (new run
    unfinished), drops it (new run finished) or moves back a half-set-aside one, before it starts."""
    from mmcot_cli.demo.previous import PREVIOUS, STAGING, recover

    out = tmp_path / "d"
    (out / PREVIOUS / "runs").mkdir(parents=True)
    (out / PREVIOUS / "demo.json").write_text("old")
    (out / PREVIOUS / "runs" / "x").write_text("old run")
    (out / "data").mkdir()  # the killed rerun's partial output
    (out / ".mmcot-demo").write_text("marker")
    recover(out, "demo.json", keep=(".mmcot-demo",))
    assert sorted(p.name for p in out.iterdir()) == [".mmcot-demo", "demo.json", "runs"]
    assert (out / "runs" / "x").read_text() == "old run"

    (out / PREVIOUS).mkdir()
    (out / PREVIOUS / "demo.json").write_text("older")
    recover(out, "demo.json")  # the rerun had finished: its demo.json stays, the earlier output goes
    assert not (out / PREVIOUS).exists() and (out / "demo.json").read_text() == "old"

    (out / STAGING).mkdir()
    (out / "runs").rename(out / STAGING / "runs")  # killed while setting aside
    recover(out, "demo.json")
    assert not (out / STAGING).exists() and (out / "runs" / "x").read_text() == "old run"


def test_llama_scratch_has_its_own_quick_schedule_and_t5_keeps_its_own():
    """llama-scratch's --quick trains its answer stage longer (docs/DEMO.md); T5's sizes and every other field stay."""
    for name in SIZES:
        assert DemoConfig(size=name).resolved_size() == SIZES[name]
    llama = DemoConfig(size="quick", text_model="llama-scratch").resolved_size()
    assert llama.answer_epochs == 10 != SIZES["quick"].answer_epochs
    assert replace(llama, answer_epochs=SIZES["quick"].answer_epochs) == SIZES["quick"]
    assert DemoConfig(size="tiny", text_model="llama-scratch").resolved_size() == SIZES["tiny"]
    assert DemoConfig(size="quick", text_model="llama-scratch", n_problems=50).resolved_size() == replace(
        llama, n_problems=50)
