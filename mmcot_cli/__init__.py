"""mmcot: Multimodal-CoT toolkit (data, vision features, two-stage fusion training, generation, scoring)."""

__version__ = "0.1.0"
