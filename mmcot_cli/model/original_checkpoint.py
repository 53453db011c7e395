"""The original Multimodal-CoT's fine-tuned checkpoints → ordinary mmcot RUN_DIRs (`mmcot import-run`).

A checkpoint directory as the original's `Seq2SeqTrainer.save_model` wrote it: a plain T5 config.json (the image
shape is not in it), `pytorch_model.bin` (a pickled state dict; read with `weights_only=True`, which executes no
pickled code, and accepted only as a flat name → tensor mapping) or `*.safetensors`, and tokenizer files.

Two key layouts carry the same fusion math (encoder output → image_dense → single-head MHA → sigmoid gate):
the first release (v1) has the fusion layers at the top level (`image_dense.*`, `mha_layer.*`, `gate_dense.*`),
the current code (v2) inside the encoder (`encoder.image_dense.*` …). They map one to one onto mmcot's
`fusion.image_proj`, `fusion.attention` (also an nn.MultiheadAttention, so `in_proj_*` / `out_proj.*` keep their
names) and `fusion.gate`. A checkpoint without fusion keys imports as a text-only run. Every other key must be a
T5 parameter of the config, and every T5 parameter must be there (tied copies excepted): nothing starts random.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mmcot_cli.data.prompts import split_format
from mmcot_cli.errors import DataError, UsageError, first_line, torch_load_problem
from mmcot_cli.io import atomic_dir, read_json, sha256_file
from mmcot_cli.model.t5_dirs import (
    check_t5_dir,
    checkpoint_files,
    head_is_tied,
    load_tokenizer,
    weight_files,
)
from mmcot_cli.model.weights_fit import check_weights_fit
from mmcot_cli.output_guard import check_output_dir, has_content, mark_output_dir
from mmcot_cli.outputs import claim_output_dir
from mmcot_cli.registry.hub import REVISION_HELP, checkpoint_folder, parse_source
from mmcot_cli.registry.manager import get_vision_backbone
from mmcot_cli.runs.meta import RunMeta
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.validate import positive_int

LAYOUTS = {"v1": "", "v2": "encoder."}  # where each release put the fusion layers
FUSION_KEYS = {  # the original's name (after the layout prefix) → mmcot's
    "image_dense.weight": "fusion.image_proj.weight",
    "image_dense.bias": "fusion.image_proj.bias",
    "mha_layer.in_proj_weight": "fusion.attention.in_proj_weight",
    "mha_layer.in_proj_bias": "fusion.attention.in_proj_bias",
    "mha_layer.out_proj.weight": "fusion.attention.out_proj.weight",
    "mha_layer.out_proj.bias": "fusion.attention.out_proj.bias",
    "gate_dense.weight": "fusion.gate.weight",
    "gate_dense.bias": "fusion.gate.bias",
}
FUSION_MODULES = ("image_dense.", "mha_layer.", "gate_dense.")
# Copies of shared.weight that a checkpoint may or may not hold (transformers re-ties them on load).
TIED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
# transformers 4.x wrote this unused tensor into some T5 checkpoints; T5 ignores it on load too.
IGNORED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)
# stage → (prompt format, new tokens): the original's scripts pass --output_len 512 / 64 to generate() as
# max_length, which counts the decoder start token, so at most 511 / 63 tokens are generated.
STAGE_FORMATS = {"rationale": ("QCM-E", 511), "answer": ("QCMG-A", 63)}


@dataclass
class ImportRunConfig:
    """`mmcot import-run`'s settings: one field per option (mmcot_cli.settings)."""

    checkpoint: str = setting(help="The original's checkpoint directory (config.json, pytorch_model.bin or "
                              "*.safetensors, tokenizer files), or a hub id with the folder inside the repo, e.g. "
                              "cooelf/mm-cot/models/mm-cot-base-rationale (downloaded into the Hugging Face cache; "
                              "HF_HUB_OFFLINE=1 reads the cache only).", argument=True, metavar="CHECKPOINT")
    stage: str = setting(help="rationale (stage 1) or answer (stage 2).", choices=tuple(STAGE_FORMATS))
    out: str = setting(help="RUN_DIR to write (must not exist or be empty).", metavar="RUN_DIR")
    backbone: str | None = setting(None, "Vision backbone whose features the checkpoint fuses (detr, vit, clip, "
                                   "resnet …); omit for text-only.", metavar="NAME")
    image_tokens: int | None = setting(None, "Image tokens P per example (default: the backbone's declared "
                                       "feature shape).", check=positive_int)
    prompt_format: str | None = setting(None, "Default: QCM-E (rationale), QCMG-A (answer), as the original "
                                        "scripts.", metavar="FORMAT")
    use_caption: bool = setting(False, "The checkpoint was trained with captions in the context (the original's "
                                "--use_caption).")
    max_input_len: int = setting(512, "Source tokens kept, as the original's --input_len.", check=positive_int)
    revision: str | None = setting(None, REVISION_HELP, metavar="REV")

    def __post_init__(self) -> None:
        check_settings(self)


