"""Inference: predictions of a trained run (`mmcot generate`), sampled teacher rationales, and `mmcot ask`.

Modules: settings (GenerateConfig, AskConfig: one field per option, torch-free), generate (batched predictions → preds-<split>.jsonl), ask (one custom question + image), sampling
(the --num-samples/--temperature/--top-p settings).
May import: model, features, runs, registry, data and the ground floor; never training or above.
"""
