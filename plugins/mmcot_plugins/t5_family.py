"""Built-in text backbones: pretrained T5-family checkpoints on the Hugging Face hub.

Each name maps to a hub id loaded with `from_pretrained` (the hub for users with internet, the local cache
otherwise). Any other hub id or local directory is accepted directly by `mmcot train --text-model`.
"""

from mmcot_cli.registry.hookspecs import TextBackbone, hookimpl

# name → (hub id, description)
T5_FAMILY = {
    "unifiedqa-t5-small": ("allenai/unifiedqa-t5-small", "UnifiedQA T5-small (60M)"),
    "unifiedqa-t5-base": ("allenai/unifiedqa-t5-base", "UnifiedQA T5-base (220M); the paper's v1 backbone"),
    "unifiedqa-t5-large": ("allenai/unifiedqa-t5-large", "UnifiedQA T5-large (770M)"),
    "flan-t5-base": ("google/flan-t5-base", "FLAN-T5 base (250M)"),
    "flan-t5-large": ("google/flan-t5-large", "FLAN-T5 large (780M)"),
    "flan-alpaca-base": ("declare-lab/flan-alpaca-base", "FLAN-Alpaca base (250M); the reference's current backbone"),
    "flan-alpaca-large": ("declare-lab/flan-alpaca-large", "FLAN-Alpaca large (780M)"),
}


@hookimpl
def register_text_backbones(register):
    for name, (hub_id, description) in T5_FAMILY.items():
        register(TextBackbone(name=name, weights=hub_id, description=description))
