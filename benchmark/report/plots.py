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
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from benchmark.report.aggregate import class_accuracy, pareto_front, val_curves
from benchmark.report.generalisation import holdout_runs, plot_generalisation
from benchmark.report.load import Inputs
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
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
KIND_MARKER = "h"  # tuned (filled) / default (hollow) in legends: no fusion uses it
WIDE = 20.0  # a cost axis whose largest value is this many times its smallest goes log
# The forest's colours by standing against the best: untested is not "worse".
STANDING_STYLE = {
    BEST: ("tab:green", "best (the larger marker, the dashed line)"),
    NEAR: ("tab:green", "indistinguishable from the best (Welch, 5%)"),
    BETTER: ("tab:blue", "better than the reference's best (Welch, 5%)"),
    WORSE: ("tab:grey", "worse (Welch, 5%)"),
    UNTESTED: ("black", "untested: one seed, no interval"),
}


def plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1, 2 and 5 per decade, written as plain numbers (0.5, 1, 2 ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v:,.{max(0, -math.floor(math.log10(v)))}f}")
    )
    axis.set_minor_formatter(NullFormatter())


def log_span(low: float, high: float, ratio: float = 4.0) -> tuple[float, float]:
    """Log-axis limits around [low, high] with some margin, at least ``ratio`` wide: one of the
    1-2-5 ticks always falls inside (their widest gap is 2.5x), even for a single point."""
    low, high = low / 1.25, high * 1.25
    if high / low < ratio:
        centre, half = math.sqrt(low * high), math.sqrt(ratio)
        low, high = centre / half, centre * half
    return low, high


def percent_span(low: float, high: float) -> tuple[float, float]:
    """``log_span`` of errors in percent, moved down to end at 100% where it would pass it (an
    interval may; an error cannot)."""
    low, high = log_span(low, high)
    return (low * 100 / high, 100.0) if high > 100 else (low, high)


def error_span(rows: pd.DataFrame) -> tuple[float, float]:
    """The error axis' limits: every mean and every interval end that a log axis can show."""
    mean, half = rows["test_sum_err_mean"], rows["test_sum_err_ci"].fillna(0)
    low = (mean - half).where(mean - half > 0, mean)
    return percent_span(float(low.min()), float((mean + half).max()))


def cost_axis(ax: Any, axis: str, values: pd.Series) -> None:
    """A cost axis (parameters, seconds): logarithmic when the values span more than ``WIDE``."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    known = values.dropna()
    known = known[known > 0]
    target = getattr(ax, f"{axis}axis")
    if known.empty or known.max() / known.min() <= WIDE:
        target.set_major_locator(MaxNLocator(6))
    else:
        getattr(ax, f"set_{axis}scale")("log")
        getattr(ax, f"set_{axis}lim")(*log_span(float(known.min()), float(known.max()), 1.0))
        plain_log_ticks(target)
    target.set_major_formatter(FuncFormatter(lambda v, _: compact(v)))


def compact(value: float) -> str:
    """A tick label that stays short: 80k, 1.5M, 12, 0.5."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def title(text: str, width_in: float, size: float) -> str:
    """``text`` wrapped to fit ``width_in`` inches at ``size`` points (about 0.55 em a char)."""
    return textwrap.fill(text, max(20, int(width_in * 72 / (0.55 * size))))


def kind_handles(lines: bool = False) -> list[Any]:
    """Tuned (filled; solid where lines are drawn) and default (hollow; dashed), keyed with a
    glyph no encoder or fusion is drawn with: a circle here read as gap_cnn's."""
    from matplotlib.lines import Line2D

    solid, dashed = ("-", "--") if lines else ("", "")
    return [
        Line2D([], [], color="black", marker=KIND_MARKER, ls=solid,
               label="tuned: filled" + (", solid" if lines else "")),
        Line2D([], [], color="black", marker=KIND_MARKER, mfc="white", ls=dashed,
               label="default: hollow" + (", dashed" if lines else "")),
    ]  # fmt: skip


def main_groups(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["section"] == "main"]


