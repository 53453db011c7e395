"""`--config FILE` on every command with options (mmcot_cli.cli.options.settings_command): recipe values first,
flags on top, unknown keys one line naming them, required options from the recipe; the example recipes are
valid recipes of their command and the example scripts use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_record
from typer.main import get_command

from mmcot_cli.cli import app
from mmcot_cli.settings import merge_recipe, read_recipe

ROOT = Path(__file__).resolve().parents[1]
# output-only commands: --json (and backbones' and env's nothing else) is how to print, not a setting
NO_SETTINGS = {"backbones", "env"}


def _commands():
    root = get_command(app)
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):  # a group: `mmcot rationales import|filter`
            for sub, subcmd in cmd.commands.items():
                yield f"{name} {sub}", subcmd
        else:
            yield name, cmd


def test_every_command_with_options_takes_a_config_file():
    missing = [name for name, cmd in _commands()
               if name not in NO_SETTINGS and "--config" not in {o for p in cmd.params for o in p.opts}]
    assert not missing, missing


@pytest.mark.parametrize("command", ["train", "generate", "ask", "score", "report", "compare", "prepare", "prompts",
                                     "import-run", "import-features", "rationales import", "rationales filter",
                                     "extract", "demo"])
def test_unknown_recipe_key_is_one_line_naming_it(cli, tmp_path, command):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("no_such_option: 3\n")
    res = cli(*command.split(), "--config", recipe)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'no_such_option'" in lines[0] and "valid keys:" in lines[0], lines
    assert len(lines[0]) <= 410


def test_unparsable_recipe_is_one_line(cli, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("batch_size: [1,\n")
    res = cli("generate", "--config", recipe)
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "not valid YAML" in res.stderr


def test_a_recipe_gives_required_options_and_flags_win(cli, tmp_path):
    """score's positional PREDICTIONS and --data from a TOML recipe; a flag given beside it wins."""
    data = tmp_path / "data"
    data.mkdir()
    rows = [build_record(qid=str(i), answer=i % 2) for i in range(4)]
    (data / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"qid": str(i), "prediction": "The answer is (A)."}) + "\n"
                             for i in range(4)))
    recipe = tmp_path / "score.toml"
    recipe.write_text(f'predictions = "{preds}"\ndata = "{data}"\nfallback = "random"\n')
    res = cli("score", "--config", recipe, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["fallback"] == "random"
    res = cli("score", "--config", recipe, "--fallback", "strict", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["fallback"] == "strict"
    res = cli("score", "--config", recipe, "--fallback", "nope")
    assert res.exit_code == 2 and "--fallback" in res.stderr


def test_prepare_takes_its_source_from_a_recipe(cli, tmp_path):
    rows = [{"id": f"q{i}", "split": "train", "question": "Q?", "choices": ["a", "b"], "answer": i % 2}
            for i in range(3)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "prepare.yaml"
    recipe.write_text(f"source: {tmp_path / 'd.jsonl'}\nout: {tmp_path / 'x'}\n")
    res = cli("prepare", "--config", recipe, "--out", tmp_path / "data", "--json")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "data" / "train.jsonl").is_file() and not (tmp_path / "x").exists()


RECIPE_COMMANDS = {"generate-original.yaml": "generate"}  # the others: train


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_example_recipes_are_valid_and_used(path):
    from mmcot_cli.inference.settings import GenerateConfig
    from mmcot_cli.training.config import TrainConfig

    command = RECIPE_COMMANDS.get(path.name, "train")
    cls = {"train": TrainConfig, "generate": GenerateConfig}[command]
    paths = ({"data_dir": "D", "text_model": "t5-scratch", "out_dir": "R", "rationales": "R1"} if command == "train"
             else {"run": "R", "data_dir": "D"})
    cfg = cls(**merge_recipe(cls, read_recipe(path), paths, where=f"--config {path}"))
    if command == "train":
        cfg.resolved()  # the stage presets and cross-option checks pass too
    scripts = "".join(p.read_text() for p in (ROOT / "examples").glob("*.sh"))
    assert f'--config "$RECIPES/{path.name}"' in scripts, f"no example script uses {path.name}"


def test_a_recipe_sets_demo_options_and_flags_win(cli, tmp_path):
    """demo's options from a recipe (flag names or field names), a flag beside it on top; --generate-only keeps it
    to the benchmark (no training)."""
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(f"generate-only: true\nproblems: 12\nseed: 3\nout: {tmp_path / 'bench'}\n")
    res = cli("-q", "demo", "--config", recipe, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["benchmark"]["count"] == 12 and (tmp_path / "bench" / "problems.json").is_file()
    res = cli("-q", "demo", "--config", recipe, "--problems", "9", "--out", tmp_path / "other", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["benchmark"]["count"] == 9
    assert len(json.loads((tmp_path / "other" / "problems.json").read_text())) == 9


@pytest.mark.parametrize("recipe,option", [("threads: 0", "--threads"), ("problems: -1", "--problems"),
                                           ("seed: -1", "--seed"), ("fusion: sideways", "--fusion"),
                                           ("text_model: gpt", "--text-model"), ("fusion_layer: -2", "--fusion-layer"),
                                           ("device: gpu", "--device"), ("tiny: true\nquick: true", "--tiny")])
def test_a_bad_demo_value_is_one_line_and_writes_nothing(cli, tmp_path, recipe, option):
    path = tmp_path / "demo.yaml"
    path.write_text(f"{recipe}\nout: {tmp_path / 'out'}\n")
    res = cli("demo", "--config", path)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and option in lines[0], res.output
    assert not (tmp_path / "out").exists()


def test_demo_settings_build_the_runs_config():
    """The command line's shape (--tiny, --pretrained, --sequential) becomes the runner's DemoConfig / the
    ablation's AblationConfig as the options always did; the help shows every default."""
    from mmcot_cli.demo.settings import DemoSettings

    run = DemoSettings(tiny=True, pretrained=True, sequential=True, device="cpu", n_problems=30).demo_config()
    assert (run.out, run.size, run.random_init, run.parallel, run.n_problems) == ("demo-out", "tiny", False, False, 30)
    default = DemoSettings(device="cpu").demo_config()
    assert (default.size, default.random_init, default.parallel) == ("default", True, True)
    ablation = DemoSettings(quick=True, ablation=True, seed=4).ablation_config()
    assert (ablation.out, ablation.size, ablation.seed, ablation.threads) == ("ablation-out", "quick", 4, 1)


def test_demo_help_shows_its_defaults(cli):
    params = {p.name: p for p in get_command(app).commands["demo"].params}
    pretrained = params["pretrained"]
    assert (pretrained.opts, pretrained.secondary_opts, pretrained.default) == (["--pretrained"], ["--random-init"],
                                                                               False)
    assert all(params[n].show_default for n in ("backbone", "text_model", "seed", "fusion"))
    text = cli("demo", "--help", env={"COLUMNS": "250"}).stdout
    assert "[default: random-init]" in text and "[default: patches]" in text and "--config" in text
