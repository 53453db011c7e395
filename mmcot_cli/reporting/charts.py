"""Report charts as PNG data URIs (matplotlib, Agg backend, imported only when a report is drawn)."""

from __future__ import annotations

import base64
import io
import logging

from mmcot_cli.errors import needs_library

DPI = 90


def _pyplot():
    # An unwritable HOME (read-only, or HOME=/nonexistent in a batch job): matplotlib falls back to a temporary
    # config/cache folder by itself, and says so in two warning lines on stderr; the charts are the same.
    quiet = logging.NullHandler()
    logging.getLogger("matplotlib").addHandler(quiet)
    try:
        return _import_pyplot()
    finally:
        logging.getLogger("matplotlib").removeHandler(quiet)


def _import_pyplot():
    with needs_library("matplotlib", "drawing the report charts"):
        import matplotlib

        matplotlib.use("Agg")  # no display, no GUI toolkit; safe in batch jobs
        import matplotlib.pyplot as plt

    return plt


def _data_uri(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plain(text: str) -> str:
    """A label matplotlib draws as written ("$" would start mathtext)."""
    return str(text).replace("$", r"\$")


def category_bars(labels: list[str], series: dict[str, list[float | None]],
                  chance: list[float | None] | None = None) -> str:
    """Grouped bars: one group per category label, one bar per run (None → no bar, a small upright "n/a" in its slot; 0 → a
    thick line on the axis and "0" above it, so a zero is seen, not mistaken for a missing bar); `chance`: a dashed
    line across each group at its chance accuracy."""
    plt = _pyplot()
    names = list(series)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(labels) + 0.25 * len(labels) * len(names)), 3.6))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        colour = f"C{i % 10}"
        points = [(j + (i - (len(names) - 1) / 2) * width, v) for j, v in enumerate(series[name])]
        shown = [(x, v) for x, v in points if v is not None]
        ax.bar([x for x, _ in shown], [v for _, v in shown], width=width, label=_plain(name), color=colour)
        for x, v in points:
            if v is None:
                ax.text(x, 2, "n/a", ha="center", va="bottom", fontsize=6, color="#888", rotation=90)
            elif v == 0:
                ax.plot([x - 0.4 * width, x + 0.4 * width], [0.6, 0.6], color=colour, linewidth=3,
                        solid_capstyle="butt")
                ax.text(x, 1.5, "0", ha="center", va="bottom", fontsize=7, color=colour, fontweight="bold")
    for j, value in enumerate(chance or []):
        if value is not None:
            ax.plot([j - 0.45, j + 0.45], [value, value], color="#555", linestyle="--", linewidth=1,
                    label="chance" if j == next(i for i, v in enumerate(chance) if v is not None) else None)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(4, len(names)), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _data_uri(fig)


# (metrics.jsonl key, panel title)
_PANELS = (("train_loss", "training loss"), ("lr", "learning rate"), ("val_rougeL", "validation ROUGE-L"),
           ("val_accuracy", "validation accuracy (%)"))
_PERCENT = frozenset({"val_accuracy"})  # drawn on 0-100: an auto-scaled 35-43 makes a flat model look volatile


def _series(rows: list[dict], key: str) -> list[tuple[int, float, object]]:
    """(step, value, epoch) of the rows that logged `key` at an optimizer step."""
    return [(row["step"], row[key], row.get("epoch")) for row in rows
            if isinstance(row.get(key), (int, float)) and isinstance(row.get("step"), int)]


def _draw_series(ax, points: list, name: str, colour: str, below: bool = False) -> None:
    """One line; a series of one point is a big marker labelled with its value and that it is the only one
    (above it, or `below` it so that two lone points of one panel do not share a line of text)."""
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3 if len(points) > 3 else 7,
            label=_plain(name), color=colour)
    if len(points) == 1:
        step, value, epoch = points[0]
        when = f"epoch {epoch}" if isinstance(epoch, int) else f"step {step}"
        ax.annotate(f"{value:.3g}\n(only point: {when})", (step, value), textcoords="offset points",
                    xytext=(0, -9 if below else 7), ha="center", va="top" if below else "bottom", fontsize=7,
                    color=colour)


def training_curves(curves: dict[str, list[dict]], chance: tuple[float, str] | None = None) -> str | None:
    """One panel per metric; one line per "run · stage" over optimizer steps. None when nothing was logged.
    `chance`: (accuracy %, label) drawn as a dashed line on the validation-accuracy panel."""
    panels = [(key, title) for key, title in _PANELS if any(_series(rows, key) for rows in curves.values())]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
    colours = {name: f"C{i % 10}" for i, name in enumerate(curves)}  # one colour per stage in every panel
    for ax, (key, title) in zip(axes[0], panels):
        steps, lone = set(), 0
        for name, rows in curves.items():
            points = _series(rows, key)
            steps |= {p[0] for p in points}
            if points:
                _draw_series(ax, points, name, colours[name], below=len(points) == 1 and lone % 2 == 1)
            lone += len(points) == 1
        low, high = min(steps), max(steps)
        if low == high:  # one step: whole-number ticks around it, not 1.900 … 2.100
            ax.set_xlim(low - 1, high + 1)
            ax.set_xticks([s for s in (low - 1, low, low + 1) if s >= 0])
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)  # optimizer steps are whole numbers
            if lone:  # room for a lone point's label at either end
                pad = max(1.0, 0.15 * (high - low))
                ax.set_xlim(low - pad, high + pad)
        if lone:
            ax.margins(y=0.3)
        if key in _PERCENT:
            ax.set_ylim(0, 100)
            if chance and chance[0] is not None:
                ax.axhline(chance[0], color="#555", linestyle="--", linewidth=1, label=_plain(chance[1]))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, fontsize=7, loc="lower center", ncol=min(4, len(names)), bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return _data_uri(fig)