def read_state_dict(path: Path) -> dict:
    """name → tensor from one weights file; a pickle is loaded without executing code and must be flat."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable safetensors file ({first_line(e)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses anything but tensors and plain containers
        raise DataError(f"{path}: not a loadable state dict ({torch_load_problem(e)})") from None
    if not isinstance(state, dict):
        raise DataError(f"{path}: holds a {type(state).__name__}, expected a flat name → tensor mapping")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise DataError(f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor "
                            "(only flat name → tensor state dicts are imported)")
    return state


def split_fusion(state: dict, where: Path) -> tuple[dict, dict, str | None]:
    """(T5 keys, fusion keys renamed to mmcot's, layout "v1"/"v2"/None for text-only)."""
    found = {layout: [k for k in state if k.startswith(tuple(prefix + m for m in FUSION_MODULES))]
             for layout, prefix in LAYOUTS.items()}
    layouts = [layout for layout, keys in found.items() if keys]
    if len(layouts) > 1:
        raise DataError(f"{where}: fusion layers in both key layouts ({found['v1'][0]}, {found['v2'][0]})")
    if not layouts:
        return dict(state), {}, None
    layout = layouts[0]
    prefix = LAYOUTS[layout]
    fusion, t5 = {}, {}
    for key, value in state.items():
        if key in found[layout]:
            name = key[len(prefix):]
            if name not in FUSION_KEYS:
                raise DataError(f"{where}: unexpected fusion key {key}")
            fusion[FUSION_KEYS[name]] = value
        else:
            t5[key] = value
    missing = [prefix + k for k, v in FUSION_KEYS.items() if v not in fusion]
    if missing:
        raise DataError(f"{where}: fusion key(s) missing from the checkpoint: {', '.join(missing)}")
    return t5, fusion, layout


# Sizes a T5 config.json gives; a hostile value (10**12 layers) would otherwise build modules for ever.
CONFIG_SIZES = {"num_layers": 1024, "num_decoder_layers": 1024, "num_heads": 4096, "d_model": 1 << 20,
                "d_kv": 1 << 20, "d_ff": 1 << 22, "vocab_size": 1 << 24, "relative_attention_num_buckets": 1 << 16}


def check_config_sizes(config_dict: dict, path: Path) -> None:
    for key, limit in CONFIG_SIZES.items():
        value = config_dict.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise DataError(f"{path}: {key} is {str(value)[:40]!r}, expected a whole number in [1, {limit}]")


def t5_parameter_shapes(config_dict: dict, where: Path) -> dict:
    """name → shape of every T5 parameter the config describes (built on the meta device: no memory)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    check_config_sizes(config_dict, where / "config.json")
    try:
        config = T5Config.from_dict(config_dict)
        with torch.device("meta"):
            model = T5ForConditionalGeneration(config)
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"{where / 'config.json'}: not a usable T5 config ({first_line(e)})") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_t5_keys(t5_state: dict, expected: dict, tied: bool, where: Path) -> dict:
    """The T5 tensors, checked against the model the config describes; returns what to save."""
    optional = set(TIED_COPIES) | ({"lm_head.weight"} if tied else set())
    unexpected = sorted(k for k in t5_state if k not in expected and k not in IGNORED)
    if unexpected:
        raise DataError(f"{where}: unexpected key(s) for this T5 config: {', '.join(unexpected[:4])}")
    missing = sorted(k for k in expected if k not in t5_state and k not in optional)
    if missing:
        raise DataError(f"{where}: key(s) missing from the checkpoint: {', '.join(missing[:4])}")
    for key, tensor in t5_state.items():
        if key in expected and tuple(tensor.shape) != expected[key]:
            raise DataError(f"{where}: {key} has shape {list(tensor.shape)}, the config says {list(expected[key])}")
    drop = set(IGNORED) | set(TIED_COPIES)
    if tied and "lm_head.weight" in t5_state:
        if not t5_state["lm_head.weight"].equal(t5_state["shared.weight"]):
            raise DataError(f"{where}: config.json ties lm_head to the embeddings (no tie_word_embeddings: false) "
                            "but the checkpoint's lm_head.weight differs from shared.weight")
        drop.add("lm_head.weight")  # the same tensor (a .bin holds every tied copy)
    return {k: v for k, v in t5_state.items() if k not in drop}


def image_shape_for(fusion: dict, cfg: ImportRunConfig, where: Path) -> tuple[int, int] | None:
    """(P, D_img): D from image_dense's weight, P from --image-tokens or the backbone's declared shape."""

    if not fusion:
        if cfg.backbone or cfg.image_tokens:
            raise UsageError(f"{where}: a text-only checkpoint (no fusion layers); drop --backbone/--image-tokens")
        return None
    width = int(fusion["fusion.image_proj.weight"].shape[1])
    if not cfg.backbone:
        raise UsageError(f"{where}: fuses image features of width {width}; name their backbone with --backbone")
    backbone = get_vision_backbone(cfg.backbone)
    tokens, dim = backbone.feature_shape
    if dim != width:
        raise DataError(f"{where}: image_dense takes features of width {width} but backbone {backbone.name} "
                        f"produces width {dim} (shape {list(backbone.feature_shape)})")
    if cfg.image_tokens is not None and cfg.image_tokens < 1:
        raise UsageError("--image-tokens must be at least 1")
    return (int(cfg.image_tokens or tokens), width)


def build_imported_model(ckpt: Path, state: dict, config_dict: dict, image_shape):
    """An MMCoTForConditionalGeneration holding exactly `state` (mmcot names), via from_pretrained so untied
    heads stay untied and scaling follows the checkpoint's own config.json."""
    import tempfile

    from safetensors.torch import save_file
    from transformers import T5Config

    from mmcot_cli.model.fusion import MMCoTForConditionalGeneration, quiet_hf, with_mmcot_settings

    config = with_mmcot_settings(T5Config.from_dict(config_dict), image_shape)
    with tempfile.TemporaryDirectory(prefix="mmcot-import-") as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, f"{tmp}/model.safetensors", metadata={"format": "pt"})
        raw = {**config_dict, "architectures": ["MMCoTForConditionalGeneration"], "mmcot": config.mmcot}
        (Path(tmp) / "config.json").write_text(json.dumps(raw))
        check_weights_fit(tmp, where=ckpt)  # a tensor missing from the checkpoint is never initialised randomly
        with quiet_hf():
            model = MMCoTForConditionalGeneration.from_pretrained(tmp)
    loaded = model.state_dict()
    for key, value in state.items():  # no silent re-init, no tying that overwrote a tensor
        if not loaded[key].equal(value.to(loaded[key].dtype)):
            raise DataError(f"{ckpt}: {key} did not load as stored (tied to another tensor?)")
    return model.eval()


