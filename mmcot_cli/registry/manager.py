"""The plugin manager: the built-in plugins are registered in code, third-party ones load through the `mmcot`
entry-point group; both then answer the same hooks (as simonw/llm's DEFAULT_PLUGINS and its entry points).

A plugin that misbehaves never takes the others down (docs/PLUGINS.md): one that cannot be imported (a missing
dependency, an error at import), names an unknown hook, or whose hook raises is skipped with one warning line and
listed by `mmcot backbones` with its reason; what a plugin registers is checked (a VisionBackbone / TextBackbone with
a usable name); a name registered twice keeps the first registration in PRECEDENCE order. What a backbone's build
and encode return is checked at the boundary (`build_vision_encoder`, `encode_checked`, `build_text_model`): a
failure is one PluginError line naming the backbone and its plugin.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import pluggy

from mmcot_cli.errors import (
    MMCoTError,
    PluginError,
    ShapeError,
    UnknownBackboneError,
    UsageError,
    first_line,
)
from mmcot_cli.registry import hookspecs
from mmcot_cli.registry.environment import install_problem
from mmcot_cli.registry.hookspecs import (
    TextBackbone,
    TextBuildOptions,
    VisionBackbone,
    VisionBuildOptions,
    VisionEncoder,
)

ENTRY_POINT_GROUP = "mmcot"  # third-party plugins only

# The one list of built-in plugins: (plugin name shown by `mmcot backbones`, module). No install metadata is
# needed, so a source tree run without `pip install` (PYTHONPATH, `python -m mmcot_cli`) has them too.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("patches", "mmcot_plugins.patches"),
    ("detr", "mmcot_plugins.detr"),
    ("clip", "mmcot_plugins.clip"),
    ("vit", "mmcot_plugins.vit"),
    ("resnet", "mmcot_plugins.resnet"),
    ("t5_family", "mmcot_plugins.t5_family"),
    ("scratch_t5", "mmcot_plugins.scratch_t5"),
    ("causal_family", "mmcot_plugins.causal_family"),
    ("scratch_llama", "mmcot_plugins.scratch_llama"),
)
# Where the built-ins sit in a source checkout: plugins/mmcot_plugins/ beside mmcot_cli/.
SOURCE_TREE_PLUGINS = Path(__file__).resolve().parents[2] / "plugins" / "mmcot_plugins"

# Which registration of a backbone name is used (stated by `mmcot backbones`, docs/PLUGINS.md). Installing a
# package must never change what an existing name (and so an existing feature store or run) means.
PRECEDENCE = ("a backbone name registered twice keeps its first registration: built-in plugins first, then "
              "third-party plugins in entry-point name order; the others are not used")

_pm: pluggy.PluginManager | None = None
_sources: dict[str, str] = {}  # plugin name → where it comes from (module, or the entry point's module:attr)
_problems: dict[tuple[str, str, str], str] = {}  # (plugin, source, what) → reason, in order met; each warned once


def _import_builtin(module: str):
    """Import a built-in plugin module; in a source checkout that was not installed, `mmcot_plugins` is loaded
    from plugins/mmcot_plugins/ (the package's import name differs from its folder's)."""
    if "mmcot_plugins" not in sys.modules and importlib.util.find_spec("mmcot_plugins") is None:
        init = SOURCE_TREE_PLUGINS / "__init__.py"
        spec = importlib.util.spec_from_file_location("mmcot_plugins", init,
                                                      submodule_search_locations=[str(SOURCE_TREE_PLUGINS)])
        if spec is None or spec.loader is None or not init.is_file():
            raise ModuleNotFoundError(f"mmcot's built-in plugins (mmcot_plugins) are not installed and not at "
                                      f"{SOURCE_TREE_PLUGINS}", name="mmcot_plugins")
        package = importlib.util.module_from_spec(spec)
        sys.modules["mmcot_plugins"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(module)


def third_party_entry_points() -> list:
    """The `mmcot` entry points of the installed distributions, in name order (the PRECEDENCE among them)."""
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e)[:200]}"


def _report(plugin: str, what: str, reason: str, source: str | None = None) -> None:
    """Record a plugin problem and warn about it once per process (stderr, one line)."""
    source = source or _sources.get(plugin, "?")
    if (plugin, source, what) in _problems:
        return
    _problems[(plugin, source, what)] = reason
    line = f"plugin {plugin} ({source}): {what}: {reason}"
    try:
        sys.stderr.write(f"warning: {' '.join(line.split())}\n")
    except (OSError, ValueError):
        pass


def _add(pm: pluggy.PluginManager, name: str, source: str, load: Callable[[], Any]) -> None:
    """Import and register one plugin; any failure skips it with one warning naming it and why."""
    if pm.has_plugin(name):
        _report(name, "not loaded", f"the plugin name {name!r} is taken by {_sources[name]}", source)
        return
    _sources[name] = source
    try:
        plugin = load()
        pm.register(plugin, name=name)
    except Exception as e:  # ImportError (a missing dependency), an error at import, a bad hook signature
        _report(name, "not loaded", _reason(e))
        return
    unknown = [hook.name for hook in pm.get_hookcallers(plugin) or [] if not hook.has_spec()]
    if unknown:  # a misspelled hook would otherwise be silence
        pm.unregister(plugin)
        _report(name, "not loaded", f"unknown hook {unknown[0]!r} (mmcot's hooks: register_vision_backbones, "
                                    "register_text_backbones)")


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs.HookSpecs)
        for name, module in DEFAULT_PLUGINS:
            _add(pm, name, module, lambda module=module: _import_builtin(module))
        try:
            entry_points = third_party_entry_points()
        except Exception as e:  # broken install metadata: the built-ins still work
            entry_points = []
            _report("(entry points)", "not read", _reason(e))
        for ep in entry_points:
            _add(pm, ep.name, ep.value, ep.load)
        _pm = pm
    return _pm


def plugin_problems() -> list[dict]:
    """Every plugin problem met so far (loading, and the hooks after `vision_backbones()`/`text_backbones()`):
    {plugin, source, what, reason}."""
    get_plugin_manager()
    return [{"plugin": plugin, "source": source, "what": what, "reason": reason}
            for (plugin, source, what), reason in _problems.items()]


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object or module at runtime (tests, notebooks); it comes after the installed ones in
    PRECEDENCE. A misspelled hook raises pluggy.PluginValidationError (and the plugin is not registered)."""
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    _sources.setdefault(pm.get_name(plugin), getattr(plugin, "__name__", type(plugin).__name__))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError:
        pm.unregister(plugin)
        raise


