"""Files of the Hugging Face Hub by repo id + path (`import-run cooelf/mm-cot/models/mm-cot-base-rationale`,
`import-features cooelf/vision_features/vit.pth`), through huggingface_hub and its cache.

A SOURCE is read as, in this order: an existing local path (always wins); a path-like text (`/…`, `./…`, `~/…`,
or one whose first folder exists here) that does not exist → "no such file or directory";
`org/name[/path/in/repo]` (or `hf://org/name/…`) → the hub.
The revision (`--revision`, default `main`) is resolved to a commit first and everything is fetched at that
commit, which the caller records (`hub_provenance`). Downloads show huggingface_hub's progress bars (off with
--quiet) and land in its cache (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub), so a second
import reads the cache. With HF_HUB_OFFLINE=1 nothing is contacted: the revision is looked up in the cache's
refs/ and the files in snapshots/<commit>/ (the cache layout huggingface_hub documents).

Errors are one line each: offline and not cached, unknown repo / revision / file, and an ambiguous path (a repo
or folder holding several checkpoints or feature files: the line lists them, so the exact ids can be copied).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from mmcot_cli import progress
from mmcot_cli.errors import DataError, UsageError, first_line

REVISION_HELP = "Hub ids: the branch, tag or commit to read (default main); the commit it resolves to is recorded."

HUB_PREFIX = "hf://"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
HUB_PATH = re.compile(rf"^({_NAME}/{_NAME})(?:/(.+))?$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
OFFLINE_HELP = "run once with the network to fill the cache, or download it and pass the local path"


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    path: str  # inside the repo, "" = the repo root
    revision: str  # as given (branch, tag or commit)

    def __str__(self) -> str:
        return f"{self.repo_id}/{self.path}".rstrip("/") + (f"@{self.revision}" if self.revision != "main" else "")


def parse_source(text: str, revision: str | None = None) -> HubSource | None:
    """The hub source `text` names, or None for a local path (see the module docstring)."""
    if text.startswith(HUB_PREFIX):
        text = text[len(HUB_PREFIX):]
    elif Path(text).expanduser().exists():
        return None
    elif text.startswith(("/", ".", "~")) or "\\" in text or Path(text.split("/", 1)[0]).expanduser().exists():
        raise DataError(f"{text}: no such file or directory")  # path-like, or its first folder is a local one
    match = HUB_PATH.match(text.strip("/"))
    if match is None:
        raise DataError(f"{text}: no such file or directory, and not a hub id (org/name[/path])")
    return HubSource(match.group(1), (match.group(2) or "").strip("/"), revision or "main")


def is_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return constants.HF_HUB_OFFLINE or value.strip().upper() in ("1", "ON", "YES", "TRUE")


def cache_dir() -> Path:
    """huggingface_hub's cache folder, from the environment as it is now."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


@dataclass(frozen=True)
class Snapshot:
    """The files of a repo at one commit, and where the cached ones lie."""

    source: HubSource
    commit: str
    files: tuple[str, ...]
    folder: Path  # cache_dir/models--org--name/snapshots/<commit>


def _storage(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def _cached_snapshot(source: HubSource) -> Snapshot:
    storage = _storage(source.repo_id)
    commit = source.revision if COMMIT.match(source.revision) else None
    ref = storage / "refs" / source.revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    folder = storage / "snapshots" / (commit or "")
    if commit is None or not folder.is_dir():
        raise DataError(f"{source}: no such local path, and not in the Hugging Face cache ({cache_dir()}) with "
                        f"HF_HUB_OFFLINE set; {OFFLINE_HELP}")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return Snapshot(source, commit, tuple(files), folder)


NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "requests", "urllib3")


@contextlib.contextmanager
def _hub_errors(source: HubSource, what: str = "") -> Iterator[None]:
    """huggingface_hub's exceptions → one DataError line naming the source."""
    from huggingface_hub import errors
    from huggingface_hub.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its "Retrying in 8s" lines: the one error line below says it all
    try:
        yield
    except errors.RepositoryNotFoundError:
        raise DataError(f"{source}: no repository {source.repo_id} on the Hugging Face Hub (or it is private)") from None
    except errors.RevisionNotFoundError:
        raise DataError(f"{source}: the repository has no revision {source.revision!r}") from None
    except errors.GatedRepoError:
        raise DataError(f"{source}: a gated repository; accept its terms and log in (hf auth login)") from None
    except errors.EntryNotFoundError as e:  # also LocalEntryNotFoundError: offline, not cached
        if isinstance(e, errors.LocalEntryNotFoundError):
            raise DataError(f"{source}: {what or 'a file'} is not in the cache and the hub cannot be reached; "
                            f"{OFFLINE_HELP}") from None
        raise DataError(f"{source}: no file {what} in the repository") from None
    except (OSError, ValueError) as e:  # network failures, HTTP errors
        raise DataError(f"{source}: cannot reach the Hugging Face Hub ({first_line(e)[:160]}); {OFFLINE_HELP}") from None
    except Exception as e:  # the HTTP client's own errors (httpx's ConnectError is no OSError)
        if type(e).__module__.split(".")[0] not in NETWORK_MODULES:
            raise
        raise DataError(f"{source}: cannot reach the Hugging Face Hub ({type(e).__name__}: {first_line(e)[:140]}); "
                        f"{OFFLINE_HELP}") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def snapshot(source: HubSource) -> Snapshot:
    """The repo's file list at the source's revision, resolved to a commit (offline: from the cache)."""
    if is_offline():
        return _cached_snapshot(source)
    from huggingface_hub import HfApi

    with _hub_errors(source):
        info = HfApi().repo_info(source.repo_id, revision=source.revision)
    files = tuple(sorted(s.rfilename for s in info.siblings or ()))
    return Snapshot(source, info.sha, files, _storage(source.repo_id) / "snapshots" / info.sha)