def import_run(cfg: ImportRunConfig) -> dict:
    """Convert the checkpoint directory (local or a hub id) into RUN_DIR (model/ + run_config.json; held while
    written); returns a summary."""
    if cfg.stage not in STAGE_FORMATS:
        raise UsageError(f"unknown stage {cfg.stage!r}; choose one of: {', '.join(STAGE_FORMATS)}")
    hub = parse_source(cfg.checkpoint, cfg.revision)  # None: a local folder
    if hub is None and cfg.revision is not None:
        raise UsageError(f"--revision applies to a hub id (org/name/path), not the local folder {cfg.checkpoint}")
    out = Path(cfg.out)
    local = None if hub else Path(cfg.checkpoint).expanduser()
    check_output_dir(out, "import-run", inputs={"CHECKPOINT": local})
    if has_content(out):  # an import never replaces a run, not even another import
        raise UsageError(f"--out {out}: already exists and is not empty; choose another --out")
    with claim_output_dir(out, "import-run", inputs={"CHECKPOINT": local}):
        if has_content(out):  # written by another process between the check and the lock
            raise UsageError(f"--out {out}: already exists and is not empty; choose another --out")
        hub_info = None
        if hub is None:
            ckpt = local
        else:  # checked --out first: a download of gigabytes should not end in a usage error
            ckpt, hub_info = checkpoint_folder(hub, checkpoint_files)
        return _import_held(cfg, ckpt, out, hub_info)


