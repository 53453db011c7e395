"""What this install is made of, for `mmcot env` (as `transformers env` / `accelerate env`) and for turning a broken
install into one line in every command.

- versions come from the installed packages' metadata (nothing imported), and whether they fit together from the
  requirements each declares on the others (torchvision's `torch==…`, transformers' `torch>=…`, mmcot's own), checked
  with `packaging`;
- `environment()` then imports each package and says what that gives (`operator torchvision::nms does not exist`:
  a torchvision built for another torch), and lists devices, CPU model and features, threads, the optional extras and
  the Hugging Face cache and offline settings;
- `install_problem(error)` is the one line for an exception that a broken install raises inside a command (an
  ImportError, or an error raised while a library's module was being imported), naming the mismatch and pointing
  at `mmcot env`; None for any other exception.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import re
import sys
import traceback
from pathlib import Path

from mmcot_cli._version import __version__
from mmcot_cli.errors import first_line
from mmcot_cli.registry import hub

# (distribution, import name): the libraries mmcot computes with, in the order `mmcot env` lists them.
CORE = (("torch", "torch"), ("torchvision", "torchvision"), ("transformers", "transformers"),
        ("tokenizers", "tokenizers"), ("timm", "timm"), ("open_clip_torch", "open_clip"), ("peft", "peft"),
        ("accelerate", "accelerate"), ("datasets", "datasets"), ("huggingface-hub", "huggingface_hub"),
        ("safetensors", "safetensors"), ("numpy", "numpy"))
# (distribution, import name, what needs it): installed only for what they add.
EXTRAS = (("sentence-transformers", "sentence_transformers", "score/report/compare --similarity (mmcot[similarity])"),
          ("tensorboard", "tensorboard", "train --report-to tensorboard"),
          ("wandb", "wandb", "train --report-to wandb"),
          ("mlflow", "mlflow", "train --report-to mlflow"))
# Requirements under these extras count too (transformers declares its torch bound under [torch]).
_EXTRAS_CHECKED = ("", "torch")
CPU_FEATURES = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")
_IMPORT_NAMES = {name for _, name in CORE} | {name for _, name, _ in EXTRAS} | {"PIL", "sentencepiece", "matplotlib"}
_DISTRIBUTION = {name: dist for dist, name in CORE} | {name: dist for dist, name, _ in EXTRAS}
# Messages of errors that only a broken or mismatched install gives.
_INSTALL_SIGNS = re.compile(r"operator \w+::\w+ does not exist|undefined symbol|Couldn't load custom C\+\+ ops|"
                            r"compiled (using|against) NumPy|_ARRAY_API not found|DLL load failed|"
                            r"Failed to import \w+")
_OWN = ("mmcot_cli", "mmcot_plugins")
ENV_HINT = "`mmcot env` shows every version and what does not fit"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def versions_of(dists) -> dict[str, str | None]:
    """{distribution: installed version or None}, from the metadata (nothing imported)."""
    out = {}
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def versions() -> dict[str, str | None]:
    """versions_of the core libraries and the extras."""
    return versions_of([d for d, _ in CORE] + [d for d, _, _ in EXTRAS])


def fit_problems(installed: dict[str, str | None] | None = None) -> list[str]:
    """Requirements that mmcot and the core libraries declare on one another and that the installed versions do
    not meet ("torchvision 0.20.1 needs torch==2.5.1, but torch 2.6.0 is installed"); [] when all fit or
    `packaging` is missing (nothing to check with)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return []
    installed = versions() if installed is None else installed
    by_name = {_canonical(d): (d, v) for d, v in installed.items()}
    problems = []
    for dist in ("mmcot", *(d for d, _ in CORE)):
        try:
            own, requires = importlib.metadata.version(dist), importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            target = by_name.get(_canonical(req.name))
            if target is None or (req.marker and not any(req.marker.evaluate({"extra": e}) for e in _EXTRAS_CHECKED)):
                continue
            name, version = target
            if version is None:
                if not req.marker:  # a plain dependency that is not there
                    problems.append(f"{dist} {own} needs {name}{req.specifier}, which is not installed")
                continue
            try:
                fits = req.specifier.contains(Version(version), prereleases=True)
            except InvalidVersion:
                continue
            if not fits:
                problems.append(f"{dist} {own} needs {name}{req.specifier}, but {name} {version} is installed")
    return problems


