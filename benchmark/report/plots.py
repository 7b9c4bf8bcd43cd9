"""Plots: PNG bytes per figure, each left out when it has no data. Every plot of the main
comparison encodes the encoder as colour and the fusion as marker shape (filled: tuned, hollow:
default), explained by a legend outside the data instead of point labels that would overlap.
Each holds for one group, two panels or an outlier: axis limits are set from the data (never a
collapsed range without ticks), a parameter or time axis turns logarithmic when its range is
wide, and titles wrap to the figure's width. The ``*_figure`` functions return the figure itself
(tests read its axes); the ``plot_*`` ones its PNG bytes."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from benchmark.report.aggregate import class_accuracy, pareto_front, val_curves
from benchmark.report.generalisation import holdout_runs, plot_generalisation
from benchmark.report.load import Inputs
from benchmark.report.marks import (
    Styles,
    cost_axis,
    error_span,
    percent_span,
    plain_log_ticks,
    scatter,
    spread_ends,
    style_handles,
    title,
)
from benchmark.report.output import drawing_stamp, drawn_before, new_figure, png_bytes, stamped
from benchmark.report.reference import Reference
from benchmark.wording import BEST, BETTER, NEAR, SAME_CONFIG, UNTESTED, WORSE

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOTS = {
    "forest": "Main comparison: test sum error with 95% CI per group, best first",
    "pareto": "Main comparison: test sum error vs cost, with the Pareto front",
    "val_curves": "Validation sum error per epoch (mean over seeds), one panel per encoder",
    "sum_class_heatmap": "Main comparison: test sum error per true sum (mean over seeds)",
    "generalisation": "Seen vs held-out pairs: test sum accuracy (mean and std over seeds)",
}
# What each figure's marks are, said under it (a figure's title and key leave them out).
CAPTIONS = {
    "forest": "Dot: a group's mean test sum error over its seeds; bar: its 95% CI (log axis). "
    "Colour: its standing against the best (Welch's test at 5%), as *vs best* in the main table.",
    "pareto": "Left: error against parameters; right: against training seconds per run (groups "
    "timed on one machine). Upright bar: the error's 95% CI; level bar: ± one standard deviation "
    "of the group's runs' seconds, which vary between runs of one configuration; dotted step: "
    "the panel's Pareto front (no group has a lower error at as low a cost). Colour: encoder; "
    "marker: fusion; filled: tuned. Markers that would cover each other are set a few points "
    "apart sideways.",
    "val_curves": "Validation sum error after each epoch of the main comparison's schedule (mean "
    "over seeds, log axis): checkpoints of one schedule, its learning rate set for the whole "
    "run, not runs trained for that many epochs (with a ladder, *Learning curves over budgets* "
    "has those). One panel per encoder; colour and marker: fusion.",
    "sum_class_heatmap": "Test sum error per true sum (mean over seeds), a row per group. The "
    "end columns hold few pairs (a sum of 0 is only 0 + 0, 18 only 9 + 9: about a tenth of a "
    "middle column's), so they are mostly one digit's errors, and noisier. A tuned group whose "
    "study kept the default configuration has no row of its own: its default's stands for both.",
    "generalisation": "Test sum accuracy on the (digit, addend) pairs training saw and on those "
    "it never saw, per group (mean over seeds; bar: std). A fusion that learned addition keeps "
    "its accuracy on the unseen pairs.",
}
# The forest's colours by standing against the best: untested is not "worse".
STANDING_STYLE = {
    BEST: ("tab:green", "best (the larger marker, the dashed line)"),
    NEAR: ("tab:green", "indistinguishable from the best (Welch, 5%)"),
    BETTER: ("tab:blue", "better than the reference's best (Welch, 5%)"),
    WORSE: ("tab:grey", "worse (Welch, 5%)"),
    UNTESTED: ("black", "untested: one seed, no interval"),
}


def main_groups(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["section"] == "main"]


def curve_groups(summary: pd.DataFrame) -> pd.DataFrame:
    """The groups whose validation curves are drawn: the main comparison's where there is one.
    With every other budget's, variant's and rung's beside them, a panel held 13-18 lines, most
    of them dotted, and could not be read. These (and a ladder's) are the groups a report's
    styles are decided from (``Styles.of``); the held-out plot names each group under its bars."""
    main = main_groups(summary)
    return main if not main.empty else summary[summary["section"] != "heldout"]


def figure_names(rows: pd.DataFrame) -> list[str]:
    """The groups' labels as a figure gives them: a tuned group whose study kept the default
    says so, not being a second configuration."""
    return [
        label.replace(" (tuned)", f" (tuned {SAME_CONFIG})", 1) if same else label
        for label, same in zip(rows["label"], rows["same_as_default"], strict=True)
    ]


def forest_figure(summary: pd.DataFrame) -> Figure:
    """One row per main group, best at the top: mean error and its 95% interval on a log axis,
    coloured by its standing against the best (untested groups hollow, not "worse")."""
    from matplotlib.lines import Line2D

    rows = main_groups(summary).iloc[::-1]
    fig, ax = new_figure(8, 2.0 + 0.32 * len(rows))
    for yi, r in enumerate(rows.itertuples(index=False)):
        colour = STANDING_STYLE.get(r.standing, STANDING_STYLE[UNTESTED])[0]
        ax.errorbar(
            r.test_sum_err_mean,
            yi,
            xerr=0 if pd.isna(r.test_sum_err_ci) else r.test_sum_err_ci,
            fmt="D" if r.yours else "o",
            color=colour,
            mfc="white" if r.standing == UNTESTED else colour,
            ms=7 if r.standing == BEST else 5,
            capsize=3,
        )
    ax.set_yticks(range(len(rows)), figure_names(rows), fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    best = rows[rows["standing"] == BEST]
    if not best.empty:
        ax.axvline(best["test_sum_err_mean"].iloc[0], color="tab:green", lw=0.8, ls="--")
    ax.set(xscale="log", xlabel="test sum error % (log scale; 95% CI over seeds)")
    ax.set_xlim(*error_span(rows))
    plain_log_ticks(ax.xaxis)
    ax.set_title(title(PLOTS["forest"], 8, 10), fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    shown = [s for s in STANDING_STYLE if (rows["standing"] == s).any()]
    handles = [
        Line2D([], [], color=STANDING_STYLE[s][0], marker="o", ls="", ms=7 if s == BEST else 5,
               mfc="white" if s == UNTESTED else STANDING_STYLE[s][0], label=STANDING_STYLE[s][1])
        for s in shown
    ]  # fmt: skip
    if rows["yours"].any():
        handles.append(Line2D([], [], color="black", marker="D", ls="", label="yours (diamond)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


def pareto_figure(summary: pd.DataFrame, look: Styles | None = None) -> Figure:
    """Error vs parameters and error vs training time, each with its Pareto front; the time
    panel holds only groups whose timings are comparable (see ``comparable_timings``). ``look``:
    the report's styles (by default, those of the groups drawn)."""
    rows = main_groups(summary)
    look = look or Styles.of(rows)
    colours, markers = look.colours(rows["arch"]), look.markers(rows["fusion"])
    fig, (ax0, ax1) = new_figure(12, 5.2, ncols=2)
    for ax, x, sd, label in (
        (ax0, "params", None, "parameters"),
        (ax1, "train_seconds_mean", "train_seconds_std", "training seconds (one run, one machine)"),
    ):
        drawn = rows[rows[x].notna()]
        cost_axis(ax, "x", drawn[x], spread_ends(drawn[x], drawn[sd]) if sd else None)  # first:
        scatter(ax, drawn, x, colours, markers, sd)  # a bar's end is kept above 0 on log only
        front = drawn[pareto(drawn[x], drawn["test_sum_err_mean"])].sort_values(x)
        ax.step(front[x], front["test_sum_err_mean"], where="post", color="black", lw=0.8, ls=":")
        ax.set(yscale="log", xlabel=label)
        ax.grid(which="both", alpha=0.3)
    ax0.set_ylim(*error_span(rows))
    ax0.set_ylabel("test sum error % (log)")
    plain_log_ticks(ax0.yaxis)
    fig.legend(
        handles=style_handles(colours, markers, bool(rows["yours"].any())),
        loc="outside right upper",
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title(PLOTS["pareto"] + " (lower left is better)", 10, 11), fontsize=11)
    return fig


def pareto(cost: pd.Series, error: pd.Series) -> pd.Series:
    return pareto_front(cost, -error)


def curve_label(row: pd.Series, beside_tuned: bool = True) -> str:
    """A line's legend entry: its fusion and what sets its group apart, short ("default" only
    ``beside_tuned`` lines)."""
    parts = [row["fusion"]]
    for part in str(row["differs"]).split("; "):
        if part.startswith("tuned by"):
            part = "tuned"
        if part and not part.startswith("the reference"):
            parts.append(part)
    if row["tuned"] and "tuned" not in parts:
        parts.append("tuned")
    if row["tuned"] and bool(row.get("same_as_default", False)):  # its line hides the default's
        parts[parts.index("tuned")] = "tuned = default"
    elif beside_tuned and not row["tuned"] and len(parts) == 1:  # nothing else sets it apart
        parts.append("default")
    if row["yours"]:
        parts.append("yours")
    return textwrap.fill(", ".join(parts), 60, subsequent_indent="  ")


def val_curves_figure(
    curves: pd.DataFrame, summary: pd.DataFrame, ref: Reference | None, look: Styles | None = None
) -> Figure:
    """Small multiples: one panel per encoder, one line per group (fusion as colour and as the
    marker every plot gives it; tuned solid and filled, default dashed and hollow, as the ladder's
    plots draw them), validation sum error
    on a log axis, the main comparison's budget marked; each legend in one order."""
    from matplotlib.transforms import offset_copy

    groups = summary.set_index("label")
    shown = ["arch", "fusion", "tuned", "differs", "yours", "same_as_default"]
    curves = curves.join(groups[shown], on="label")
    encoders = sorted(set(curves["arch"]))
    width = max(7.0, 4.2 * len(encoders))
    budget = None if ref is None else ref.base.get("epochs")
    if budget is not None and budget >= curves["epoch"].max():
        budget = None  # at the right edge its line marks nothing the axis does not show
    # each panel's legend hangs below it, a line per group (long ones wrapped to the panel's
    # width), outside the layout: the figure grows by the longest, the panels keep their size
    tuned = curves["tuned"].astype(bool).any()
    labels = {k: curve_label(row, tuned) for k, row in curves.groupby("label").first().iterrows()}
    lines = (
        curves.groupby("arch")["label"]
        .unique()
        .map(lambda found: sum(labels[k].count("\n") + 1 for k in found))
    )
    legend = 0.15 + 0.175 * (lines.max() + (budget is not None))
    height = 3.6 + legend
    fig, axes = new_figure(width, height, ncols=len(encoders))
    fig.get_layout_engine().set(rect=(0, legend / height, 1, 1 - legend / height))
    look = look or Styles.of(curves)
    markers, colours = look.markers(curves["fusion"]), look.fusion_colours(curves["fusion"])
    dotted = False
    for ax, arch in zip(axes, encoders, strict=True):
        drawn: list[tuple[str, bool]] = []  # a second line of one fusion and kind: dotted
        panel = curves[curves["arch"] == arch]
        order = panel.groupby("label").first()
        for label in order.sort_values(["fusion", "tuned"], ascending=[True, False]).index:
            curve = panel[panel["label"] == label]
            first = curve.iloc[0]
            kind = (first["fusion"], bool(first["tuned"]))
            style = ("-" if kind[1] else "--") if kind not in drawn else ":"
            dotted |= style == ":"
            drawn.append(kind)
            ax.plot(
                curve["epoch"],
                100 * (1 - curve["val_sum_acc"]),
                marker=markers[first["fusion"]],
                ms=4.5,
                color=(colour := colours[first["fusion"]]),
                mfc=colour if kind[1] else "white",
                ls=style,
                label=labels[first["label"]],
            )
        if budget is not None:
            ax.axvline(
                budget, color="black", lw=0.8, ls="-.", label=f"main comparison: {budget} ep."
            )
        ax.set(title=arch, xlabel="epoch", yscale="log")
        plain_log_ticks(ax.yaxis)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(which="both", alpha=0.3)
        under = offset_copy(ax.transAxes, fig=fig, y=-30, units="points")  # below the x label
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=under,
                  frameon=False).set_in_layout(False)  # fmt: skip
    errors = 100 * (1 - curves["val_sum_acc"])
    errors = errors[errors > 0]  # (a log axis has no 0)
    if not errors.empty:  # shared by the panels; auto limits narrower than a 1-2-5 gap had
        axes[0].set_ylim(*percent_span(float(errors.min()), float(errors.max())))  # repeated ticks
    axes[0].set_ylabel("validation sum error % (log)")
    main = set(curves["label"]) <= set(main_groups(summary)["label"])
    of_main = " of the main comparison's groups" if main else ""
    text = f"Validation sum error per epoch (mean over seeds){of_main}, one panel per encoder"
    key = "tuned: solid, filled; default: dashed, hollow"  # a line of its own, never split
    key += "; dotted: another variant of the same fusion" if dotted else ""
    fig.suptitle(f"{title(text, width, 11)}\n{title(key, width, 11)}", fontsize=11)
    return fig