@contextlib.contextmanager
def _bars() -> Iterator[None]:
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    if not progress.enabled():
        disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def fetch(snap: Snapshot, files: list[str]) -> Path:
    """`files` (repo paths) present in the cache at the snapshot's commit, downloaded if needed; returns the
    snapshot folder holding them."""
    missing = [f for f in files if not (snap.folder / f).is_file()]
    if not missing:
        return snap.folder
    if is_offline():
        raise DataError(f"{snap.source}: {missing[0]} is not in the Hugging Face cache ({cache_dir()}) and "
                        f"HF_HUB_OFFLINE is set; {OFFLINE_HELP}")
    from huggingface_hub import snapshot_download

    with _hub_errors(snap.source, missing[0]), _bars():
        folder = snapshot_download(snap.source.repo_id, revision=snap.commit, allow_patterns=missing,
                                   cache_dir=str(cache_dir()))
    return Path(folder)


def hub_provenance(snap: Snapshot, path: str) -> dict:
    """What a run / store records about where it came from."""
    return {"repo": snap.source.repo_id, "path": path, "revision": snap.source.revision, "commit": snap.commit}


def _listing(items: list[str], limit: int = 8) -> str:
    return ", ".join(items[:limit]) + (f" … ({len(items)} in all)" if len(items) > limit else "")


def choose(snap: Snapshot, candidates: list[str], kind: str) -> str:
    """The one candidate under the source's path; none or several is an error listing what is there."""
    base = snap.source.path
    if base in candidates:  # the path names a candidate itself (not the copies below it)
        return base
    under = [c for c in candidates if base == "" or c.startswith(base + "/")]
    ids = [f"{snap.source.repo_id}/{c}" if c else snap.source.repo_id for c in under]
    if len(under) == 1:
        return under[0]
    if len(under) > 1:
        raise UsageError(f"{snap.source}: ambiguous, it holds {len(under)} {kind}s: {_listing(ids)}; name one")
    everything = [f"{snap.source.repo_id}/{c}" if c else snap.source.repo_id for c in candidates]
    where = f"no {kind} at {base!r} in {snap.source.repo_id}" if base else f"no {kind} in {snap.source.repo_id}"
    raise DataError(f"{snap.source}: {where}" + (f" (it holds: {_listing(everything)})" if everything else ""))


def checkpoint_folder(source: HubSource, select: Callable[[list[str]], list[str]]) -> tuple[Path, dict]:
    """A checkpoint folder of a hub repo: the local folder and its provenance. `select(names)` picks, from the
    file names directly in a folder, those to fetch (none: not a checkpoint folder)."""
    snap = snapshot(source)
    folders = sorted({os.path.dirname(f) for f in snap.files})
    picked = {d: select([os.path.basename(f) for f in _direct(snap.files, d)]) for d in folders}
    folder = choose(snap, [d for d in folders if picked[d]], "checkpoint folder")
    local = fetch(snap, [f"{folder}/{name}" if folder else name for name in picked[folder]])
    return local / folder, hub_provenance(snap, folder)


def _direct(files: tuple[str, ...], folder: str) -> list[str]:
    """Files directly in `folder` (not in its subfolders: a checkpoint's checkpoint-N/ copies are not needed)."""
    prefix = folder + "/" if folder else ""
    return [f for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]]


def repo_file(source: HubSource, suffixes: tuple[str, ...], kind: str) -> tuple[Path, dict]:
    """One file of a hub repo with one of `suffixes` (the source may name it, or the repo may hold only one)."""
    snap = snapshot(source)
    if source.path in snap.files:
        name = source.path
    else:
        name = choose(snap, [f for f in snap.files if f.endswith(suffixes)], kind)
    return fetch(snap, [name]) / name, hub_provenance(snap, name)


PROBE_SECONDS = 3.0  # how long the Hub may take to accept a connection before a pretrained name is given up


def repo_cached(repo_id: str) -> bool:
    """Some snapshot of hub repo `repo_id` is in the Hugging Face cache (what a loader would read offline)."""
    snapshots = _storage(repo_id) / "snapshots"
    return snapshots.is_dir() and any(p.is_dir() and any(p.iterdir()) for p in snapshots.iterdir())


def hub_unreachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Why the Hub (HF_ENDPOINT; the proxy settings as urllib reads them) gives no answer within `timeout` seconds,
    or None when it answers at all (any HTTP status). One HEAD request, no retries."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered
    except (OSError, ValueError) as e:  # URLError (no DNS, refused, unreachable), a timeout, a bad endpoint
        reason = getattr(e, "reason", e)
        return first_line(reason) if isinstance(reason, BaseException) else str(reason)
    return None


def require_pretrained(repo_id: str, what: str, hint: str) -> None:
    """Fail at once, in one line ending with `hint`, where pretrained weights `repo_id` (a hub id) are not in the
    cache and cannot be fetched: HF_HUB_OFFLINE is set, or the Hub does not accept a connection within a few
    seconds. The loaders' own way (retries with back-off, then a long message) takes half a minute or more."""
    if repo_cached(repo_id):
        return
    if is_offline():
        raise DataError(f"{what}: cannot load {repo_id}: not in the Hugging Face cache ({cache_dir()}) and "
                        f"HF_HUB_OFFLINE is set; {hint}")
    reason = hub_unreachable()
    if reason:
        raise DataError(f"{what}: cannot load {repo_id}: not in the Hugging Face cache ({cache_dir()}) and the "
                        f"Hub cannot be reached ({reason[:80]}); {hint}")
