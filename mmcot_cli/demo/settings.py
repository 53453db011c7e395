"""`mmcot demo`'s settings: one field per option (mmcot_cli.settings), no torch.

The command's options, their checks, its help and `--config` recipes come from DemoSettings' fields; from them it
builds what the library runs: the demo's DemoConfig (mmcot_cli.demo.run) or, with --ablation, AblationConfig
(mmcot_cli.demo.ablation). The fields are the command line's (--quick / --tiny, --pretrained, --sequential), so a
recipe reads as the command it stands for: `tiny: true`, `problems: 40`."""

from __future__ import annotations

from dataclasses import dataclass

from mmcot_cli.demo.ablation import AblationConfig
from mmcot_cli.demo.run import DEMO_TEXT_MODELS, DemoConfig
from mmcot_cli.errors import UsageError
from mmcot_cli.settings import check_settings, setting
from mmcot_cli.training.config import FUSIONS
from mmcot_cli.validate import PROTOCOLS, check_device_name, check_seed, non_negative_int, positive_int


@dataclass
class DemoSettings:
    """`mmcot demo`'s settings (mmcot_cli.settings)."""

    out: str | None = setting(None, "Output folder (an earlier demo output there is replaced once the new run has "
                              "finished; an interrupted rerun leaves it as it was); default demo-out, or "
                              "ablation-out with --ablation.", metavar="DIR")
    quick: bool = setting(False, "A smaller, shorter run (about 1–2 minutes) for smoke tests.")
    tiny: bool = setting(False, "Seconds-long run of the same pipeline (tests); learns little.")
    backbone: str = setting("patches", "Vision backbone: patches (weight-free) or any registered one, e.g. vit "
                            "(built with random weights unless --pretrained).", metavar="NAME")
    pretrained: bool = setting(False, "Build a backbone with weights from its pretrained weights (needs them "
                               "locally) instead of random init.", off_flag="--random-init")
    seed: int = setting(0, "Seed for the benchmark and training.", check=check_seed)
    device: str = setting("auto", "Where extraction, training and generation run: auto (the GPU when there is "
                          "one), cpu or cuda. Training uses deterministic kernels, so a rerun with the same seed on "
                          "the same device gives the same scores.", check=check_device_name)
    generate_only: bool = setting(False, "Only write the synthetic benchmark (ScienceQA layout) into --out.")
    n_problems: int | None = setting(None, "Override the benchmark size.", flag="--problems", check=positive_int)
    sequential: bool = setting(False, "Run the multimodal and text-only pipelines one after the other in this "
                               "process instead of side by side in two processes.")
    threads: int | None = setting(None, "torch threads per pipeline (default: half the CPUs side by side; torch's "
                                  "default with --sequential).", check=positive_int)
    ablation: bool = setting(False, "The paper's ablations instead: one-stage QCM→A / QCM→RA / QCM→AR, two-stage "
                             "text-only / + captions / + vision; writes ablation.md (comparison tables) and "
                             "report.html.")
    text_model: str = setting("t5-scratch", "t5-scratch, or llama-scratch: the same benchmark on a decoder-only LM "
                              "built from scratch.", choices=DEMO_TEXT_MODELS)
    fusion: str = setting("gated", "Decoder-only: gated (at --fusion-layer) or prefix.", choices=FUSIONS)
    fusion_layer: int | None = setting(None, "Decoder-only, gated: the fused decoder layer (default: the middle "
                                       "one).", check=non_negative_int)
    protocol: str = setting("mmcot", "mmcot or original: train, generate and score under it, as `--protocol` on "
                            "those commands (original: the original code's training, free decoding, its A–E answer "
                            "fallback and get_scores ROUGE-L as the headline). Recorded "
                            "in demo.json, every run and every prediction.", choices=PROTOCOLS)
    native_kernels: bool = setting(False, "On a CPU, train with this CPU's fastest kernels instead of the portable "
                                   "ones (ATen AVX2, MKL COMPATIBLE, oneDNN AVX2) that give the same tables on "
                                   "every x86-64 CPU: 1.6–2× faster training, but the digits then "
                                   "depend on the CPU. Recorded in demo.json (cpu_numerics).")

    def __post_init__(self) -> None:
        check_settings(self)
        if self.quick and self.tiny:
            raise UsageError("--quick and --tiny are exclusive")
        if self.ablation and self.protocol != "mmcot":
            raise UsageError("--protocol original applies to the demo's two pipelines; --ablation trains and "
                             "compares its settings under --protocol mmcot")
        if self.ablation and self.native_kernels:
            raise UsageError("--native-kernels applies to the demo's two pipelines; --ablation trains its settings "
                             "with the portable CPU kernels")

    @property
    def size(self) -> str:
        """The size's name (a key of mmcot_cli.demo.run.SIZES)."""
        return "tiny" if self.tiny else "quick" if self.quick else "default"

    def demo_config(self) -> DemoConfig:
        return DemoConfig(out=self.out or "demo-out", size=self.size, backbone=self.backbone,
                          random_init=not self.pretrained, seed=self.seed, generate_only=self.generate_only,
                          n_problems=self.n_problems, parallel=not self.sequential, threads=self.threads,
                          device=self.device, text_model=self.text_model, fusion=self.fusion,
                          fusion_layer=self.fusion_layer, protocol=self.protocol,
                          portable_kernels=not self.native_kernels)

    def ablation_config(self) -> AblationConfig:
        """--ablation's settings (the ablations train t5-scratch on CPU with patches features: the options about
        backbones, devices and the pipelines' processes are the demo's)."""
        return AblationConfig(out=self.out or "ablation-out", size=self.size, seed=self.seed,
                              threads=self.threads or 1, n_problems=self.n_problems)
