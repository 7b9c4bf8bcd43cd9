"""Plots: PNG bytes per figure, each left out when it has no data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmark.report.aggregate import class_accuracy, val_curves
from benchmark.report.generalisation import holdout_runs, plot_generalisation
from benchmark.report.load import Inputs
from benchmark.report.output import new_figure, png_bytes

PLOTS = {
    "acc_vs_params": "Test sum accuracy vs parameters (Pareto front: more accuracy, fewer params)",
    "acc_vs_throughput": "Test sum accuracy vs inference throughput (bench)",
    "val_curves": "Validation sum accuracy per epoch (mean over seeds)",
    "sum_class_heatmap": "Test accuracy per true sum (mean over seeds)",
    "generalisation": "Seen vs held-out pairs: test sum accuracy (mean and std over seeds)",
}


def annotate(ax: Any, x: pd.Series, y: pd.Series, labels: pd.Series) -> None:
    """Label each point; wider margins keep the labels of the outermost points inside."""
    for xi, yi, label in zip(x, y, labels, strict=True):
        ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.margins(x=0.2, y=0.08)


def plot_acc_vs_params(summary: pd.DataFrame) -> bytes:
    fig, ax = new_figure(8, 5.5)
    ax.errorbar(
        summary["params"],
        summary["test_sum_acc_mean"],
        yerr=summary["test_sum_acc_std"].fillna(0),
        fmt="o",
        color="tab:blue",
        label="group (mean ± std over seeds)",
    )
    front = summary[summary["pareto"]].sort_values("params")
    ax.step(
        front["params"],
        front["test_sum_acc_mean"],
        where="post",
        color="tab:red",
        marker="D",
        label="Pareto front",
    )
    annotate(ax, summary["params"], summary["test_sum_acc_mean"], summary["label"])
    ax.set(
        xscale="log", xlabel="parameters", ylabel="test sum accuracy", title=PLOTS["acc_vs_params"]
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_acc_vs_throughput(summary: pd.DataFrame) -> bytes:
    rows = summary.dropna(subset=["infer_images_per_s"])
    fig, ax = new_figure(8, 5.5)
    for device, group in rows.groupby("bench_device", sort=True):
        ax.scatter(group["infer_images_per_s"], group["test_sum_acc_mean"], label=str(device))
    annotate(ax, rows["infer_images_per_s"], rows["test_sum_acc_mean"], rows["label"])
    ax.set(
        xscale="log",
        xlabel="inference images/s (best bench condition)",
        ylabel="test sum accuracy",
        title=PLOTS["acc_vs_throughput"],
    )
    ax.legend(fontsize=8, title="bench device")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_val_curves(curves: pd.DataFrame) -> bytes:
    fig, ax = new_figure(8, 5.5)
    for label, curve in curves.groupby("label", sort=False):
        ax.plot(curve["epoch"], curve["val_sum_acc"], marker="o", label=label)
    ax.set(xlabel="epoch", ylabel="validation sum accuracy", title=PLOTS["val_curves"])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def plot_class_heatmap(classes: pd.DataFrame) -> bytes:
    fig, ax = new_figure(11, 1.6 + 0.35 * len(classes))
    image = ax.imshow(classes.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(classes.shape[1]), [str(c) for c in classes.columns])
    ax.set_yticks(range(len(classes)), list(classes.index))
    ax.set(xlabel="true sum", title=PLOTS["sum_class_heatmap"])
    fig.colorbar(image, ax=ax, label="test accuracy")
    return png_bytes(fig)


def render_plots(inputs: Inputs, summary: pd.DataFrame) -> dict[str, bytes]:
    """PNG bytes by plot name; a plot without data is left out."""
    if summary.empty:
        return {}
    plots = {"acc_vs_params": plot_acc_vs_params(summary)}
    if summary["infer_images_per_s"].notna().any():
        plots["acc_vs_throughput"] = plot_acc_vs_throughput(summary)
    curves = val_curves(inputs.history, inputs.runs, summary)
    if not curves.empty:
        plots["val_curves"] = plot_val_curves(curves)
    classes = class_accuracy(inputs.runs, summary)
    if not classes.empty:
        plots["sum_class_heatmap"] = plot_class_heatmap(classes)
    if not holdout_runs(inputs.runs).empty:
        plots["generalisation"] = plot_generalisation(inputs.runs)
    return plots
