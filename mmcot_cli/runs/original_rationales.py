"""The original Multimodal-CoT's stage-1 outputs → a rationale file keyed by qid
(`mmcot rationales import FILE --format mm-cot --data DATA --split S --out R.jsonl`).

The original's main.py writes `predictions_ans_test.json` (`{num_fail, scores, preds, labels}`, one entry per
problem of its `--test_split`) and, for rationale formats, `predictions_ans_eval.json` (`{preds, labels}`, its
`--val_split`, "val" by default): `preds[i]` belongs to the i-th qid of that pid_splits list, by position only,
and stage 2 inserts it verbatim. Here position i becomes the i-th record of DATA_DIR's split (prepare keeps the
pid_splits order), and the result is the same predictions JSONL `mmcot generate` writes for a rationale run
(`{qid, prediction, stage: "rationale"}`), so `--rationales` reads it by qid like any stage-1 output.

Refused with one line: a count other than the split's, and an order other than the split's. The order is
checked against `labels` (the decoded gold targets, "Solution: {solution}" or "Solution: {lecture}
{solution}."): after NFKC, lower case and keeping only ASCII letters and digits (tokenization changes spacing
and punctuation, and output_len may truncate), each label must be a prefix of its record's gold text. A file
without labels has its count checked only (a warning says so). Each row carries `source` {format, path, sha256,
split, index}, which the rationale provenance in run_config.json reports.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Callable

from mmcot_cli.data.answers import ANSWER_PATTERN
from mmcot_cli.data.records import load_records
from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.io import read_json, sha256_file, write_jsonl
from mmcot_cli.output_guard import input_files
from mmcot_cli.outputs import claim_output_file
from mmcot_cli.registry.hub import parse_source, repo_file

FORMAT = "mm-cot"
PREDICTION_FILES = ("predictions_ans_eval.json", "predictions_ans_test.json")  # what main.py writes
# More label mismatches than this share of the checked positions is a different order (a shifted or swapped
# file mismatches nearly everywhere); fewer are reported as a warning (tokenizer normalisation).
MAX_MISMATCH_SHARE = 0.01
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def comparable(text: str) -> str:
    """Text as far as a decoded T5 target still carries it: NFKC, lower case, ASCII letters and digits only."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).lower())


def gold_texts(record: dict) -> list[str]:
    """The stage-1 targets the original could have decoded for this record (QCM-E, QCM-LE), comparable; a
    newline became a literal backslash-n in the original's prompts."""
    lecture, solution = (str(record.get(k) or "").replace("\n", "\\n") for k in ("lecture", "solution"))
    return [comparable(solution), comparable(f"{lecture} {solution}")]


def label_matches(label: str, record: dict) -> bool:
    text = comparable(label)
    text = text[len("solution"):] if text.startswith("solution") else text
    return any(g.startswith(text) for g in gold_texts(record))


def read_original_predictions(path: Path) -> tuple[list[str], list[str] | None]:
    """(preds, labels or None) of one predictions_ans_*.json, type-checked."""
    obj = read_json(path)
    if not isinstance(obj, dict) or "preds" not in obj:
        raise DataError(f"{path}: not the original's predictions file (expected a JSON object with 'preds', as "
                        "main.py writes predictions_ans_eval.json / predictions_ans_test.json)")
    preds, labels = obj["preds"], obj.get("labels")
    for name, value in (("preds", preds), ("labels", labels)):
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise DataError(f"{path}: '{name}' must be a list of strings")
    if labels is not None and len(labels) != len(preds):
        raise DataError(f"{path}: {len(preds)} preds but {len(labels)} labels")
    return preds, labels


def check_order(path: Path, labels: list[str], records: list[dict], split: str,
                warn: Callable[[str], None] | None) -> int:
    """Refuse labels that are not the split's gold targets in the split's order; returns the mismatch count."""
    if labels and all(ANSWER_PATTERN.search(label) and not label.strip().startswith("Solution")
                      for label in labels):
        raise DataError(f"{path}: its labels are answers (\"The answer is (X)\"): an answer-stage file; import the "
                        "rationale run's predictions_ans_*.json")
    checked = [i for i, label in enumerate(labels) if comparable(label).removeprefix("solution")]
    wrong = [i for i in checked if not label_matches(labels[i], records[i])]
    if checked and len(wrong) > MAX_MISMATCH_SHARE * len(checked):
        i = wrong[0]
        raise DataError(f"{path}: not in the order of split {split!r}: {len(wrong)} of {len(checked)} labels differ "
                        f"from their problem's gold text, first at position {i} (qid {records[i]['qid']}: "
                        f"label {labels[i][:60]!r}); was it written for another split?")
    if wrong and warn:
        warn(f"{path}: {len(wrong)} of {len(checked)} labels differ from their problem's gold text (first at "
             f"position {wrong[0]}, qid {records[wrong[0]]['qid']}); order accepted")
    return len(wrong)


def import_original_rationales(source: str | Path, data_dir: str | Path, split: str, out: str | Path,
                               warn: Callable[[str], None] | None = None, revision: str | None = None) -> dict:
    """Write the original's positional stage-1 predictions for `split` as a rationale file keyed by qid. SOURCE
    may be a hub id naming the file in a released run folder (registry/hub.py)."""
    hub = parse_source(str(source), revision)
    if hub is None and revision is not None:
        raise UsageError(f"--revision applies to a hub id (org/name/path), not the local file {source}")
    inputs = {"SOURCE": None if hub else source, "--data": data_dir, **input_files(data_dir, [f"{split}.jsonl"])}
    with claim_output_file(out, "rationales", inputs=inputs):  # held: a second writer of OUT is refused
        return _import_held(source, hub, data_dir, split, out, warn)


def _import_held(source, hub, data_dir, split: str, out, warn: Callable[[str], None] | None) -> dict:
    records = load_records(data_dir, split)
    hub_info = None
    if hub is None:
        source = Path(source)
    else:
        source, hub_info = repo_file(hub, PREDICTION_FILES, "predictions file")
    preds, labels = read_original_predictions(source)
    if len(preds) != len(records):
        raise DataError(f"{source}: {len(preds)} predictions, but split {split!r} of {data_dir} has {len(records)} "
                        "problems (the original writes one per problem of its --val_split (eval) or --test_split "
                        "(test), in pid_splits order)")
    mismatches = None
    if labels is None:
        if warn:
            warn(f"{source}: no 'labels': the count matches, but the order cannot be checked")
    else:
        mismatches = check_order(source, labels, records, split, warn)
    digest = sha256_file(source)
    origin = {"format": FORMAT, "path": str(source.resolve()), "sha256": digest, "split": split,
              **({"hub": hub_info} if hub_info else {})}
    rows = [{"qid": str(r["qid"]), "prediction": p, "stage": "rationale", "source": {**origin, "index": i}}
            for i, (r, p) in enumerate(zip(records, preds))]
    write_jsonl(out, rows)
    return {"source": str(source), "hub": hub_info, "format": FORMAT, "sha256": digest, "data": str(data_dir),
            "split": split,
            "out": str(out), "rationales": len(rows), "empty": sum(1 for p in preds if not p.strip()),
            "order_checked": labels is not None, "label_mismatches": mismatches}
