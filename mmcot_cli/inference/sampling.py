"""Sampled generation for teacher rationales ("diverse reasoning", Fine-tune-CoT): K samples per problem.

`mmcot generate --num-samples K --temperature T [--top-p P] [--seed S]`. Sampling is on when K > 1 or a
temperature/top-p is given; the temperature then defaults to 0.7 (Fine-tune-CoT's teacher setting). Each
predictions row keeps `prediction` = the first sample (so score and the stage hand-off read it as usual) and adds
`samples` (all K texts, in draw order) and `sampling` is recorded in the summary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mmcot_cli.errors import UsageError
from mmcot_cli.validate import check_seed, positive_float, positive_int, probability

DEFAULT_TEMPERATURE = 0.7


@dataclass(frozen=True)
class Sampling:
    num_samples: int = 1
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:  # NaN, infinities and out-of-range values: exit 2 naming the option
        positive_int("--num-samples", self.num_samples)
        positive_float("--temperature", self.temperature, optional=True)
        probability("--top-p", self.top_p, optional=True)
        check_seed("--seed", self.seed, optional=True)

    @property
    def enabled(self) -> bool:
        return self.num_samples > 1 or self.temperature is not None or self.top_p is not None

    def check(self, num_beams: int) -> "Sampling":
        if self.enabled and num_beams > 1:
            raise UsageError("--num-beams and sampling (--num-samples/--temperature/--top-p) are exclusive")
        if self.seed is not None and not self.enabled:
            raise UsageError("--seed only applies to sampling (--num-samples K or --temperature T)")
        return self

    def generate_kwargs(self) -> dict[str, Any]:
        """Extra `model.generate` arguments (none for greedy decoding)."""
        if not self.enabled:
            return {}
        kwargs: dict[str, Any] = {"do_sample": True, "num_return_sequences": self.num_samples,
                                  "temperature": self.temperature or DEFAULT_TEMPERATURE}
        if self.top_p is not None:
            kwargs["top_p"] = self.top_p
        return kwargs

    def summary(self) -> dict | None:
        if not self.enabled:
            return None
        return {**asdict(self), "temperature": self.temperature or DEFAULT_TEMPERATURE}

    def start(self) -> dict[str, Any]:
        """Seed torch's generator (when a seed is given) and return generate_kwargs(); once per split, so each
        split's samples depend only on the seed and that split."""
        if self.enabled and self.seed is not None:
            import torch

            torch.manual_seed(self.seed)
        return self.generate_kwargs()
