"""Validation during `mmcot train`: the stage's predictions through the same code path as `mmcot generate`, and
the metric that picks the best model (answer accuracy, strict; rationale ROUGE-L against the target text)."""

from __future__ import annotations

from mmcot_cli import progress
from mmcot_cli.data.answers import answer_index
from mmcot_cli.data.prompts import gives_answer
from mmcot_cli.evaluation.original_metrics import original_validation_rouge_l
from mmcot_cli.evaluation.rationale_metrics import rouge_l
from mmcot_cli.model.answer_constraint import AnswerConstraints
from mmcot_cli.model.generation import feature_getter, generate_texts
from mmcot_cli.training.config import TrainConfig
from mmcot_cli.training.inputs import StageData


def validation_predictions(model, tokenizer, data: StageData, indices: list[int], store, cfg: TrainConfig,
                           device) -> dict[str, str]:
    """qid → generated text for data.examples[indices], through the same code path as `mmcot generate`: answers
    decoded within each item's options as `generate` decodes them (free under `--protocol original`, as the
    original validates), so the model kept is the best at what `generate` will ask of it."""
    qids = [data.examples[i].qid for i in indices]
    constraints = None
    if gives_answer(cfg.prompt_format) and cfg.protocol != "original":
        by_qid = {str(r["qid"]): r for r in data.records}
        constraints = AnswerConstraints(tokenizer, cfg.prompt_format, [len(by_qid[q]["choices"]) for q in qids])
    with progress.suspended():  # the training bar keeps the screen
        texts = generate_texts(model, tokenizer, [data.sources[i] for i in indices],
                               feature_batch=feature_getter(store, qids) if store is not None else None,
                               batch_size=cfg.eval_batch_size, max_input_len=cfg.max_input_len,
                               max_new_tokens=cfg.max_output_len, num_beams=cfg.num_beams, device=device,
                               constraints=constraints)
    return dict(zip(qids, texts))


def compute_metric(stage: str, preds: dict[str, str], data: StageData, protocol: str = "mmcot") -> float:
    """Answer stage: accuracy of the extracted answer letter. Rationale stage: ROUGE-L F (×100) vs the target,
    mmcot's on normalised text or, under `--protocol original`, the original's validation rougeL."""
    qids = [e.qid for e in data.examples]
    if stage == "answer":
        # Strict: no parsable letter counts as wrong (no random fallback during model selection).
        by_qid = {str(r["qid"]): r for r in data.records}
        correct = 0
        for q in qids:
            idx = answer_index(preds[q], len(by_qid[q]["choices"]))
            correct += int(idx is not None and idx == int(by_qid[q]["answer"]))
        return 100.0 * correct / max(1, len(qids))
    # Against the target text ("Solution: …"), like the reference's validation.
    metric = original_validation_rouge_l if protocol == "original" else rouge_l
    value = metric([preds[q] for q in qids], [data.targets[q] for q in qids])
    return float(value) if value is not None else 0.0