# ------------------------------------------------------------------------------------------- broken installs


def _chain(error: BaseException) -> list[BaseException]:
    """error and what caused it, outermost first."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _frames(error: BaseException) -> list[tuple[str, str]]:
    """(file, function) of the frames of error's traceback, innermost last; a worker process's traceback (the
    text concurrent.futures attaches as the cause) included."""
    frames = []
    for e in reversed(_chain(error)):  # the innermost cause first: its frames are the deepest
        if type(e).__name__ == "_RemoteTraceback":
            frames.extend(re.findall(r'File "([^"]+)", line \d+, in (\S+)', str(e)))
        frames.extend((f.filename, f.name) for f in traceback.extract_tb(e.__traceback__))
    return frames


def _package_of(path: str) -> str | None:
    """The library a source file belongs to (a folder of that name on its path), or None."""
    parts = Path(path).parts
    for part in reversed(parts[:-1]):
        if part in _IMPORT_NAMES:
            return part
    return None


def _while_importing(error: BaseException) -> bool:
    """Whether a library's module was running its top-level code when `error` was raised."""
    return any(name == "<module>" and _package_of(path) and not any(own in path for own in _OWN)
               for path, name in _frames(error))


def _culprit(error: BaseException) -> str | None:
    """The library that failed to import: the one a compiled operator belongs to, the module an ImportError names,
    else the innermost library frame."""
    text = " ".join(str(e) for e in _chain(error))
    match = re.search(r"operator (\w+)::\w+ does not exist", text)
    if match and match.group(1) in _IMPORT_NAMES:
        return match.group(1)
    for e in _chain(error):
        name = (getattr(e, "name", None) or "").split(".")[0] if isinstance(e, ImportError) else ""
        if name in _IMPORT_NAMES:
            return name
    packages = [p for p in (_package_of(path) for path, _ in _frames(error)) if p]
    return packages[-1] if packages else None


def install_problem(error: BaseException) -> str | None:
    """The one line for an error that a broken install raised inside a command, or None for any other error.

    Counted: an ImportError (not of mmcot's own modules), and any error raised while a library's module was being
    imported or whose message only a mismatched build gives ("operator torchvision::nms does not exist")."""
    if not isinstance(error, Exception):
        return None
    if isinstance(error, ImportError):
        name = error.name or ""
        if name.split(".")[0] in _OWN:
            return None  # mmcot itself: a bug, with its traceback
    elif not (_while_importing(error) or any(_INSTALL_SIGNS.search(str(e)) for e in _chain(error))):
        return None
    culprit = _culprit(error)
    installed = versions()
    fits = fit_problems(installed)
    dist = _DISTRIBUTION.get(culprit or "", culprit)
    about = [p for p in fits if dist and (p.startswith(f"{dist} ") or re.search(rf"needs {re.escape(dist)}(?![\w-])", p))
             ] or fits
    what = f"importing {culprit} failed" if culprit else "a library failed to import"
    if about:
        mismatch = "; ".join(about[:2])
    elif culprit == "torchvision" and "torchvision::" in " ".join(str(e) for e in _chain(error)):
        mismatch = (f"torchvision {installed.get('torchvision')} was built for another torch than the installed "
                    f"{installed.get('torch')} (or another CUDA): install the torchvision release made for it")
    elif dist == "torch":
        mismatch = (f"torch {installed.get('torch') or '(no install metadata)'} does not load: install the build "
                    "made for this Python and platform (CPU or your CUDA) again")
    elif dist in installed:
        mismatch = f"{dist} {installed[dist] or '(not installed)'} with torch {installed.get('torch')}"
    else:
        mismatch = "a package is missing or incomplete (install it again)"
    return f"broken install: {what} ({type(error).__name__}: {first_line(error)}); {mismatch}; {ENV_HINT}"


# ------------------------------------------------------------------------------------------- `mmcot env`


