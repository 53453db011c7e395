"""Parameter-efficient adapters on the text model. Modules: lora (`--lora-r`: peft's LoRA injected into T5 or a
decoder-only LM, the fusion layers kept whole; save/load of base weights + adapter, or merged weights).
Part of the model package: the same imports as it.
"""