def styles(rows: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """Colour per encoder and marker per fusion, in sorted order (stable across reports); the
    reference's names first, so that setting the user's runs beside it keeps its styles."""
    theirs, mine = rows[~rows["yours"].astype(bool)], rows[rows["yours"].astype(bool)]

    def order(column: str) -> list[str]:
        first = sorted(set(theirs[column]))
        return first + sorted(set(mine[column]) - set(first))

    colours = {a: COLOURS[i % len(COLOURS)] for i, a in enumerate(order("arch"))}
    markers = {f: MARKERS[i % len(MARKERS)] for i, f in enumerate(order("fusion"))}
    return colours, markers


def style_handles(
    colours: dict[Any, str],
    markers: dict[Any, str],
    yours: bool,
    colour_of: str = "encoder",
    marker_of: str = "fusion",
) -> list[Any]:
    """Legend entries under headings: what colour means (a patch each), what the marker means,
    the kind (a glyph no marker uses, filled or hollow) and, beside a reference, the ring that
    marks the user's. A colour key drawn as a marker read as one more marker."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def heading(text: str) -> Line2D:
        return Line2D([], [], ls="", marker="", label=text)

    handles = [heading(f"{colour_of} (colour)")]
    handles += [Patch(color=c, label=str(a)) for a, c in colours.items()]
    handles.append(heading(f"{marker_of} (marker)"))
    handles += [
        Line2D([], [], color="dimgrey", mfc="lightgrey", marker=m, ls="", label=f)
        for f, m in markers.items()
    ]
    handles += [heading("configuration (fill)"), *kind_handles()]
    if yours:
        handles.append(
            Line2D(
                [],
                [],
                color="black",
                marker="o",
                mfc="none",
                ms=14,
                mew=1.6,
                ls="",
                label="yours (ringed)",
            )
        )
    return handles


def error_point(ax: Any, x: float, r: Any, colour: Any, marker: str) -> None:
    """One group's test sum error with its interval at ``x``: filled when tuned, hollow when
    default (the convention of every scatter of the report)."""
    ax.errorbar(
        x,
        r.test_sum_err_mean,
        yerr=0 if pd.isna(r.test_sum_err_ci) else r.test_sum_err_ci,
        marker=marker,
        color=colour,
        mfc=colour if r.tuned else "white",
        ms=7,
        capsize=2,
        lw=0.8,
    )


def scatter(ax: Any, rows: pd.DataFrame, x: str, colours: dict, markers: dict) -> None:
    for r in rows.itertuples(index=False):
        colour = colours[r.arch]
        error_point(ax, getattr(r, x), r, colour, markers[r.fusion])
        if r.yours:
            ax.plot(
                getattr(r, x), r.test_sum_err_mean, "o", mfc="none", mec="black", ms=14, mew=1.6
            )


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
    names = [  # a tuned group whose study kept the default is not a second configuration
        label.replace(" (tuned)", f" (tuned {SAME_CONFIG})", 1) if same else label
        for label, same in zip(rows["label"], rows["same_as_default"], strict=True)
    ]
    ax.set_yticks(range(len(rows)), names, fontsize=8)
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


def pareto_figure(summary: pd.DataFrame) -> Figure:
    """Error vs parameters and error vs training time, each with its Pareto front; the time
    panel holds only groups whose timings are comparable (see ``comparable_timings``)."""
    rows = main_groups(summary)
    colours, markers = styles(rows)
    fig, (ax0, ax1) = new_figure(12, 5.2, ncols=2)
    for ax, x, label in (
        (ax0, "params", "parameters"),
        (ax1, "train_seconds_mean", "training seconds (one run, one machine)"),
    ):
        drawn = rows[rows[x].notna()]
        scatter(ax, drawn, x, colours, markers)
        front = drawn[pareto(drawn[x], drawn["test_sum_err_mean"])].sort_values(x)
        ax.step(front[x], front["test_sum_err_mean"], where="post", color="black", lw=0.8, ls=":")
        ax.set(yscale="log", xlabel=label)
        cost_axis(ax, "x", drawn[x])
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


def curve_label(row: pd.Series) -> str:
    """A line's legend entry: its fusion and what sets its group apart, short."""
    parts = [row["fusion"]]
    for part in str(row["differs"]).split("; "):
        if part.startswith("tuned by"):
            part = "tuned"
        if part and not part.startswith("the reference"):
            parts.append(part)
    if row["tuned"] and "tuned" not in parts:
        parts.append("tuned")
    if row["yours"]:
        parts.append("yours")
    return textwrap.fill(", ".join(parts), 60, subsequent_indent="  ")


def val_curves_figure(curves: pd.DataFrame, summary: pd.DataFrame, ref: Reference | None) -> Figure:
    """Small multiples: one panel per encoder, one line per group (colour by fusion, dashed
    when tuned), validation sum error on a log axis, the main comparison's budget marked."""
    from matplotlib.transforms import offset_copy

    groups = summary.set_index("label")
    curves = curves.join(groups[["arch", "fusion", "tuned", "differs", "yours"]], on="label")
    encoders = sorted(set(curves["arch"]))
    width = max(7.0, 4.2 * len(encoders))
    budget = None if ref is None else ref.base.get("epochs")
    # each panel's legend hangs below it, a line per group (long ones wrapped to the panel's
    # width), outside the layout: the figure grows by the longest, the panels keep their size
    labels = {label: curve_label(row) for label, row in curves.groupby("label").first().iterrows()}
    lines = (
        curves.groupby("arch")["label"]
        .unique()
        .map(lambda found: sum(labels[k].count("\n") + 1 for k in found))
    )
    legend = 0.25 + 0.175 * (lines.max() + (budget is not None))
    height = 3.6 + legend
    fig, axes = new_figure(width, height, ncols=len(encoders))
    fig.get_layout_engine().set(rect=(0, legend / height, 1, 1 - legend / height))
    fusions = sorted(set(curves["fusion"]))
    dotted = False
    for ax, arch in zip(axes, encoders, strict=True):
        drawn: list[tuple[str, bool]] = []  # a second line of one fusion and kind: dotted
        for _, curve in curves[curves["arch"] == arch].groupby("label", sort=False):
            first = curve.iloc[0]
            kind = (first["fusion"], bool(first["tuned"]))
            style = ("--" if kind[1] else "-") if kind not in drawn else ":"
            dotted |= style == ":"
            drawn.append(kind)
            ax.plot(
                curve["epoch"],
                100 * (1 - curve["val_sum_acc"]),
                marker="o",
                ms=3,
                color=COLOURS[fusions.index(first["fusion"]) % len(COLOURS)],
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
    text += " (dashed: tuned" + ("; dotted: another variant of the same fusion)" if dotted else ")")
    fig.suptitle(title(text, width, 11), fontsize=11)
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
    inputs: Inputs, summary: pd.DataFrame, ref: Reference | None = None, out: Path | None = None
) -> dict[str, bytes]:
    """PNG bytes by plot name; a plot without data is left out. Plots that an earlier report
    drew into ``out`` from the same inputs with the same code (``plots_stamp``) are read back
    instead of drawn again: drawing is most of a report's time."""
    if summary.empty:
        return {}
    stamp = plots_stamp(inputs, summary, ref)
    found = drawn_before(None if out is None else out / "plots", stamp)
    if found is not None:
        return found
    plots = {}
    main = main_groups(summary)
    if not main.empty:
        plots["forest"] = forest_figure(summary)
        plots["pareto"] = pareto_figure(summary)
    # the main comparison's groups where there is one: with every other budget's, variant's and
    # rung's beside them, a panel held 13-18 lines, most of them dotted, and could not be read
    shown = main if not main.empty else summary[summary["section"] != "heldout"]
    curves = val_curves(inputs.history, inputs.runs, shown)
    curves = curves[curves.groupby("label")["epoch"].transform("size") > 1]  # lines, not dots
    if not curves.empty:
        plots["val_curves"] = val_curves_figure(curves, summary, ref)
    classes = class_accuracy(inputs.runs, main)
    if not classes.empty:
        plots["sum_class_heatmap"] = plot_class_heatmap(classes)
    if not holdout_runs(inputs.runs).empty:
        plots["generalisation"] = plot_generalisation(inputs.runs)
    return stamped(plots, stamp)


def plots_stamp(inputs: Inputs, summary: pd.DataFrame, ref: Reference | None) -> str:
    """A short hash of everything the plots are drawn from: the summary, the runs and their
    histories, the reference and the drawing code (``drawing_stamp``)."""
    parts = [
        frame.to_csv(index=False, float_format="%.17g")
        for frame in (summary, inputs.runs, inputs.history)
    ]
    if ref is not None:  # its sets in sorted order: a set's repr changes with the hash seed
        fields = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in vars(ref).items()}
        parts.append(json.dumps(fields, sort_keys=True, default=str))
    code = [__file__, inspect.getfile(png_bytes), inspect.getfile(plot_generalisation)]
    return drawing_stamp(parts, code)
