"""The model: the fusion model (one readable file), T5 checkpoint directories, batching and batched generation
shared by training and inference, and import of the original's fine-tuned checkpoints.

Modules: fusion (MMCoTForConditionalGeneration: the T5 fusion model in one file), text/ (the text-model seam:
TextModel, its T5 and decoder-only implementations, build/save/load of a run's model), t5_dirs (hub layouts of local T5
dirs), batching (tokenized examples, dynamic padding, the length-grouped sampler), generation (device, batched
generate from prompts), answer_constraint (answers decoded within the item's option letters), original_checkpoint
(`mmcot import-run`), weights_fit (config.json and the stored weights must fit before any weight loads),
causal_lm (CausalFusionLM: a decoder-only LM with the gated fusion at decoder layer K or an image prefix),
causal_batching (chat-template prompts, prompt+target rows, left-padded generation batches),
causal_dirs (build, save and load of a decoder-only run model), precision (the one autocast context of training,
validation and generation), adapters/ (lora: LoRA through peft on either family; base weights + adapter, or merged).
May import: runs, registry, data and the ground floor; never training, inference, evaluation or above.
"""
