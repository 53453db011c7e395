"""Inference: predictions of a trained run (`mmcot generate`), sampled teacher rationales, and `mmcot ask`.

Modules: settings (GenerateConfig, AskConfig: one field per option, torch-free), generate (batched predictions →
preds-<split>.jsonl), ask (custom questions + image, both runs loaded once), ask_images (--image features: the
run's stored row when its store holds that image, else encoded), questions (--questions FILE.jsonl, checked line
by line), sampling (the --num-samples/--temperature/--top-p settings).
May import: model, features, runs, registry, data and the ground floor; never training or above.
"""