def _import(name: str) -> str | None:
    """None when `import name` works, else why not (one line)."""
    try:
        importlib.import_module(name)
    except Exception as e:  # a broken build raises anything: RuntimeError, OSError, AttributeError …
        return f"{type(e).__name__}: {first_line(e)}"
    return None


def packages() -> list[dict]:
    """{name, import, version, imports, error} per core library, imported in order (torch first)."""
    out = []
    for dist, name in CORE:
        version = versions_of([dist])[dist]
        error = _import(name) if version is not None else "not installed"
        out.append({"name": dist, "import": name, "version": version, "imports": error is None, "error": error})
    return out


def extras() -> list[dict]:
    """{name, version, for} per optional extra (version None: not installed; nothing is imported)."""
    found = versions_of([d for d, _, _ in EXTRAS])
    return [{"name": dist, "version": found[dist], "for": purpose} for dist, _, purpose in EXTRAS]


def cpu() -> dict:
    """{model, features (of CPU_FEATURES the CPU has), torch_capability} from /proc/cpuinfo and torch."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    capability = None
    if "torch" in sys.modules:
        try:
            capability = sys.modules["torch"].backends.cpu.get_cpu_capability()
        except Exception:
            capability = None
    return {"model": model, "features": [f for f in CPU_FEATURES if f in flags], "torch_capability": capability}


def threads() -> dict:
    """CPUs, the ones this process may use, torch's thread pools and the variables that set them."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = {"cpus": os.cpu_count(), "usable_cpus": usable, "torch_intra_op": None, "torch_inter_op": None}
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            out.update(torch_intra_op=torch.get_num_threads(), torch_inter_op=torch.get_num_interop_threads())
        except Exception:
            pass
    out["environment"] = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM")
                          if k in os.environ}
    return out


def devices() -> dict:
    """CUDA (version, cuDNN, GPU names) and MPS, as the imported torch sees them; {} without a working torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    out: dict = {"cuda_built": getattr(torch.version, "cuda", None), "cuda_available": False, "gpus": [],
                 "cudnn": None, "mps_available": False}
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        if out["cuda_available"]:
            out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            out["cudnn"] = torch.backends.cudnn.version()
    except Exception as e:
        out["cuda_error"] = f"{type(e).__name__}: {first_line(e)}"
    try:
        out["mps_available"] = bool(torch.backends.mps.is_available())
    except Exception:
        pass
    return out


def huggingface() -> dict:
    """The Hugging Face cache folder and the variables that steer downloads and offline mode."""
    names = ("HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")
    out: dict = {"environment": {k: os.environ[k] for k in names if k in os.environ}}
    try:
        out.update(cache=str(hub.cache_dir()), offline=hub.is_offline())
    except Exception as e:  # huggingface_hub itself does not import
        out.update(cache=None, offline=None, error=f"{type(e).__name__}: {first_line(e)}")
    return out


def _transformers_sees_torch(listed: list[dict]) -> str | None:
    """Why transformers does not use the installed torch (it turns torch off when torch is older than it needs)."""
    ok = {p["import"] for p in listed if p["imports"]}
    if not {"torch", "transformers"} <= ok:
        return None
    try:
        from transformers.utils import is_torch_available
    except Exception as e:
        return f"transformers cannot tell whether torch is usable ({type(e).__name__}: {first_line(e)})"
    if not is_torch_available():
        return f"transformers {sys.modules['transformers'].__version__} does not use torch {listed[0]['version']}"
    return None


def environment() -> dict:
    """Everything `mmcot env` shows; `problems` lists what does not fit or import (empty: all is well)."""
    listed = packages()
    problems = [f"{p['name']} {p['version']} does not import: {p['error']}" for p in listed
                if p["version"] is not None and not p["imports"]]
    problems += [f"{p['name']} is not installed" for p in listed if p["version"] is None]
    problems += fit_problems()
    unused = _transformers_sees_torch(listed)
    if unused:
        problems.append(unused)
    return {
        "mmcot": {"version": __version__, "location": str(Path(__file__).resolve().parents[1])},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable, "platform": platform.platform()},
        "packages": listed, "extras": extras(), "devices": devices(), "cpu": cpu(), "threads": threads(),
        "huggingface": huggingface(), "problems": problems,
    }
