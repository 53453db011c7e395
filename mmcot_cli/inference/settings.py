"""`mmcot generate` and `mmcot ask` settings: one field per option (mmcot_cli.settings), no torch.

The CLI's options, their checks and `--config` recipes come from these fields; the library (inference.generate,
inference.ask) takes the same objects, so a script and the command line validate alike."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmcot_cli.data.records import split_list
from mmcot_cli.errors import UsageError
from mmcot_cli.inference.sampling import Sampling
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.validate import (
    ALPHA_POLICIES,
    PROTOCOLS,
    check_device_name,
    check_seed,
    positive_float,
    positive_int,
    probability,
)

# "run": what the run was trained in (RunMeta.precision), on a device that has it; else fp32, bf16 or fp16 autocast
INFER_PRECISIONS = ("run", "fp32", "bf16", "fp16")


def _choices(value) -> list[str]:
    """--choices "north|south" (or a recipe's list) → ["north", "south"]."""
    return str(value).split("|") if isinstance(value, str) else [str(v) for v in value]


def _probability(flag, value):
    return probability(flag, value)


_PRECISION_HELP = ("Autocast for encoder, fusion and decoder alike: run (what the run was trained in; fp32 where "
                   "this device lacks it), fp32, bf16 or fp16 (a GPU). Recorded in the summary and every row.")
_DEVICE_HELP = "auto (the GPU when there is one), cpu, cuda, cuda:N or mps."


@dataclass
class GenerateConfig:
    """`mmcot generate`'s settings."""

    run: str = setting(help="RUN_DIR written by `mmcot train` (or its model/ directory).", metavar="RUN_DIR")
    data_dir: str = setting(help="DATA_DIR written by `mmcot prepare`.", flag="--data", metavar="DATA_DIR")
    splits: tuple[str, ...] = setting(("test",), "Split(s), comma-separated: e.g. train,val,test.", flag="--split",
                                      cli_type=str, parse=split_list, metavar="SPLITS")
    features: str | None = setting(None, "FEATURES_DIR from `mmcot extract` (default: the one the run was "
                                   "trained on).", metavar="FEATURES_DIR")
    rationales: str | None = setting(None, "Answer-stage runs: stage-1 RUN_DIR (its preds-<split>.jsonl) or a "
                                     "predictions file; read by qid. Default: the rationales the run was trained "
                                     "with.", metavar="PATH")
    out: str | None = setting(None, "Output JSONL (default RUN_DIR/preds-<split>.jsonl); with several splits use "
                              "a '{split}' placeholder.", short="-o", metavar="FILE")
    batch_size: int = setting(16, "Problems per generation batch.", check=positive_int)
    max_new_tokens: int | None = setting(None, "Tokens generated at most per problem (default: the run's max "
                                         "output length).", check=positive_int)
    num_beams: int = setting(1, "Beam search width; 1 = greedy.", check=positive_int)
    device: str = setting("auto", _DEVICE_HELP, check=check_device_name)
    precision: str = setting("run", _PRECISION_HELP, choices=INFER_PRECISIONS)
    limit: int | None = setting(None, "Only the first N records per split.", short="-n", check=positive_int)
    num_samples: int = setting(1, "Sample K texts per problem (teacher rationales); all kept under 'samples', "
                               "'prediction' is the first.", check=positive_int)
    temperature: float | None = setting(None, "Sampling temperature (0.7 when sampling and not given; giving it "
                                        "turns sampling on).", check=positive_float)
    top_p: float | None = setting(None, "Nucleus sampling threshold in (0, 1] (giving it turns sampling on).",
                                  check=_probability)
    seed: int | None = setting(None, "Seed for sampling (same seed, same samples).", check=check_seed)
    constrain: bool = setting(True, "Answer-giving runs: the answer sentence names one of the item's options "
                              "(recorded per row).")
    protocol: str = setting("mmcot", "mmcot or original: free decoding as the original (no --constrain; score "
                            "--protocol original adds its random A–E fallback). Recorded in every row.",
                            choices=PROTOCOLS)

    def __post_init__(self) -> None:
        self.splits = split_list(self.splits)
        check_settings(self)

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.num_samples, self.temperature, self.top_p, self.seed)


def _local_image(option: str, value: str | None) -> str | None:
    """--image names a local file: a URL is one line saying so (it read "file not found"), as is `-` (stdin)."""
    if value is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise UsageError(f"{option} {value}: a URL; ask reads a local image file (download it first)")
    if value == "-":
        raise UsageError(f"{option} -: ask reads an image file, not standard input (save the image to a file)")
    return value


@dataclass
class AskConfig:
    """`mmcot ask`'s settings."""

    rationale_run: str = setting(help="Stage-1 RUN_DIR (rationale generation).", metavar="RUN_DIR")
    answer_run: str = setting(help="Stage-2 RUN_DIR (answer inference).", metavar="RUN_DIR")
    question: str | None = setting(None, "The question text (required unless --questions).", metavar="TEXT")
    choices: list[str] | None = setting(None, "Options separated by '|', e.g. 'north|south' (required unless "
                                        "--questions).", cli_type=str, parse=_choices, metavar="A|B|…")
    context: str = setting("", "Text context (the ScienceQA hint).", metavar="TEXT")
    image: str | None = setting(None, "An image file: its row of the run's feature store when the store was "
                                "extracted from this very file, else encoded with each run's recorded vision "
                                "backbone.", metavar="FILE", check=_local_image)
    questions: str | None = setting(None, "Many questions, one JSON object per line: question, choices (a list "
                                    "or \"a|b\"), optional context, image (relative to the file's folder) and "
                                    "qid. The runs are loaded once; every line is checked first (a bad one is "
                                    "FILE:LINE and nothing is answered).", metavar="FILE.jsonl")
    random_init_vision: bool = setting(False, "Build the vision backbone with random weights (offline; the same "
                                       "seeded weights as `mmcot extract --random-init`).")
    vision_weights: str | None = setting(None, "Local path or hub id of the vision weights (as `mmcot extract "
                                         "--weights`; default: the run's recorded ones).", metavar="PATH")
    alpha: str | None = setting(None, "Transparent pixels of --image: original (alpha dropped, colour under it "
                                "kept, as the original's extraction) or white (default: the policy each run's "
                                "features were made with).", choices=ALPHA_POLICIES)
    max_new_tokens: int | None = setting(None, "Tokens generated at most per stage (default: each run's max "
                                         "output length).", check=positive_int)
    num_beams: int = setting(1, "Beam search width; 1 = greedy.", check=positive_int)
    device: str = setting("auto", _DEVICE_HELP, check=check_device_name)
    precision: str = setting("run", _PRECISION_HELP.replace(" and every row", ""), choices=INFER_PRECISIONS)
    constrain: bool = setting(True, "The answer names one of --choices.")

    def __post_init__(self) -> None:
        if self.choices is not None:
            self.choices = _choices(self.choices)
        check_settings(self)
        if self.questions is not None:
            given = [flag for flag, value in (("--question", self.question), ("--choices", self.choices),
                                              ("--context", self.context or None), ("--image", self.image))
                     if value is not None]
            if given:
                raise UsageError(f"--questions {self.questions} gives every question's fields; drop {given[0]}")
        elif self.question is None or self.choices is None:
            missing = "--question" if self.question is None else "--choices"
            raise UsageError(f"missing option {missing} (or --questions FILE.jsonl for many questions)")
