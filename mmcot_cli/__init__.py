"""mmcot: Multimodal-CoT toolkit (data, vision features, two-stage fusion training, generation, scoring)."""

__version__ = "0.1.0"

# What a plugin needs (see mmcot_cli/hookspecs.py and examples/plugin-template/).
from mmcot_cli.hookspecs import (  # noqa: E402
    TextBackbone,
    TextBuildOptions,
    VisionBackbone,
    VisionBuildOptions,
    hookimpl,
)

__all__ = ["TextBackbone", "TextBuildOptions", "VisionBackbone", "VisionBuildOptions", "hookimpl", "__version__"]
