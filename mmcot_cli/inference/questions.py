"""The questions `mmcot ask` answers: one from its flags, or many from `--questions FILE.jsonl`.

One JSON object per line, with the fields the flags of one question have: `question` (text), `choices` (a list
of 2 to 5 options, or one string "a|b|c" as --choices takes), optional `context` (the hint), `image` (a file; a
relative path is read from the questions file's folder) and `qid` (a string or integer; default: the line
number). Any other key is refused (a misspelt `choice` would otherwise be a missing field). Every line is checked,
and every image it names decoded, before a model is loaded: a bad line is one error naming FILE:LINE, and nothing
is answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from mmcot_cli.data.images import ImageError, open_image
from mmcot_cli.errors import DataError, UsageError
from mmcot_cli.io import jsonl_lines

FIELDS = ("question", "choices", "context", "image", "qid")


@dataclass(frozen=True)
class Question:
    """A DATA_DIR-shaped record (no gold answer) and the image file it asks about, if any."""

    record: dict
    image: str | None = None


def ask_record(question: str, choices: Sequence[str], context: str = "", qid: str = "ask") -> dict:
    """A DATA_DIR-shaped record for one user question (no gold answer: `answer` is a placeholder)."""
    choices = [str(c).strip() for c in choices]
    if not question.strip():
        raise UsageError("--question is empty")
    if not 2 <= len(choices) <= 5 or not all(choices):
        raise UsageError(f"--choices needs 2 to 5 non-empty options separated by '|', got {len(choices)}")
    return {"qid": qid, "split": "ask", "question": question.strip(), "hint": context.strip(), "caption": "",
            "choices": choices, "answer": 0, "lecture": "", "solution": "", "image": None, "image_paths": []}


def _text(obj: dict, key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        got = "missing" if key not in obj else f"a {type(value).__name__}"
        raise DataError(f"{where}: `{key}` must be a string ({got})")
    return value


def _choices(obj: dict, where: str) -> list[str]:
    value = obj.get("choices")
    if isinstance(value, str):
        return value.split("|")
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return value
    got = "missing" if "choices" not in obj else f"a {type(value).__name__}"
    raise DataError(f"{where}: `choices` must be a list of strings or one string \"a|b|c\" ({got})")


def _qid(obj: dict, lineno: int, where: str) -> str:
    value = obj.get("qid", lineno)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise DataError(f"{where}: `qid` must be a non-empty string or an integer")
    return str(value).strip()


def _question(obj, lineno: int, where: str, folder: Path) -> Question:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(k for k in obj if k not in FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field {unknown[0]!r} (a question has {', '.join(FIELDS)})")
    qid = _qid(obj, lineno, where)
    try:
        record = ask_record(_text(obj, "question", where), _choices(obj, where), _text(obj, "context", where, ""),
                            qid)
    except UsageError as e:  # the flags' wording, for a field of this line
        raise DataError(f"{where}: {str(e).replace('--question', '`question`').replace('--choices', '`choices`')}"
                        ) from None
    image = obj.get("image")
    if image is None:
        return Question(record)
    if not isinstance(image, str) or not image.strip():
        raise DataError(f"{where}: `image` must be a file path (a string) or null")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", image):
        raise DataError(f"{where}: `image` {image!r} is a URL; ask reads local image files (download it first)")
    path = Path(image).expanduser()
    path = path if path.is_absolute() else folder / path
    try:
        open_image(path, qid)  # missing, corrupt or oversized: named now, before any model is loaded
    except ImageError as e:
        raise DataError(f"{where}: {e}") from None
    return Question(record, str(path))


def read_questions(path: str | Path) -> list[Question]:
    """Every question of a JSONL file, checked; a bad line raises DataError naming FILE:LINE."""
    path = Path(path)
    questions: list[Question] = []
    seen: dict[str, str] = {}
    for line in jsonl_lines(path, "questions file"):
        if line.error is not None:
            raise line.error
        question = _question(line.value, line.lineno, line.where, path.parent)
        qid = question.record["qid"]
        if qid in seen:
            raise DataError(f"{line.where}: qid {qid!r} again (first at {seen[qid]}); give each question its own")
        seen[qid] = line.where
        questions.append(question)
    if not questions:
        raise DataError(f"{path}: no questions (one JSON object per line: {', '.join(FIELDS)})")
    return questions
