"""What a forked worker process (a DataLoader worker of extract or train) must not keep from its command."""

from __future__ import annotations

import signal

from mmcot_cli.outputs import drop_inherited_locks


def init_forked_worker(_worker_id: int = 0) -> None:
    """A DataLoader `worker_init_fn`. The worker ends at once on SIGTERM (the command's handler would raise
    mmcot_cli.errors.Terminated in it: a traceback per worker when `scancel` or `timeout` signal the whole process
    group), and holds none of its command's output locks (a requeued job right after `kill -9` would be refused
    until the orphaned workers noticed and exited)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    drop_inherited_locks()
