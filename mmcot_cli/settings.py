"""Command settings declared once: each command's options are the fields of one dataclass, and each field's
`setting(...)` carries everything about the option (flag, help, check, default, whether `--resume` must keep it,
whether the model records it). From those fields come the command's Typer options (mmcot_cli.cli.options),
the value checks (`check_settings`), the resume invariants (`resume_keys`), what the model directory records
(`model_settings`) and `--config FILE` recipes (`read_recipe`, `merge_recipe`). No torch, no typer here."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, Callable

from mmcot_cli.errors import UsageError

RECORDS = ("run", "model")  # run: in run_config.json; model: also in the model directory's config (generation)


@dataclass(frozen=True)
class Setting:
    """What the code needs to know about one option, beside its field's name, type and default."""

    help: str
    flag: str | None = None  # default: --field-name; "" = no command-line option (a recipe key only)
    short: str | None = None  # e.g. "-o"
    aliases: tuple[str, ...] = ()  # more spellings of the flag (prompts: --format and --prompt-format)
    off_flag: str | None = None  # an on/off switch's "off" spelling; default --no-<flag> (demo: --random-init)
    check: Callable[[str, Any], Any] | None = None  # (flag, value) → raises UsageError; skipped for None values
    choices: tuple[str, ...] | None = None
    keep_on_resume: bool = False  # `mmcot train --resume` refuses a different value
    record: str = "run"
    cli_type: Any = None  # the command-line type when the field's differs (list[str] for a dict)
    parse: Callable[[Any], Any] | None = None  # command-line (or recipe) value → field value
    metavar: str | None = None
    argument: bool = False  # a positional command-line argument (its metavar names it), not a --flag


def setting(default: Any = MISSING, help: str = "", *, factory: Callable[[], Any] | None = None,
            **kw: Any) -> Any:
    """A dataclass field declaring one option; `default` left out makes it required."""
    meta = {"setting": Setting(help=help, **kw)}
    if meta["setting"].record not in RECORDS:
        raise ValueError(f"record must be one of {RECORDS}")
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def declared(cls: type) -> list[tuple[dataclasses.Field, Setting]]:
    """The fields of a settings dataclass that are options, in declaration order."""
    return [(f, f.metadata["setting"]) for f in dataclasses.fields(cls) if "setting" in f.metadata]


def flag_of(f: dataclasses.Field, s: Setting) -> str:
    """How messages name the option: its --flag, or a positional argument's metavar (PREDICTIONS)."""
    if s.argument:
        return s.metavar or f.name.upper()
    return s.flag if s.flag is not None else "--" + f.name.replace("_", "-")


def default_of(f: dataclasses.Field) -> Any:
    """The field's default (a fresh one for factories); MISSING for a required field."""
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_settings(obj: Any) -> None:
    """Every declared option's value passes its choices and check (UsageError, exit 2, naming the flag)."""
    for f, s in declared(type(obj)):
        check_value(f, s, getattr(obj, f.name))


def check_value(f: dataclasses.Field, s: Setting, value: Any) -> None:
    name = flag_of(f, s) or f.name
    if value is None:
        return
    if s.choices is not None and value not in s.choices:
        raise UsageError(f"{name} must be one of {', '.join(map(str, s.choices))}, got {value!r}")
    if s.check is not None:
        s.check(name, value)


def resume_keys(cls: type) -> tuple[str, ...]:
    """Fields a resumed run must keep (e.g. lr); the others (epochs …) may change."""
    return tuple(f.name for f, s in declared(cls) if s.keep_on_resume)


def model_settings(obj: Any) -> dict[str, Any]:
    """{field: value} of the options recorded with the model (what generation needs to rebuild and prompt it)."""
    return {f.name: getattr(obj, f.name) for f, s in declared(type(obj)) if s.record == "model"}


# --------------------------------------------------------------------------- --config FILE
def read_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe file's mapping: YAML (.yaml/.yml), TOML (.toml) or JSON (.json, e.g. a run's run_config.json,
    whose recorded `train_config` is the recipe). One line naming the file for anything unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise UsageError(f"--config {path}: use a .yaml, .yml, .toml or .json file")
    except UsageError:
        raise
    except Exception as e:  # yaml, toml and json each raise their own parse errors
        raise UsageError(f"--config {path}: not valid {suffix[1:].upper()} ({' '.join(str(e).split())})") from None
    if isinstance(data, dict) and isinstance(data.get("train_config"), dict):  # a run's run_config.json
        data = data["train_config"]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
    return data


def _known_keys(name: str, names: list[str], room: int = 260) -> str:
    """'; did you mean …?; valid keys: a, b, … (N more …)': the close matches first, the list cut to fit one line."""
    import difflib

    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    shown: list[str] = []
    for n in names:
        if len(", ".join(shown + [n])) > room:
            break
        shown.append(n)
    rest = len(names) - len(shown)
    more = f", … ({rest} more: the command's --help lists every option; a key is its flag without '--')" if rest else ""
    return f"{hint}; valid keys: {', '.join(shown)}{more}"


def merge_recipe(cls: type, recipe: dict[str, Any], given: dict[str, Any], where: str = "--config") -> dict:
    """Field values for `cls`: the recipe's, then the options given on the command line on top. Recipe keys are
    field names or flags (batch_size, batch-size, --batch-size; data or data_dir); an unknown one is a usage error listing them."""
    fields = {f.name: (f, s) for f, s in declared(cls)}
    by_flag = {flag_of(f, s).lstrip("-").replace("-", "_"): f.name for f, s in fields.values()
               if flag_of(f, s) and not s.argument}
    values: dict[str, Any] = {}
    for key, value in recipe.items():
        name = str(key).lstrip("-").replace("-", "_")
        name = name if name in fields else by_flag.get(name, name)
        if name not in fields:
            raise UsageError(f"{where}: unknown key {key!r}{_known_keys(name, list(fields))}")
        f, s = fields[name]
        values[name] = s.parse(value) if s.parse is not None and isinstance(value, (list, str)) else value
    values.update(given)
    for name, value in values.items():  # a bad value given is named before a missing option
        check_value(*fields[name], value)
    missing = [(f, s) for n, (f, s) in fields.items()
               if f.default is MISSING and f.default_factory is MISSING and n not in values]
    if missing:
        f, s = missing[0]
        what = f"argument {flag_of(f, s)} ({f.name})" if s.argument else f"option {flag_of(f, s)}"
        raise UsageError(f"missing {what} (on the command line or in a --config file)")
    return values
