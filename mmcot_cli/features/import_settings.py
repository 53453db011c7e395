"""`mmcot import-features`' settings, apart from the importer (numpy) so the CLI starts without it."""

from __future__ import annotations

from dataclasses import dataclass

from mmcot_cli.data.records import split_list
from mmcot_cli.errors import UsageError
from mmcot_cli.registry.hub import REVISION_HELP
from mmcot_cli.settings import check_settings, setting


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
