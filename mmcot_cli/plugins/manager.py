"""The plugin manager: the built-in plugins are registered in code, third-party ones load through the `mmcot`
entry-point group; both then answer the same hooks (as simonw/llm's DEFAULT_PLUGINS and its entry points)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from pathlib import Path

import pluggy

from mmcot_cli.errors import UnknownBackboneError, UsageError
from mmcot_cli.plugins import hookspecs
from mmcot_cli.plugins.hookspecs import (
    TextBackbone,
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
)
# Where the built-ins sit in a source checkout: plugins/mmcot_plugins/ beside mmcot_cli/.
SOURCE_TREE_PLUGINS = Path(__file__).resolve().parents[2] / "plugins" / "mmcot_plugins"

_pm: pluggy.PluginManager | None = None


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


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs.HookSpecs)
        for name, module in DEFAULT_PLUGINS:
            pm.register(_import_builtin(module), name=name)
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)  # third-party plugins (a name taken is skipped)
        pm.check_pending()  # a misspelled hook name in any plugin is an error, not silence
        _pm = pm
    return _pm


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object or module at runtime (tests, notebooks)."""
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    pm.check_pending()


def unregister_plugin(plugin: object) -> None:
    get_plugin_manager().unregister(plugin)


def _collect(hook_name: str) -> dict:
    pm = get_plugin_manager()
    found: dict = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or getattr(impl.plugin, "__name__", "?")

        def register(backbone, _plugin=plugin_name):
            if not backbone.plugin:
                object.__setattr__(backbone, "plugin", _plugin)
            found[backbone.name] = backbone  # later registrations (third-party) override earlier ones

        impl.function(register=register)
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
    variants (libraries answer with their whole model list: kilobytes)."""
    try:
        return backbone.build(options)
    except (UsageError, RuntimeError, ValueError, KeyError):
        if options.variant and options.variant not in backbone.variants:
            raise UsageError(f"backbone {backbone.name}: unknown --variant {options.variant!r}; its variants: "
                             f"{', '.join(backbone.variants) or '(none)'}") from None
        raise


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