def unregister_plugin(plugin: object) -> None:
    get_plugin_manager().unregister(plugin)


_BACKBONE_TYPES = {"register_vision_backbones": VisionBackbone, "register_text_backbones": TextBackbone}


def _registration_error(backbone: Any, kind: type) -> str | None:
    """Why a registered object is unusable, or None."""
    if not isinstance(backbone, kind):
        return f"registered a {type(backbone).__name__}, expected a {kind.__name__}"
    if not isinstance(backbone.name, str) or not backbone.name.strip():
        return f"registered a {kind.__name__} without a name"
    if kind is VisionBackbone:
        shape = backbone.feature_shape
        if (not isinstance(shape, (tuple, list)) or len(shape) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
            return f"vision backbone {backbone.name!r}: feature_shape {shape!r} is not (tokens, dim)"
    if kind is TextBackbone and backbone.kind not in ("seq2seq", "causal"):
        return f"text backbone {backbone.name!r}: kind {backbone.kind!r} is not 'seq2seq' or 'causal'"
    if not (callable(backbone.build) or (kind is TextBackbone and backbone.build is None)):
        return f"backbone {backbone.name!r}: build is not callable"
    return None


def _collect(hook_name: str) -> dict:
    """Every backbone the plugins register through `hook_name`, by name (PRECEDENCE decides a name given twice).
    A hook that raises or registers something unusable loses what it registered, with one warning."""
    pm = get_plugin_manager()
    kind = _BACKBONE_TYPES[hook_name]
    order = {name: i for i, name in enumerate(_sources)}  # built-ins, then entry points by name (PRECEDENCE)
    found: dict = {}
    impls = sorted(getattr(pm.hook, hook_name).get_hookimpls(),
                   key=lambda impl: order.get(pm.get_name(impl.plugin) or "", len(order)))
    for impl in impls:
        plugin_name = pm.get_name(impl.plugin) or getattr(impl.plugin, "__name__", "?")
        registered: list = []
        try:
            impl.function(register=registered.append)
            errors = [err for err in (_registration_error(b, kind) for b in registered) if err]
            if errors:
                raise PluginError(errors[0])
        except Exception as e:
            reason = str(e) if isinstance(e, PluginError) else f"raised {_reason(e)}"
            _report(plugin_name, hook_name, f"{reason}; none of its backbones from this hook are used")
            continue
        for backbone in registered:
            if not backbone.plugin:
                object.__setattr__(backbone, "plugin", plugin_name)
            first = found.get(backbone.name)
            if first is not None and first.plugin != backbone.plugin:
                _report(plugin_name, f"{kind.__name__} {backbone.name!r} not used",
                        f"the name is taken by plugin {first.plugin} ({_sources.get(first.plugin, '?')}); "
                        f"{PRECEDENCE}")
                continue
            found[backbone.name] = backbone
    return found


def vision_backbones() -> dict[str, VisionBackbone]:
    return dict(sorted(_collect("register_vision_backbones").items()))


def text_backbones() -> dict[str, TextBackbone]:
    return dict(sorted(_collect("register_text_backbones").items()))


def get_vision_backbone(name: str) -> VisionBackbone:
    backbones = vision_backbones()
    if name not in backbones:
        raise UnknownBackboneError("vision backbone", name, list(backbones))
    return backbones[name]


# Random-init encoders are built under this fixed seed, so every shard run, a resumed run and `mmcot ask`
# rebuild the very same weights (otherwise rows of one store would come from different random networks).
RANDOM_INIT_SEED = 0


def build_vision_encoder(backbone: VisionBackbone, options: VisionBuildOptions) -> VisionEncoder:
    """Build a backbone's encoder; random init is deterministic and leaves the global RNG untouched."""
    if backbone.weight_free:
        if options.weights:
            raise UsageError(f"backbone {backbone.name} is weight-free; --weights does not apply")
        return _build(backbone, dataclasses.replace(options, random_init=False))
    if not options.random_init:
        return _build(backbone, options)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        return _build(backbone, options)


def _build(backbone: VisionBackbone, options: VisionBuildOptions) -> VisionEncoder:
    """backbone.build; a variant the library does not know is one short line listing the backbone's own
    variants (libraries answer with their whole model list: kilobytes); anything else it raises is one line
    naming the plugin."""
    try:
        encoder = backbone.build(options)
    except Exception as e:
        if not isinstance(e, MMCoTError) and install_problem(e):  # a broken torchvision …: that line, not the plugin's
            raise MMCoTError(install_problem(e)) from None
        _build_failed(backbone, options, e)
    missing = [name for name in ("feature_shape", "preprocess", "encode") if not hasattr(encoder, name)]
    if missing:
        raise PluginError(f"{describe(backbone)}: build returned a {type(encoder).__name__} without "
                          f"{', '.join(missing)} (expected a vision encoder)")
    shape = encoder.feature_shape
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise PluginError(f"{describe(backbone)}: its encoder's feature_shape {shape!r} is not (tokens, dim)")
    return encoder


def _build_failed(backbone: VisionBackbone, options: VisionBuildOptions, e: Exception) -> None:
    """Raise the one line for a failed build: an unknown variant (libraries answer with their whole model list),
    mmcot's own error, or the plugin's failure."""
    if isinstance(e, (UsageError, RuntimeError, ValueError, KeyError)) and options.variant \
            and options.variant not in backbone.variants:
        raise UsageError(f"backbone {backbone.name}: unknown --variant {options.variant!r}; its variants: "
                         f"{', '.join(backbone.variants) or '(none)'}") from None
    if isinstance(e, MMCoTError):
        raise e
    raise PluginError(f"{describe(backbone)}: build failed: {_reason(e)}") from None


def describe(backbone: VisionBackbone | TextBackbone) -> str:
    """"backbone NAME (plugin P)": how every plugin error names its source."""
    return f"backbone {backbone.name} (plugin {backbone.plugin or '?'})"


def call_plugin(backbone: VisionBackbone | TextBackbone, what: str, fn: Callable, *args) -> Any:
    """fn(*args) of a plugin's object; an exception other than mmcot's own is one PluginError line."""
    try:
        return fn(*args)
    except MMCoTError:
        raise
    except Exception as e:
        if install_problem(e):
            raise MMCoTError(install_problem(e)) from None
        raise PluginError(f"{describe(backbone)}: {what} failed: {_reason(e)}") from None


def encode_checked(backbone: VisionBackbone, encoder: VisionEncoder, pixels, shape: Sequence[int],
                   labels: Sequence[str]):
    """encoder.encode(pixels), checked at the boundary: a float tensor (len(labels), *shape) of finite values.
    `labels` name the batch's images (qids) in messages."""
    import torch

    out = call_plugin(backbone, "encode", encoder.encode, pixels)
    n, shape = len(labels), tuple(shape)
    if not isinstance(out, torch.Tensor):
        raise PluginError(f"{describe(backbone)}: encode returned a {type(out).__name__}, expected a tensor "
                          f"({n}, {shape[0]}, {shape[1]})")
    if tuple(out.shape) != (n, *shape):
        raise ShapeError(f"{describe(backbone)} produced features {tuple(out.shape)} for a batch of {n}, "
                         f"expected (B, {shape[0]}, {shape[1]})")
    if not out.is_floating_point():
        raise PluginError(f"{describe(backbone)}: encode returned {out.dtype} features, expected floating point")
    finite = torch.isfinite(out.detach()).flatten(1).all(1)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0])
        raise PluginError(f"{describe(backbone)}: encode returned non-finite values (NaN or inf) for "
                          f"{labels[first]}")
    return out


def build_text_model(backbone: TextBackbone, options: TextBuildOptions) -> tuple[Any, Any]:
    """A text backbone's custom build: (language model, tokenizer) as TextBackbone.build states, or one PluginError
    line naming the plugin."""
    built = call_plugin(backbone, "build", backbone.build, options)
    if not isinstance(built, tuple) or len(built) != 2:
        raise PluginError(f"{describe(backbone)}: build returned a {type(built).__name__}, expected "
                          "(model, tokenizer)")
    return built


def looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def get_text_backbone(name_or_path: str) -> TextBackbone:
    """A registered name, or any local directory / hub id accepted as-is."""
    backbones = text_backbones()
    if name_or_path in backbones:
        return backbones[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return TextBackbone(name=str(path), weights=str(path), description="local directory", plugin="(path)")
    if looks_like_hub_id(name_or_path):
        return TextBackbone(name=name_or_path, weights=name_or_path, description="hub id", plugin="(hub)")
    raise UnknownBackboneError(
        "text backbone", name_or_path, list(backbones) + ["<local directory>", "<org/name hub id>"]
    )


def _reset_for_tests() -> None:
    global _pm
    _pm = None
    _sources.clear()
    _problems.clear()
