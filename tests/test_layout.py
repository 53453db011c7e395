"""The package's shape, checked from its source: layers whose imports only point down, size limits, one home per
name (no private helpers shared across modules), function-local imports only where they keep the CLI light.

Read statically (ast), so it is fast and needs nothing installed beyond the source tree.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mmcot_cli"
PLUGINS = ROOT / "plugins" / "mmcot_plugins"

# The floors, from the bottom up. A module may import its own package and any package on a lower floor; two
# packages on one floor never import each other (training and inference share only what lies below them).
GROUND = "(ground)"  # the top-level modules: errors, io, output_guard, outputs, progress, settings, validate, _version
FLOORS: list[set[str]] = [
    {GROUND},
    {"registry"},
    {"data"},
    {"runs"},
    {"features", "model", "evaluation"},
    {"training", "inference"},
    {"reporting"},
    {"demo"},
    {"cli"},
]
HEAVY = {"torch", "transformers", "numpy", "PIL", "matplotlib", "safetensors", "accelerate", "timm", "open_clip",
         "rouge_score", "nltk", "huggingface_hub", "sentence_transformers", "tensorboard", "peft"}


@dataclasses.dataclass
class Module:
    name: str  # dotted, e.g. mmcot_cli.training.loop
    path: Path
    tree: ast.Module

    @property
    def unit(self) -> str:
        """The layering unit: the subpackage, or GROUND for a top-level module of mmcot_cli."""
        parts = self.name.split(".")
        if parts[0] == "mmcot_plugins":
            return "mmcot_plugins"
        if len(parts) == 2 and not (self.path.name == "__init__.py"):
            return GROUND
        return parts[1] if len(parts) > 1 else "(package)"


def _modules() -> dict[str, Module]:
    out = {}
    for base, prefix in ((PACKAGE, "mmcot_cli"), (PLUGINS, "mmcot_plugins")):
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [prefix, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = Module(".".join(parts), path, ast.parse(path.read_text(encoding="utf-8")))
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an import names (a module, or the module a name is imported from)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: Module, *, local: bool | None = None):
    """(node, imported project module) for every import of a project module; `local` picks function-local
    (True) or module-level (False) imports, None both."""
    function_nodes = {id(n) for f in ast.walk(module.tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(f) if n is not f}
    type_checking = {id(n) for block in ast.walk(module.tree)
                     if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
                     for n in ast.walk(block)}
    for node in ast.walk(module.tree):
        if id(node) in type_checking or (local is not None and (id(node) in function_nodes) != local):
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            targets = {t for t in (_resolve(n) for n in names) if t and t != node.module} or {_resolve(node.module)}
            for target in targets - {None}:
                yield node, target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = _resolve(alias.name)
                if target:
                    yield node, target


def _floor(unit: str) -> int:
    for i, units in enumerate(FLOORS):
        if unit in units:
            return i
    raise AssertionError(f"unit {unit!r} is on no floor: add it to FLOORS")


def test_every_subpackage_is_on_a_floor_and_says_what_it_may_import():
    for path in sorted(PACKAGE.glob("*/__init__.py")):
        unit = path.parent.name
        _floor(unit)
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert doc, f"{path}: a subpackage's docstring says what it holds"
        if unit != "cli":
            assert "May import" in doc, f"{path}: the docstring says what the package may import"


def test_imports_only_point_down():
    wrong = []
    for module in MODULES.values():
        if module.name in ("mmcot_cli", "mmcot_cli.__main__"):  # the lazy API table; `python -m mmcot_cli`
            continue
        for node, target in _imports(module):
            here, there = module.unit, MODULES[target].unit
            if module.unit == "mmcot_plugins":
                ok = there in {GROUND, "registry", "mmcot_plugins"}
            elif there == "mmcot_plugins":
                ok = False  # built-in plugins are loaded by name, like third-party ones
            else:
                ok = here == there or _floor(there) < _floor(here)
            if not ok:
                wrong.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: {here} imports {target} ({there})")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(wrong)


def _layout_block() -> str:
    """The tree in README.md's "Layout" section."""
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Layout", 1)[1].split("```", 2)[1]


def test_every_module_is_named_in_its_package_docstring_and_in_the_readme_layout():
    """A newcomer finds every module from the package docstring and the README tree (cli: one per command)."""
    block = _layout_block()
    unnamed = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        package = init.parent
        if package in (PACKAGE, PACKAGE / "cli") or package.parent != PACKAGE:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        entry = re.search(rf"^  {package.name}/(.*?)(?=^  \S|\Z)", block, re.S | re.M)
        for name in sorted(p.stem for p in package.glob("*.py") if p.name != "__init__.py"):
            word = re.compile(rf"\b{name}\b")
            if not word.search(doc):
                unnamed.append(f"{init.relative_to(ROOT)}: docstring does not name {name}")
            if not (entry and word.search(entry.group(1))):
                unnamed.append(f"README.md Layout: {package.name}/ does not name {name}")
    assert not unnamed, "\n".join(unnamed)


def test_package_sizes():
    top = [p for p in PACKAGE.glob("*.py")]
    assert len(top) <= 10, f"mmcot_cli/ holds {len(top)} top-level modules: {sorted(p.name for p in top)}"
    for package in sorted(p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE):
        modules = [p for p in package.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= 12, f"{package}: {len(modules)} modules"


def _body_lines(fn: ast.FunctionDef) -> int:
    """Lines from the first statement of the body to the end (a typer command's option list is its signature)."""
    return fn.end_lineno - fn.body[0].lineno + 1


@pytest.mark.parametrize("limit_module,limit_function,limit_plugin", [(450, 80, 120)])
def test_size_limits(limit_module, limit_function, limit_plugin):
    too_long = []
    for module in MODULES.values():
        lines = len(module.path.read_text().splitlines())
        limit = limit_plugin if module.unit == "mmcot_plugins" else limit_module
        if lines > limit:
            too_long.append(f"{module.path.relative_to(ROOT)}: {lines} lines (limit {limit})")
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > limit_function:
                too_long.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: {node.name} has "
                                f"{_body_lines(node)} lines (limit {limit_function})")
    assert not too_long, "\n".join(too_long)


def test_no_private_name_is_used_across_modules():
    shared = []
    for module in MODULES.values():
        aliases = {}
        for node, target in _imports(module):
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        shared.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: imports {alias.name} "
                                      f"from {node.module}")
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            else:
                for alias in node.names:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        for node in ast.walk(module.tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                shared.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: uses {node.value.id}.{node.attr}")
    assert not shared, "private names used across modules:\n" + "\n".join(shared)


def _heavy_modules() -> set[str]:
    """Project modules that load a heavy third-party library when imported (directly or through another project
    module imported at module level)."""
    direct: dict[str, bool] = {}
    edges: dict[str, set[str]] = {}
    for module in MODULES.values():
        top_level = [n for n in module.tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top_level if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top_level if isinstance(n, ast.ImportFrom) and n.module and n.level == 0]
        direct[module.name] = any(n.split(".")[0] in HEAVY for n in names)
        edges[module.name] = {t for _, t in _imports(module, local=False)}
        # importing a submodule runs its package's __init__ first
        parent = module.name.rpartition(".")[0]
        if parent in MODULES:
            edges[module.name].add(parent)
    heavy = {m for m, is_heavy in direct.items() if is_heavy}
    changed = True
    while changed:
        changed = False
        for m, targets in edges.items():
            if m not in heavy and targets & heavy:
                heavy.add(m)
                changed = True
    return heavy


def test_function_local_imports_only_for_heavy_modules():
    heavy = _heavy_modules()
    light = []
    for module in MODULES.values():
        if module.name == "mmcot_cli":
            continue
        for node, target in _imports(module, local=True):
            if target not in heavy:
                light.append(f"{module.path.relative_to(ROOT)}:{node.lineno}: {target} is light; import it at the top")
    assert not light, "\n".join(light)


def test_cli_modules_import_no_heavy_module_at_load():
    heavy = _heavy_modules()
    assert not {m for m in heavy if m.startswith("mmcot_cli.cli")}, sorted(heavy)


def test_every_trainconfig_field_is_one_train_option_with_its_default():
    import typer.main

    from mmcot_cli.cli import app
    from mmcot_cli.training.config import TrainConfig

    train = typer.main.get_command(app).commands["train"]
    options = {p.name: p for p in train.params}
    for f in dataclasses.fields(TrainConfig):
        assert f.name in options, f"TrainConfig.{f.name} has no `mmcot train` option"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is not dataclasses.MISSING and not isinstance(default, dict):
            assert options[f.name].default == default, f.name


def test_ruff_finds_nothing():
    """pyflakes errors, statement-level pycodestyle errors and unsorted imports ([tool.ruff] in pyproject.toml)."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-1000:]
