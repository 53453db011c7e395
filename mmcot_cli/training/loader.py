"""Feeding the loop: batches collated off the main thread and copied to the device without stalling it.

On a GPU, collation (padding, image-feature reads from the store) runs in DataLoader worker processes that stay
alive across epochs and prepare batches ahead; batches arrive in pinned memory and are copied with
`non_blocking=True`, so the host never waits for the GPU to drain before a copy. On CPU there is nothing to
overlap with (the same cores compute), so collation stays on the main thread (`--workers 0`), as before.

Batch order is unchanged by any of this: the batch sampler runs in the main process, and the DataLoader gets a
private generator, so creating an iterator never draws from the global RNG (which dropout and resume rely on).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from mmcot_cli.outputs import init_forked_worker


def default_workers(device: torch.device) -> int:
    return 2 if device.type == "cuda" else 0


def batch_loader(examples: Sequence, sampler, collator, device: torch.device, workers: int | None):
    """A DataLoader over `examples` with `sampler`'s batches (re-read at every `iter()`, so `set_epoch` applies)."""
    from torch.utils.data import DataLoader

    workers = default_workers(device) if workers is None else workers
    return DataLoader(list(examples), batch_sampler=sampler, collate_fn=collator, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None, generator=torch.Generator().manual_seed(0),
                      worker_init_fn=init_forked_worker if workers > 0 else None)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's tensors on `device` (qids and other non-tensors dropped); asynchronous from pinned memory."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
