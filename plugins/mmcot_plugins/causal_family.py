"""Built-in text backbones: pretrained decoder-only LMs on the Hugging Face hub (loaded as AutoModelForCausalLM).

Each name maps to a hub id loaded with `from_pretrained` (the hub for users with internet, the local cache
otherwise). Any other hub id or local directory whose config transformers loads as a causal LM is accepted directly
by `mmcot train --text-model`. The Llama 3.2 repositories are gated on the hub: accept their licence there and log in
(`hf auth login`) before the first download.
"""

from mmcot_cli.registry.hookspecs import TextBackbone, hookimpl

# name → (hub id, description)
CAUSAL_FAMILY = {
    "qwen2.5-0.5b": ("Qwen/Qwen2.5-0.5B", "Qwen2.5 0.5B base (decoder-only)"),
    "qwen2.5-0.5b-instruct": ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5 0.5B Instruct (decoder-only, chat template)"),
    "qwen2.5-1.5b": ("Qwen/Qwen2.5-1.5B", "Qwen2.5 1.5B base (decoder-only)"),
    "qwen2.5-1.5b-instruct": ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5 1.5B Instruct (decoder-only, chat template)"),
    "qwen3-0.6b": ("Qwen/Qwen3-0.6B", "Qwen3 0.6B (decoder-only, chat template)"),
    "smollm2-360m": ("HuggingFaceTB/SmolLM2-360M", "SmolLM2 360M base (decoder-only)"),
    "smollm2-360m-instruct": ("HuggingFaceTB/SmolLM2-360M-Instruct",
                              "SmolLM2 360M Instruct (decoder-only, chat template)"),
    "smollm2-1.7b": ("HuggingFaceTB/SmolLM2-1.7B", "SmolLM2 1.7B base (decoder-only)"),
    "smollm2-1.7b-instruct": ("HuggingFaceTB/SmolLM2-1.7B-Instruct",
                              "SmolLM2 1.7B Instruct (decoder-only, chat template)"),
    "llama-3.2-1b": ("meta-llama/Llama-3.2-1B", "Llama 3.2 1B base (decoder-only; gated on the hub)"),
    "llama-3.2-1b-instruct": ("meta-llama/Llama-3.2-1B-Instruct",
                              "Llama 3.2 1B Instruct (decoder-only, chat template; gated on the hub)"),
    "llama-3.2-3b": ("meta-llama/Llama-3.2-3B", "Llama 3.2 3B base (decoder-only; gated on the hub)"),
    "llama-3.2-3b-instruct": ("meta-llama/Llama-3.2-3B-Instruct",
                              "Llama 3.2 3B Instruct (decoder-only, chat template; gated on the hub)"),
}


@hookimpl
def register_text_backbones(register):
    for name, (hub_id, description) in CAUSAL_FAMILY.items():
        register(TextBackbone(name=name, weights=hub_id, description=description, kind="causal"))
