"""The library names README.md and docs/*.md point a reader at exist where they say: `mmcot_cli.x.y.name` resolves,
and in "`mmcot_cli.x.y`: `name(...)`" passages every called name is found in that module (or is a method of one of
its classes, or a name of the public `mmcot_cli` API). Module moves and deleted re-exports are easy to miss in prose.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import mmcot_cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Flat modules of earlier versions, named where the docs say what replaced them.
FORMER = {"mmcot_cli.store", "mmcot_cli.train"}


def _resolve(dotted: str):
    """The object `dotted` names (a module, or an attribute path below the longest importable module)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def _known_in(module) -> set[str]:
    names = set(dir(module)) | set(dir(mmcot_cli))
    for _, cls in inspect.getmembers(module, inspect.isclass):
        names |= set(dir(cls))
    return names


def test_dotted_names_in_the_docs_resolve():
    missing = []
    for doc in DOCS:
        for dotted in sorted(set(re.findall(r"\bmmcot_cli(?:\.[A-Za-z_]\w*)+", doc.read_text()))):
            if dotted in FORMER:
                continue
            try:
                _resolve(dotted)
            except (ImportError, AttributeError):
                missing.append(f"{doc.name}: {dotted}")
    assert not missing, "\n".join(missing)


def test_names_listed_under_a_module_are_in_it():
    missing = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"`(mmcot_cli(?:\.\w+)+)`\)?:\s*(.*?)(?=`mmcot_cli\.|\n\n|\n\||$)", text, re.S):
            module = importlib.import_module(m.group(1))
            known = _known_in(module)
            missing += [f"{doc.name}: {m.group(1)}: {name}" for name in re.findall(r"`(\w+)\(", m.group(2))
                        if name not in known]
    assert not missing, "\n".join(missing)
