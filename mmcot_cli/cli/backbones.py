"""`mmcot backbones`: every registered vision and text backbone."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from mmcot_cli.cli.app import command, print_json
from mmcot_cli.progress import make_console
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
        pt = Table(title="Plugins with problems (skipped; see docs/PLUGINS.md)")
        for col in ("plugin", "source", "what", "reason"):
            pt.add_column(col)
        for p in summary["plugin_problems"]:
            pt.add_row(*(Text(p[key]) for key in ("plugin", "source", "what", "reason")))  # no markup: raw reasons
        console.print(pt)
    console.print(f"Names: {summary['precedence']}.", highlight=False, markup=False)
