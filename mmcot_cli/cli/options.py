"""Typer options derived from a settings dataclass (mmcot_cli.settings): a command declares `cfg: SomeConfig`
and gets one option per field, plus `--config FILE`; the values (recipe first, command line on top) arrive as
one built `SomeConfig`. Typer reads `inspect.signature`, so the generated `__signature__` is all it needs."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer._click.core import ParameterSource

from mmcot_cli.cli.app import app, guarded
from mmcot_cli.settings import declared, default_of, field_types, flag_of, merge_recipe, read_recipe

CONFIG_HELP = ("Recipe file (YAML, TOML, or a run's run_config.json): its values first, options given here on "
               "top; keys are the option names (batch_size or batch-size).")
_GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


_METAVARS = {int: "N", Optional[int]: "N", float: "NUMBER", Optional[float]: "NUMBER", str: "TEXT",
             Optional[str]: "TEXT"}  # not typer's "<int>" / "<str>" placeholders


_TYPE_WORDS = {"<bool>": None, "<int>": "N", "<float>": "NUMBER", "<str>": "TEXT", "<path>": "PATH"}


def readable_help_types() -> None:
    """Help shows words where typer writes a type placeholder: nothing beside an on/off flag (its --no- twin says
    it) or a list argument (its NAME... says it), N / NUMBER / TEXT / PATH beside a value. Every command's help, settings-derived or not."""
    from typer.core import TyperArgument, TyperOption

    for cls in (TyperOption, TyperArgument):
        original = cls.display_type_rich
        if getattr(original, "_mmcot", False):
            continue

        def display(self, ctx, _original=original):
            shown = _original(self, ctx)
            if isinstance(shown, str) and shown.startswith("<list["):  # INPUTS...: the metavar says it
                return None
            return _TYPE_WORDS.get(shown, shown) if isinstance(shown, str) else shown

        display._mmcot = True
        cls.display_type_rich = display


readable_help_types()


def _optional(tp: Any) -> Any:
    """`X | None` as typing.Optional[X], the spelling Typer reads."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1 and len(typing.get_args(tp)) == 2:
        return Optional[args[0]]
    return tp


def option_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword parameter per declared field with a flag, its default a typer.Option built from the field."""
    types = field_types(cls)
    params = []
    for f, s in declared(cls):
        flag = flag_of(f, s)
        if not flag:
            continue
        tp = _optional(s.cli_type or types[f.name])
        default = default_of(f)
        required = default is dataclasses.MISSING
        text = s.help + (" (required: here or in --config)" if required else "")
        switch = tp in (bool, Optional[bool])  # --x/--no-x; Optional: neither given leaves the field's None default
        off = s.off_flag or f"--no-{flag[2:]}"
        decls = [f"{flag}/{off}" if switch else flag, *s.aliases] + ([s.short] if s.short else [])
        shown = None if required or isinstance(default, dict) else default
        if isinstance(default, tuple):  # a list option spelled "a,b" on the command line
            shown = ",".join(map(str, default))
        metavar = s.metavar or ("[" + "|".join(map(str, s.choices)) + "]" if s.choices else _METAVARS.get(tp))
        if s.argument:  # optional to click, so a recipe may give it; merge_recipe names it when neither does
            option = typer.Argument(shown, help=text, metavar=metavar or f.name.upper(), show_default=not required)
        else:
            option = typer.Option(shown, *decls, help=text, metavar=metavar, show_default=not required)
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=tp))
    return params


def settings_command(name: str, *, on: typer.Typer = app, settings: type | None = None) -> Callable:
    """Register `fn(cfg: SomeConfig, **other_options)` as command `name` of `on`: its callback's signature holds
    SomeConfig's (or `settings`') options, `--config` and fn's other options; it builds the config and calls fn.
    Library errors become one stderr line (app.guarded)."""

    def decorate(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn)
        fn_params = list(inspect.signature(fn).parameters.values())
        settings_name, cls = next((p.name, settings or hints[p.name]) for p in fn_params
                                  if dataclasses.is_dataclass(hints.get(p.name)))
        others = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in fn_params if p.name != settings_name]
        fields = option_parameters(cls)
        names = {p.name for p in fields}
        parse = {f.name: s.parse for f, s in declared(cls) if s.parse is not None}

        def callback(ctx: typer.Context, config: Optional[Path] = None, **kw: Any) -> Any:
            given = {n: (parse[n](v) if n in parse else v) for n, v in kw.items()
                     if n in names and ctx.get_parameter_source(n) in _GIVEN}
            recipe = read_recipe(config) if config is not None else {}
            cfg = cls(**merge_recipe(cls, recipe, given, where=f"--config {config}"))
            return fn(**{settings_name: cfg}, **{k: v for k, v in kw.items() if k not in names})

        ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
        config_param = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],
                                         default=typer.Option(None, "--config", help=CONFIG_HELP, metavar="FILE"))
        params = [ctx_param, config_param, *fields,
                  *(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in others)]
        callback.__signature__ = inspect.Signature(params)
        callback.__annotations__ = {p.name: p.annotation for p in params}
        callback.__doc__ = fn.__doc__
        callback.__name__ = fn.__name__
        on.command(name)(guarded(callback))
        return fn

    return decorate
