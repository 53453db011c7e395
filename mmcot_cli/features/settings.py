"""The settings of `mmcot extract` and `mmcot import-features`: one field per option (mmcot_cli.settings), apart from
the extractor and the importer (numpy, torch) so the CLI starts without them."""

from __future__ import annotations

from dataclasses import dataclass, field

from mmcot_cli.data.records import split_list
from mmcot_cli.errors import UsageError
from mmcot_cli.registry.hub import REVISION_HELP
from mmcot_cli.registry.weights import check_not_both
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.validate import ALPHA_POLICIES, check_device_name, non_negative_int, positive_int

DEFAULT_CHUNK_SIZE = 256  # images per store chunk file (features.store writes them)
STORE_DTYPES = ("float16", "float32")  # features.store.DTYPES: what a store may hold


def parse_shard(text) -> tuple[int, int] | None:
    """'K/N' → (K, N) with 0-based K (SLURM array task ids 0..N-1); a recipe may give [K, N]."""
    if text is None or text == "":
        return None
    if isinstance(text, (list, tuple)):
        text = "/".join(map(str, text))
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {text}: need 0 <= K < N (K counts from 0)")
    return k, n


def _check_shard(flag, value) -> None:
    k, n = value
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"{flag} {k}/{n}: need 0 <= K < N")


_ALPHA_HELP = ("Transparent pixels: original drops alpha as the original's convert(\"RGB\") (colour under them kept, "
               "often black: features match the released files) or white composites onto white (default: the "
               "store's policy when adding to one, else the backbone's: original for detr/vit/clip/resnet, white "
               "otherwise).")


@dataclass
class ExtractConfig:
    """`mmcot extract`'s settings (`--merge` aside: it takes none of them)."""

    backbone: str | None = setting(None, "Vision backbone (see `mmcot backbones`); required unless --merge.",
                                   short="-b", metavar="NAME")
    out: str | None = setting(None, "FEATURES_DIR (created, or added to / resumed); required unless --merge.",
                              short="-o", metavar="FEATURES_DIR")
    data_dir: str | None = setting(None, "DATA_DIR written by `mmcot prepare`.", flag="--data", metavar="DATA_DIR")
    splits: tuple[str, ...] = setting(("test",), "Comma-separated splits, e.g. train,val,test.", flag="--split",
                                      cli_type=str, parse=split_list, metavar="SPLITS")
    images_dir: str | None = setting(None, "Read images from IMAGES/<qid>/<file> instead of the paths recorded in "
                                     "DATA_DIR.", flag="--images", metavar="IMAGES")
    batch_size: int = setting(16, "Images per forward pass.", check=positive_int)
    workers: int | None = setting(None, "DataLoader workers decoding images (default: min(4, CPUs)).",
                                  check=non_negative_int)
    device: str = setting("auto", "auto (the GPU when there is one), cpu, cuda, cuda:N or mps.",
                          check=check_device_name)
    dtype: str = setting("float16", "Stored dtype.", choices=STORE_DTYPES)
    shard: tuple[int, int] | None = setting(None, "K/N: extract only chunks with index % N == K (K from 0, e.g. "
                                            "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}).", cli_type=str,
                                            parse=parse_shard, check=_check_shard, metavar="K/N")
    random_init: bool = setting(False, "Random weights; never touches the network.")
    weights: str | None = setting(None, "Local path or hub id / pretrained tag instead of the backbone's default "
                                  "weights.", metavar="PATH")
    variant: str | None = setting(None, "Backbone variant (e.g. clip ViT-L-14).", metavar="NAME")
    skip_bad: bool = setting(False, "Record unreadable images in the manifest (they read as zeros) and go on, "
                             "instead of failing.")
    chunk_size: int = setting(DEFAULT_CHUNK_SIZE, "Images per resumable chunk file.", check=positive_int)
    limit: int | None = setting(None, "Only the first N images of each split (a smoke run); recorded in the store, "
                                "so train and generate say so when a record needs a row beyond them.",
                                check=positive_int, metavar="N")
    alpha: str | None = setting(None, _ALPHA_HELP, choices=ALPHA_POLICIES)
    # Records per split, for library use without a DATA_DIR (notebooks, tests); None: load_records(data_dir).
    records: dict[str, list[dict]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.splits = split_list(self.splits)
        if isinstance(self.shard, (str, list)):
            self.shard = parse_shard(self.shard)
        check_settings(self)
        check_not_both(self.random_init, self.weights)

    def check_inputs(self) -> None:
        """What an extraction (not a --merge) needs besides valid values."""
        if not self.backbone or not self.out:
            raise UsageError("--backbone and --out are required (or --merge FEATURES_DIR)")
        if not self.splits:
            raise UsageError("no split given")
        if self.records is None and not self.data_dir:
            raise UsageError("--data DATA_DIR is required")


@dataclass
class ImportFeaturesConfig:
    """`mmcot import-features`' settings: one field per option (mmcot_cli.settings)."""

    file: str = setting(help="The release's feature file: .npy (e.g. detr.npy) or .pth (vit.pth); or a hub id with "
                        "the file name, e.g. cooelf/vision_features/vit.pth (Hugging Face cache).", argument=True,
                        metavar="FILE")
    name_map: str = setting(help="name_map.json: {qid: row} (a local file or a hub id).", metavar="FILE")
    data_dir: str = setting(help="DATA_DIR written by `mmcot prepare`.", flag="--data", metavar="DATA_DIR")
    backbone: str = setting(help="The backbone the file was extracted with.", metavar="NAME")
    out: str = setting(help="FEATURES_DIR to write (or add splits to).", metavar="FEATURES_DIR")
    splits: tuple[str, ...] = setting(("train", "val", "test"), "Split(s), comma-separated.", flag="--split",
                                      cli_type=str, parse=split_list, metavar="SPLITS")
    dtype: str | None = setting(None, "float16 or float32 (default: the file's).", choices=("float16", "float32"))
    revision: str | None = setting(None, REVISION_HELP, metavar="REV")

    def __post_init__(self) -> None:
        self.splits = split_list(self.splits)
        if not self.splits:
            raise UsageError("--split is empty")
        check_settings(self)