def _import_held(cfg: ImportRunConfig, ckpt: Path, out: Path, hub_info: dict | None) -> dict:
    from mmcot_cli.model.text.runs import save_run_model

    default_format, out_len = STAGE_FORMATS[cfg.stage]
    prompt_format = cfg.prompt_format or default_format
    split_format(prompt_format)  # unknown formats fail here with the known ones listed
    layout_info = check_t5_dir(ckpt)
    files = weight_files(ckpt)
    state: dict = {}
    for path in files:
        state.update(read_state_dict(path))
    config_dict = read_json(ckpt / "config.json")
    tied = head_is_tied(config_dict)
    t5_state, fusion, layout = split_fusion(state, ckpt)
    image_shape = image_shape_for(fusion, cfg, ckpt)
    t5_state = check_t5_keys(t5_state, t5_parameter_shapes(config_dict, ckpt), tied, ckpt)
    model = build_imported_model(ckpt, {**t5_state, **fusion}, config_dict, image_shape)
    del state
    tokenizer = load_tokenizer(ckpt)
    source = {"path": str(ckpt.resolve()), "files": {p.name: sha256_file(p) for p in files},
              "layout": layout, "tied_head": tied, "tokenizer": layout_info["tokenizer"],
              **({"hub": hub_info} if hub_info else {})}
    meta = RunMeta(stage=cfg.stage, prompt_format=prompt_format, text_backbone=str(ckpt.resolve()),
                   use_caption=cfg.use_caption, max_input_len=cfg.max_input_len, max_output_len=out_len,
                   vision_backbone=cfg.backbone if image_shape else None,
                   vision_alpha="original" if image_shape else None,  # it was trained on the original's features
                   feature_shape=list(image_shape) if image_shape else None, created_by="mmcot import-run",
                   imported_from=source)
    with atomic_dir(out) as tmp:
        save_run_model(model, tokenizer, tmp / "model", meta.model_meta())
        meta.save(tmp)
        mark_output_dir(tmp, "import-run")
    return {"run": str(out), "stage": cfg.stage, "prompt_format": prompt_format, "layout": layout or "text-only",
            "tied_head": tied, "image_shape": list(image_shape) if image_shape else None,
            "vision_backbone": meta.vision_backbone, "source": source,
            "parameters": sum(p.numel() for p in model.parameters())}
