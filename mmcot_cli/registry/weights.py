"""Where a vision backbone's weights come from: written once here, used by every builder (as timm's builder and
open_clip's factory resolve `pretrained` in one place).

`--weights` / `VisionBuildOptions.weights` is read as, in this order:

    (none)              the backbone's default: its default hub id or pretrained tag     kind "default"
    --random-init       the architecture with seeded random weights, never the network    kind "random-init"
    an existing dir     a saved model directory (save_pretrained / timm save_for_hf / open_clip)  kind "local-dir"
    an existing file    a checkpoint for the chosen architecture                          kind "file"
    /… ./… ~/…          a path that does not exist → UsageError "no such file or directory"
    org/name, hf-hub:…  a hub repository                                                  kind "hub"
    anything else       a pretrained tag of the library (timm model tag, open_clip tag)   kind "tag"

Loading itself stays the backbone's business; `loading(...)` turns whatever its library raises into one line
that names the backbone and the weights, with the offline hint.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mmcot_cli.errors import MMCoTError, UsageError, first_line, torch_load_problem
from mmcot_cli.registry.hub import HUB_PATH, require_pretrained
from mmcot_cli.registry.manager import get_text_backbone, get_vision_backbone

RANDOM_INIT = "random-init"  # the manifest's `weights` for random-init encoders
BOTH_GIVEN = "give either --random-init or --weights, not both"
OFFLINE_HINT = "offline? fill the cache once with the network, or use --weights PATH (a local copy) or --random-init"
KINDS = ("default", "random-init", "local-dir", "file", "hub", "tag")


@dataclass(frozen=True)
class WeightSource:
    kind: str  # one of KINDS
    value: str  # the resolved path, hub id (without "hf-hub:"), tag, or the default; "" for random init
    given: str = ""  # what the user wrote (a path with ~ expanded), for messages and the manifest

    @property
    def is_path(self) -> bool:
        return self.kind in ("local-dir", "file")


def check_not_both(random_init: bool, weights: str | None, backbone: str | None = None) -> None:
    if random_init and weights:
        raise UsageError(f"backbone {backbone}: {BOTH_GIVEN}" if backbone else BOTH_GIVEN)


def resolve_weights(backbone: str, weights: str | None, random_init: bool = False, default: str = "") -> WeightSource:
    """Classify what the user asked for (see the module docstring); touches only the local file system."""
    check_not_both(random_init, weights, backbone)
    if random_init:
        return WeightSource("random-init", "", RANDOM_INIT)
    if not weights:
        return WeightSource("default", default, default)
    path = Path(weights).expanduser()
    if path.is_dir():
        return WeightSource("local-dir", str(path.resolve()), str(path))
    if path.is_file():
        return WeightSource("file", str(path.resolve()), str(path))
    if weights.startswith(("/", ".", "~")):
        raise UsageError(f"backbone {backbone}: --weights {weights}: no such file or directory")
    if weights.startswith("hf-hub:"):
        return WeightSource("hub", weights[len("hf-hub:"):], weights)
    return WeightSource("hub" if "/" in weights else "tag", weights, weights)


@contextlib.contextmanager
def loading(backbone: str, what: str, arch: str | None = None) -> Iterator[None]:
    """Any non-mmcot error while loading `what` becomes one line: what failed, the library's first line, the hint
    (network down, unknown id, incompatible checkpoint all look alike to the user). The hub client's "Retrying
    in 8s" warnings are held back meanwhile, and so is what a library logs to the root logger (open_clip's
    `logging.error("Failed to download weights …")` printed "ERROR:root: …" above that line and left a stderr
    handler on the root logger): that one line says it all."""
    from huggingface_hub.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    root = logging.getLogger()
    quiet = logging.NullHandler()  # with no handler, logging.error() configures a stderr one on the root logger;
    root.addHandler(quiet)  # the records still reach handlers of their own loggers (timm's missing-keys check)
    try:
        yield
    except MMCoTError:
        raise
    except Exception as e:
        where = f"backbone {backbone} ({arch})" if arch else f"backbone {backbone}"
        problem = torch_load_problem(e)  # a pickle refused by weights_only: never torch's advice to unblock it
        hint = "" if problem != first_line(e) else f" ({OFFLINE_HINT})"
        raise MMCoTError(f"{where}: cannot load {what}: {problem}{hint}") from None
    finally:
        root.removeHandler(quiet)
        hf_logging.set_verbosity(verbosity)


def timm_hub_id(source: WeightSource, arch: str) -> str | None:
    """The hub repo timm downloads `source` from (None: a local path, or weights from a URL)."""
    from timm.models import get_pretrained_cfg

    if source.kind == "hub":
        return source.value
    if source.kind not in ("default", "tag"):
        return None
    cfg = get_pretrained_cfg(arch if source.kind == "default" else source.value)
    return getattr(cfg, "hf_hub_id", None) or None


def require_vision_weights(backbone: str, repo_id: str | None, arch: str | None = None) -> None:
    """Pretrained weights from hub repo `repo_id` that are neither cached nor reachable fail here, in one line with
    the offline hint, before the model is built (no loader retries); None (weights from a URL): nothing checked."""
    if repo_id:
        where = f"backbone {backbone} ({arch})" if arch else f"backbone {backbone}"
        require_pretrained(repo_id, where, OFFLINE_HINT)


def require_backbone_weights(name: str, weights: str | None = None, variant: str | None = None,
                             random_init: bool = False) -> None:
    """Pretrained weights of vision backbone `name` from a hub repo (`--weights org/name`, or one its registration
    lists in `pretrained_repos`) that are neither cached nor reachable fail here, in one line with the offline
    hint, before torch or the backbone's library load (`extract`, `demo --pretrained` and `ask` call it first).
    Random init, a local path, a URL or a name the registration does not list: nothing checked here (the
    builder's own check still runs)."""
    backbone = get_vision_backbone(name)
    if backbone.weight_free or random_init:
        return
    source = resolve_weights(name, weights)
    repos = backbone.pretrained_repos
    if source.kind == "hub":
        match = HUB_PATH.match(source.value)
        repo = match.group(1) if match else None
    elif source.kind == "default":
        repo = repos.get(variant or "")
    elif source.kind == "tag":
        repo = (variant and repos.get(f"{variant}/{source.value}")) or repos.get(source.value)
    else:
        return
    require_vision_weights(name, repo, variant)


TEXT_WEIGHTS_HINT = ("fill the cache once with the network, or pass a downloaded model folder as --text-model DIR "
                     "(t5-scratch, llama-scratch need no weights)")


def require_text_weights(text_model: str) -> None:
    """A registered name or hub id whose weights are neither cached nor reachable fails here, in one line with the
    hint, before torch or transformers load (`train` calls it first) and before their retries. A from-scratch
    backbone or a local directory: nothing checked."""
    backbone = get_text_backbone(text_model)
    weights = backbone.weights or ""
    match = HUB_PATH.match(weights)
    if backbone.build is None and match and not match.group(2) and not Path(weights).expanduser().exists():
        require_pretrained(weights, f"text backbone {backbone.name!r}", TEXT_WEIGHTS_HINT)
