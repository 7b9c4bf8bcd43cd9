"""Plots: PNG bytes per figure, each left out when it has no data. Every plot of the main
comparison encodes the encoder as colour and the fusion as marker shape (filled: tuned, hollow:
default), explained by a legend instead of point labels that would overlap."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmark.report.aggregate import class_accuracy, pareto_front, val_curves
from benchmark.report.generalisation import holdout_runs, plot_generalisation
from benchmark.report.load import Inputs
from benchmark.report.output import new_figure, png_bytes

PLOTS = {
    "forest": "Main comparison: test sum error with 95% CI per group, best first",
    "pareto": "Main comparison: test sum error vs cost, with the Pareto front",
    "val_curves": "Validation sum error per epoch (mean over seeds), one panel per encoder",
    "sum_class_heatmap": "Main comparison: test sum error per true sum (mean over seeds)",
    "generalisation": "Seen vs held-out pairs: test sum accuracy (mean and std over seeds)",
}
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1, 2 and 5 per decade, written as plain numbers (0.5, 1, 2 ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def main_groups(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["section"] == "main"]


def styles(rows: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """Colour per encoder and marker per fusion, in sorted order (stable across reports)."""
    colours = {a: COLOURS[i % len(COLOURS)] for i, a in enumerate(sorted(set(rows["arch"])))}
    markers = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(sorted(set(rows["fusion"])))}
    return colours, markers


def style_legend(ax: Any, colours: dict[str, str], markers: dict[str, str], **kw: Any) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ls="", label=a) for a, c in colours.items()]
    handles += [Line2D([], [], color="grey", marker=m, ls="", label=f) for f, m in markers.items()]
    handles += [
        Line2D([], [], color="grey", marker="o", ls="", label="tuned"),
        Line2D([], [], color="grey", marker="o", mfc="none", ls="", label="default"),
    ]
    ax.legend(handles=handles, fontsize=7, **kw)


def scatter(ax: Any, rows: pd.DataFrame, x: str, colours: dict, markers: dict) -> None:
    for r in rows.itertuples(index=False):
        colour = colours[r.arch]
        ax.errorbar(
            getattr(r, x),
            r.test_sum_err_mean,
            yerr=0 if pd.isna(r.test_sum_err_ci) else r.test_sum_err_ci,
            marker=markers[r.fusion],
            color=colour,
            mfc=colour if r.tuned else "white",
            ms=7,
            capsize=2,
            lw=0.8,
        )


def plot_forest(summary: pd.DataFrame) -> bytes:
    """One row per main group, best at the top: mean error and its 95% interval, log axis; the
    best and the groups indistinguishable from it highlighted."""
    rows = main_groups(summary).iloc[::-1]
    fig, ax = new_figure(8, 1.2 + 0.32 * len(rows))
    y = range(len(rows))
    for yi, r in zip(y, rows.itertuples(index=False), strict=True):
        near = r.near_best
        ax.errorbar(
            r.test_sum_err_mean,
            yi,
            xerr=0 if pd.isna(r.test_sum_err_ci) else r.test_sum_err_ci,
            fmt="o",
            color="tab:green" if near else "tab:grey",
            capsize=3,
        )
    ax.set_yticks(list(y), list(rows["label"]), fontsize=8)
    best = rows.iloc[-1]
    ax.axvline(best["test_sum_err_mean"], color="tab:green", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="test sum error % (log scale; 95% CI over seeds)")
    plain_log_ticks(ax.xaxis)
    subtitle = "green: the best and those indistinguishable from it (Welch's t-test, 5%)"
    ax.set_title(PLOTS["forest"] + "\n" + subtitle, fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    return png_bytes(fig)


def plot_pareto(summary: pd.DataFrame) -> bytes:
    """Error vs parameters and error vs training time, each with its Pareto front."""
    rows = main_groups(summary)
    colours, markers = styles(rows)
    fig, (ax0, ax1) = new_figure(12, 5.2, ncols=2)
    for ax, x, label in (
        (ax0, "params", "parameters"),
        (ax1, "train_seconds_mean", "training seconds (one run, one machine)"),
    ):
        scatter(ax, rows, x, colours, markers)
        front = rows[pareto(rows[x], rows["test_sum_err_mean"])].sort_values(x)
        ax.step(front[x], front["test_sum_err_mean"], where="post", color="black", lw=0.8, ls=":")
        ax.set(yscale="log", xlabel=label, ylabel="test sum error % (log)")
        plain_log_ticks(ax.yaxis)
        ax.grid(which="both", alpha=0.3)
    from matplotlib.ticker import StrMethodFormatter

    ax0.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    style_legend(ax1, colours, markers, loc="upper right")
    fig.suptitle(PLOTS["pareto"] + " (lower left is better)", fontsize=11)
    return png_bytes(fig)


def pareto(cost: pd.Series, error: pd.Series) -> pd.Series:
    return pareto_front(cost, -error)


def plot_val_curves(curves: pd.DataFrame, summary: pd.DataFrame) -> bytes:
    """Small multiples: one panel per encoder, one line per group (colour by fusion, dashed
    when tuned), validation sum error on a log axis."""
    groups = summary.set_index("label")
    curves = curves.join(groups[["arch", "fusion", "tuned"]], on="label")
    encoders = sorted(set(curves["arch"]))
    fig, axes = new_figure(4.2 * len(encoders), 4.2, ncols=len(encoders))
    fusions = sorted(set(curves["fusion"]))
    for ax, arch in zip(axes, encoders, strict=True):
        drawn: list[tuple[str, bool]] = []  # a second line of one fusion and kind: dotted
        for label, curve in curves[curves["arch"] == arch].groupby("label", sort=False):
            first = curve.iloc[0]
            kind = (first["fusion"], bool(first["tuned"]))
            style = ("--" if kind[1] else "-") if kind not in drawn else ":"
            drawn.append(kind)
            ax.plot(
                curve["epoch"],
                100 * (1 - curve["val_sum_acc"]),
                marker="o",
                ms=3,
                color=COLOURS[fusions.index(first["fusion"]) % len(COLOURS)],
                ls=style,
                label=label.split(" x ", 1)[1],
            )
        ax.set(title=arch, xlabel="epoch", yscale="log")
        plain_log_ticks(ax.yaxis)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(which="both", alpha=0.3)
        ax.legend(fontsize=6)
    axes[0].set_ylabel("validation sum error % (log)")
    fig.suptitle(
        PLOTS["val_curves"] + " (dashed: tuned; dotted: another variant of the same fusion)",
        fontsize=11,
    )
    return png_bytes(fig)


def plot_class_heatmap(classes: pd.DataFrame) -> bytes:
    from matplotlib.colors import LogNorm

    errors = 100 * (1 - classes)
    values = errors.to_numpy(float)
    low = max(float(values[values > 0].min()) if (values > 0).any() else 0.01, 0.01)
    fig, ax = new_figure(11, 1.8 + 0.35 * len(errors))
    norm = LogNorm(
        vmin=low, vmax=max(float(values.max()), low * 10)
    )  # an outlier cannot wash out the rest
    image = ax.imshow(values.clip(min=low), aspect="auto", cmap="magma_r", norm=norm)
    ax.set_xticks(range(errors.shape[1]), [str(c) for c in errors.columns])
    ax.set_yticks(range(len(errors)), list(errors.index), fontsize=8)
    ax.set(xlabel="true sum", title=PLOTS["sum_class_heatmap"])
    bar = fig.colorbar(image, ax=ax, label="test sum error % (log scale)")
    plain_log_ticks(bar.ax.yaxis)
    return png_bytes(fig)


def render_plots(inputs: Inputs, summary: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes by plot name; a plot without data is left out."""
    if summary.empty:
        return {}
    plots = {}
    main = main_groups(summary)
    if not main.empty:
        plots["forest"] = plot_forest(summary)
        plots["pareto"] = plot_pareto(summary)
    curves = val_curves(inputs.history, inputs.runs, summary[summary["section"] != "heldout"])
    curves = curves[curves.groupby("label")["epoch"].transform("size") > 1]  # lines, not dots
    if not curves.empty:
        plots["val_curves"] = plot_val_curves(curves, summary)
    classes = class_accuracy(inputs.runs, main)
    if not classes.empty:
        plots["sum_class_heatmap"] = plot_class_heatmap(classes)
    if not holdout_runs(inputs.runs).empty:
        plots["generalisation"] = plot_generalisation(inputs.runs)
    return plots