def plot_class_heatmap(classes: pd.DataFrame) -> Figure:
    from matplotlib.colors import LogNorm

    errors = 100 * (1 - classes)
    values = errors.to_numpy(float)
    low = max(float(values[values > 0].min()) if (values > 0).any() else 0.01, 0.01)
    fig, ax = new_figure(11, 1.8 + 0.35 * len(errors))
    # a decade at least, so an outlier cannot wash out the rest, and never above 100%
    high = min(max(float(values.max()), low * 10), 100.0)
    norm = LogNorm(vmin=min(low, high / 10), vmax=high)
    image = ax.imshow(values.clip(min=low), aspect="auto", cmap="magma_r", norm=norm)
    ax.set_xticks(range(errors.shape[1]), [str(c) for c in errors.columns])
    ax.set_yticks(range(len(errors)), list(errors.index), fontsize=8)
    ax.set(xlabel="true sum", title=PLOTS["sum_class_heatmap"])
    bar = fig.colorbar(image, ax=ax, label="test sum error % (log scale)")
    plain_log_ticks(bar.ax.yaxis)
    return fig


def render_plots(
    inputs: Inputs,
    summary: pd.DataFrame,
    ref: Reference | None = None,
    out: Path | None = None,
    look: Styles | None = None,
) -> dict[str, bytes]:
    """PNG bytes by plot name; a plot without data is left out. Plots that an earlier report
    drew into ``out`` from the same inputs with the same code (``plots_stamp``) are read back
    instead of drawn again: drawing is most of a report's time. ``look``: the report's styles
    (by default, those of the groups it draws)."""
    if summary.empty:
        return {}
    look = look or Styles.of(curve_groups(summary))
    stamp = plots_stamp(inputs, summary, ref, look)
    found = drawn_before(None if out is None else out / "plots", stamp)
    if found is not None:
        return found
    plots = {}
    main = main_groups(summary)
    if not main.empty:
        plots["forest"] = forest_figure(summary)
        plots["pareto"] = pareto_figure(summary, look)
    curves = val_curves(inputs.history, inputs.runs, curve_groups(summary))
    curves = curves[curves.groupby("label")["epoch"].transform("size") > 1]  # lines, not dots
    if not curves.empty:
        plots["val_curves"] = val_curves_figure(curves, summary, ref, look)
    drawn = main[~main["same_as_default"].astype(bool)]  # a twin trains its default again
    classes = class_accuracy(inputs.runs, drawn)
    if not classes.empty:
        classes.index = figure_names(drawn.set_index("label").loc[classes.index].reset_index())
        plots["sum_class_heatmap"] = plot_class_heatmap(classes)
    if not holdout_runs(inputs.runs).empty:
        plots["generalisation"] = plot_generalisation(inputs.runs)
    return stamped(plots, stamp)


def plots_stamp(inputs: Inputs, summary: pd.DataFrame, ref: Reference | None, look: Styles) -> str:
    """A short hash of everything the plots are drawn from: the summary, the runs and their
    histories, the reference, the styles and the drawing code (``drawing_stamp``)."""
    parts = [
        frame.to_csv(index=False, float_format="%.17g")
        for frame in (summary, inputs.runs, inputs.history)
    ]
    parts.append(repr(look))
    if ref is not None:  # its sets in sorted order: a set's repr changes with the hash seed
        fields = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in vars(ref).items()}
        parts.append(json.dumps(fields, sort_keys=True, default=str))
    code = [__file__, *map(inspect.getfile, (scatter, png_bytes, plot_generalisation))]
    return drawing_stamp(parts, code)
