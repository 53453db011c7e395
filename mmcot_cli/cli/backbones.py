"""`mmcot backbones` (every registered vision and text backbone) and `mmcot env` (what this install is made of:
versions, devices, CPU, threads, extras, Hugging Face settings, and whether the libraries fit together)."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from mmcot_cli.cli.app import command, print_json, write_stdout
from mmcot_cli.progress import make_console
from mmcot_cli.registry import environment as env
from mmcot_cli.registry import manager as plugins

# How image features reach each kind of text backbone (mmcot_cli.model.fusion / causal_lm).
FUSION_BY_KIND = {"seq2seq": "gated, on the encoder output",
                  "causal": "--fusion gated (at --fusion-layer; default the middle layer) or prefix"}


def backbones_summary() -> dict:

    vision = [
        {"name": b.name, "feature_shape": list(b.feature_shape), "default_weights": b.default_weights,
         "weight_free": b.weight_free, "variants": list(b.variants), "description": b.description,
         "alpha": b.alpha, "plugin": b.plugin}
        for b in plugins.vision_backbones().values()
    ]
    text = [
        {"name": b.name, "weights": b.weights or "(built from scratch)", "description": b.description,
         "options": [{"name": o.name, "type": getattr(o.type, "__name__", "value"), "default": o.default, "help": o.help}
                     for o in b.options],
         "plugin": b.plugin, "kind": b.kind, "fusion": FUSION_BY_KIND.get(b.kind, "")}
        for b in plugins.text_backbones().values()
    ]
    # broken plugins (not loaded, or a hook that failed) and registrations not used, each with its reason
    return {"vision": vision, "text": text, "plugin_problems": plugins.plugin_problems(),
            "precedence": plugins.PRECEDENCE}


@command("backbones")
def backbones(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """List registered vision and text backbones (built-in and third-party plugins)."""
    summary = backbones_summary()
    if json_out:
        print_json(summary)
        return
    console = make_console()
    vt = Table(title="Vision backbones")
    for col in ("name", "features (tokens, dim)", "default weights", "variants", "--alpha", "plugin"):
        vt.add_column(col)
    for b in summary["vision"]:
        weights = "(weight-free)" if b["weight_free"] else b["default_weights"]
        vt.add_row(b["name"], "×".join(map(str, b["feature_shape"])), weights, ", ".join(b["variants"]), b["alpha"],
                   b["plugin"])
    tt = Table(title="Text backbones (any local directory or org/name hub id is also accepted)")
    for col in ("name", "weights", "description", "fusion", "--text-option KEY=VALUE", "plugin"):
        tt.add_column(col)
    for b in summary["text"]:
        options = ", ".join(f"{o['name']}={o['default']}" for o in b["options"])
        tt.add_row(b["name"], b["weights"], b["description"], b["fusion"], options, b["plugin"])
    console.print(vt)
    console.print(tt)
    if summary["plugin_problems"]:
        pt = Table(title="Plugins with problems (skipped; the other backbones load without them)")
        for col in ("plugin", "source", "what", "reason"):
            pt.add_column(col)
        for p in summary["plugin_problems"]:
            pt.add_row(*(Text(p[key]) for key in ("plugin", "source", "what", "reason")))  # no markup: raw reasons
        console.print(pt)
    console.print(f"Names: {summary['precedence']}.", highlight=False, markup=False)


@command("env")
def env_command(json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """What this install is made of, to paste into a bug report: mmcot and Python, the versions of torch,
    torchvision, transformers and the other libraries (each imported, so a broken build shows its error), whether
    they fit together (the requirements they declare on one another), CUDA / MPS devices and GPU names, the CPU
    model and features (AVX2, AVX-512, AMX), thread counts, optional extras, and the Hugging Face cache and offline
    settings. Exits 1 when something does not import or fit."""
    info = env.environment()
    if json_out:
        print_json(info)
    else:
        write_stdout("\n".join(env_lines(info)) + "\n")
    if info["problems"]:
        raise typer.Exit(1)


def _yes(value) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def env_lines(info: dict) -> list[str]:
    """`mmcot env` as text: one "- name: value" line per fact, under a heading per section."""
    py = info["python"]
    lines = [f"mmcot {info['mmcot']['version']} ({info['mmcot']['location']})",
             f"Python {py['version']} ({py['implementation']}, {py['executable']})", f"Platform {py['platform']}",
             "", "Libraries:"]
    width = max(len(p["name"]) for p in info["packages"]) + 1
    for p in info["packages"]:
        state = "not installed" if p["version"] is None else (
            p["version"] if p["imports"] else f"{p['version']}  IMPORT FAILS: {p['error']}")
        lines.append(f"- {p['name'] + ':':<{width}} {state}")
    lines += ["", "Optional extras:"]
    for x in info["extras"]:
        lines.append(f"- {x['name']}: {x['version'] or 'not installed'} ({x['for']})")
    dev = info["devices"]
    lines += ["", "Devices:"]
    if not dev:
        lines.append("- none known: torch does not import")
    else:
        gpus = ", ".join(dev["gpus"]) or "none"
        cuda = (f"available, {len(dev['gpus'])} GPU(s): {gpus}; cuDNN {dev['cudnn']}" if dev["cuda_available"]
                else "not available" + (f" ({dev['cuda_error']})" if dev.get("cuda_error") else ""))
        lines += [f"- CUDA: {cuda} (torch built for CUDA {dev['cuda_built'] or 'none: a CPU build'})",
                  f"- MPS (Apple GPU): {_yes(dev['mps_available'])}"]
    cpu, threads = info["cpu"], info["threads"]
    features = ", ".join(cpu["features"]) or "none of those mmcot looks for (" + ", ".join(env.CPU_FEATURES) + ")"
    lines += ["", "CPU:", f"- model: {cpu['model'] or 'unknown'}", f"- features: {features}",
              f"- torch's CPU kernels: {cpu['torch_capability'] or 'unknown'}",
              f"- CPUs: {threads['cpus']} ({threads['usable_cpus']} usable by this process); torch threads: "
              f"{threads['torch_intra_op'] or '?'} intra-op, {threads['torch_inter_op'] or '?'} inter-op"]
    lines += [f"- {k}={v}" for k, v in threads["environment"].items()]
    hf = info["huggingface"]
    lines += ["", "Hugging Face:", f"- cache: {hf['cache'] or 'unknown (' + hf.get('error', '') + ')'}",
              f"- offline: {_yes(hf['offline'])}"]
    lines += [f"- {k}={v}" for k, v in hf["environment"].items()]
    lines += ["", "Fit:"]
    if info["problems"]:
        lines += [f"- PROBLEM: {p}" for p in info["problems"]]
    else:
        versions = {p["name"]: p["version"] for p in info["packages"]}
        lines.append(f"- torch {versions['torch']}, torchvision {versions['torchvision']} and transformers "
                     f"{versions['transformers']} import and fit together, as do the other libraries")
    return lines
