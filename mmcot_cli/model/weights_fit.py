"""Does a saved model directory's config.json fit its safetensors weights? Checked before any weight is loaded.

`from_pretrained` re-initialises randomly whatever the checkpoint lacks (a deleted tensor, the extra layers of an
edited `num_layers`) and only logs it, so a tampered run would generate from random weights with exit 0. Here
the architecture the config describes is built on the meta device (no memory) and compared with the tensor
names and shapes in the safetensors headers (no tensor data is read): every tensor it needs must be stored
(tied aliases excepted), with the stored shape, and nothing stored may lack a place in it.
T5 runs (check_weights_fit: model.safetensors holds the fusion layers too) and decoder-only runs
(check_causal_weights_fit: the LM's weights in model.safetensors, the fusion layers in fusion.safetensors) are
checked alike when a run's model loads (generate, ask, train --resume/--init-from) and by import-run.
"""

from __future__ import annotations

from pathlib import Path

from mmcot_cli.errors import DataError, MMCoTError, first_line

RESTORE = "the config or the weights were edited or damaged; restore the run (or train it again)"


def stored_shapes(model_dir: Path, files: list[Path] | None = None, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """name → shape of every tensor in the directory's *.safetensors files (or `files`), from their headers only;
    each name after `prefix`."""
    from safetensors import SafetensorError, safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for shard in sorted(model_dir.glob("*.safetensors")) if files is None else files:
        try:
            with safe_open(shard, framework="pt") as fh:
                for key in fh.keys():
                    shapes[prefix + key] = tuple(int(x) for x in fh.get_slice(key).get_shape())
        except (SafetensorError, OSError, ValueError) as e:  # a header that lies about offsets or lengths
            raise DataError(f"{model_dir}: cannot load the model ({shard.name} is not a readable safetensors "
                            f"file: {first_line(e)})") from None
    return shapes


def expected_shapes(config) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """(name → shape the config's architecture holds, names that are tied aliases of another and need not be
    stored)."""
    import torch

    from mmcot_cli.model.fusion import MMCoTForConditionalGeneration, quiet_hf

    with torch.device("meta"), quiet_hf():
        model = MMCoTForConditionalGeneration(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    return shapes, set(getattr(model, "all_tied_weights_keys", None) or {})


def weights_misfit(config, stored: dict[str, tuple[int, ...]], weights_name: str) -> str | None:
    """What does not fit between a T5 run's `config` and the stored tensors, in words, or None when all fits."""
    from mmcot_cli.model.fusion import image_shape_of

    if image_shape_of(config) is None and any(k.startswith("fusion.") for k in stored):
        return ("config.json has no fusion settings (image_shape), but the weights hold fusion layers; the config "
                "was edited or damaged (restore it; it would run text-only)")
    expected, tied = expected_shapes(config)
    return shapes_misfit(expected, tied, stored, weights_name)


def shapes_misfit(expected: dict[str, tuple[int, ...]], tied: set[str], stored: dict[str, tuple[int, ...]],
                  weights_name: str) -> str | None:
    """What does not fit between the tensors an architecture holds and those stored: the first missing one, the
    first of another shape, the first without a place; None when they fit exactly."""
    missing = sorted(k for k in expected if k not in stored and k not in tied)
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        what = "fusion weights" if all(k.startswith("fusion.") for k in missing) else "weights"
        return f"{what} missing from {weights_name}: {missing[0]}{more} (needed by config.json); {RESTORE}"
    for key in sorted(k for k in stored if k in expected):
        if stored[key] != expected[key]:
            return (f"{key} has shape {list(stored[key])} in {weights_name} but config.json gives "
                    f"{list(expected[key])}; {RESTORE}")
    unexpected = sorted(k for k in stored if k not in expected)
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        return f"{weights_name} holds {unexpected[0]}{more}, which config.json has no place for; {RESTORE}"
    return None


def check_weights_fit(model_dir: str | Path, where: str | Path | None = None) -> None:
    """DataError naming `where` (default: the directory) unless config.json and the weights fit exactly."""
    from transformers import T5Config

    model_dir = Path(model_dir)
    where = model_dir if where is None else where
    try:
        config = T5Config.from_pretrained(model_dir)
        stored = stored_shapes(model_dir)
        problem = weights_misfit(config, stored, "the weights" if where != model_dir else "model.safetensors")
    except DataError:
        raise
    except (OSError, ValueError, TypeError, RuntimeError, KeyError, AttributeError) as e:  # values no model takes
        raise DataError(f"{model_dir / 'config.json'}: not a usable model config ({first_line(e)})") from None
    if problem is not None:
        raise DataError(f"{where}: {problem}")


def causal_misfit(model_dir: Path, config) -> str | None:
    """What does not fit in a decoder-only run's model directory: the LM's tensors (model*.safetensors) against
    the config's architecture, the fusion layers (fusion.safetensors) against its mmcot settings."""
    import torch
    from transformers import AutoModelForCausalLM

    from mmcot_cli.model.causal_lm import FUSION_WEIGHTS, CausalFusionLM
    from mmcot_cli.model.fusion import mmcot_settings, quiet_hf

    meta = mmcot_settings(config)
    with torch.device("meta"), quiet_hf():
        net = CausalFusionLM(AutoModelForCausalLM.from_config(config), meta.get("image_shape"),
                             fusion=meta.get("fusion") or "gated", fusion_layer=meta.get("fusion_layer"))
    fusion_file = model_dir / FUSION_WEIGHTS
    lm_files = [f for f in sorted(model_dir.glob("*.safetensors")) if f.name != FUSION_WEIGHTS]
    expected = {name: tuple(t.shape) for name, t in net.lm.state_dict().items()}
    tied = set(getattr(net.lm, "all_tied_weights_keys", None) or {})
    problem = shapes_misfit(expected, tied, stored_shapes(model_dir, lm_files), "model.safetensors")
    if problem is not None or (net.fusion is None and not fusion_file.exists()):
        return problem
    if net.fusion is None:
        return (f"config.json has no fusion settings (image_shape), but {FUSION_WEIGHTS} holds fusion layers; the "
                "config was edited or damaged (restore it; it would run text-only)")
    if not fusion_file.is_file():
        return f"fusion weights missing ({FUSION_WEIGHTS} is not there); {RESTORE}"
    expected = {f"fusion.{name}": tuple(t.shape) for name, t in net.fusion.state_dict().items()}
    return shapes_misfit(expected, set(), stored_shapes(model_dir, [fusion_file], "fusion."), FUSION_WEIGHTS)


def check_causal_weights_fit(model_dir: str | Path) -> None:
    """DataError naming the directory unless a decoder-only run's config.json and weights fit exactly."""
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    try:
        problem = causal_misfit(model_dir, AutoConfig.from_pretrained(model_dir))
    except DataError:
        raise
    except (OSError, ValueError, TypeError, RuntimeError, KeyError, AttributeError, MMCoTError) as e:
        # values no model takes: a negative width, an unknown model_type, a fusion layer past the last layer …
        raise DataError(f"{model_dir / 'config.json'}: not a usable model config ({first_line(e)})") from None
    if problem is not None:
        raise DataError(f"{model_dir}: {problem}")


def check_nothing_missing(weights: str | Path, info: dict) -> None:
    """A pretrained checkpoint (`train --text-model DIR` or a hub id) must hold every weight of its architecture,
    in the shapes its config.json gives: from_pretrained would initialise a lost or misshapen tensor randomly and
    train on (a run's model folder with a tensor removed trained silently). `info`: from_pretrained's loading info
    (output_loading_info=True, ignore_mismatched_sizes=True). The fusion layers, new in mmcot's model, are the only
    ones allowed to be absent."""
    mismatched = sorted(info.get("mismatched_keys", ()), key=lambda m: m[0])
    if mismatched:
        key, stored, wanted = mismatched[0]
        raise DataError(f"{weights}: {key} has shape {list(stored)} but config.json gives {list(wanted)}"
                        f"{f' ({len(mismatched)} such tensors)' if len(mismatched) > 1 else ''}; the config was "
                        "edited or belongs to another checkpoint")
    lost = sorted(k for k in info.get("missing_keys", ()) if not k.startswith("fusion."))
    if lost:
        shown = ", ".join(lost[:3]) + (" …" if len(lost) > 3 else "")
        raise DataError(f"{weights}: weights missing from the checkpoint ({len(lost)}): {shown}; they would be "
                        "trained from random values: restore the checkpoint's weight files")
