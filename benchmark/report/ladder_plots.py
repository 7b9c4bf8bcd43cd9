"""Plots of a ladder of budgets (``benchmark.report.ladder``): the ranks across rungs as a bump
chart, learning curves over the rungs' budgets and error against training time across rungs
with its Pareto front. Fusion as marker in every plot; encoder as colour (in the curves, whose
panels are the encoders, the fusion again, in colours that mean no encoder; in the time plot the
budget, lavender to indigo), filled and solid for tuned, hollow and dashed for default."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from benchmark.comparison import epochs_text
from benchmark.report.marks import (
    Styles,
    error_point,
    error_span,
    kind_handles,
    log_span,
    plain_log_ticks,
    spread_ends,
    style_handles,
)
from benchmark.report.output import drawing_stamp, drawn_before, new_figure, stamped
from benchmark.wording import SAME_CONFIG

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LADDER_PLOTS = {
    "ladder_ranks": "Ranks across budgets: each group's rank by test sum error at every rung",
    "ladder_curves": "Test sum error against the rung's epochs (mean and 95% CI over seeds)",
    "ladder_time": "Equal time: test sum error against training seconds, every rung",
}


def short(row: Any) -> str:
    """A group's name in a figure; a tuned one whose study kept the default says so (else its
    line reads as a second configuration that happened to tie with the default's)."""
    if not row.tuned:
        return f"{row.arch} x {row.fusion}"
    same = bool(getattr(row, "same_as_default", False))
    return f"{row.arch} x {row.fusion} (tuned{f' {SAME_CONFIG}' if same else ''})"


def named(row: Any) -> str:
    """A group as a sentence names it: its figure name, "(default)" where it is not tuned."""
    return short(row) + ("" if row.tuned else " (default)")


def joint_name(ends: pd.DataFrame) -> str:
    """One name for the groups that share a rank at one rung: where they are one combination
    (a tuned group whose study kept the default ties with the default group),
    ``tiny_resnet x embed_add (default and tuned = default)``; else their names."""
    rows = list(ends.itertuples(index=False))
    if len({(r.arch, r.fusion) for r in rows}) > 1:
        return " / ".join(short(r) for r in rows)
    if len(rows) == 1:
        return short(rows[0])
    kinds = [short(r).removeprefix(f"{r.arch} x {r.fusion}").strip(" ()") for r in rows]
    kinds = [kind or "default" for kind in kinds]
    return f"{rows[0].arch} x {rows[0].fusion} ({' and '.join(kinds)})"


RUNG_SCALE = ("#8683bd", "#dd3497", "#3f007d")  # lavender, magenta, indigo: 3.5, 4.2, 13.9:1


def rung_colours(rungs: list[Any]) -> dict[Any, str]:
    """Shortest budget first, lavender through magenta to indigo (``RUNG_SCALE``): darker with
    more epochs, each at least 3.5:1 against white, and none of the colours that mean an encoder
    in the other plots (orange, green and blue meant both). Light to dark purple alone had left
    3 and 9 epochs hard to tell apart."""
    from matplotlib.colors import LinearSegmentedColormap, to_hex

    scale = LinearSegmentedColormap.from_list("rungs", RUNG_SCALE)
    found = sorted(set(rungs))
    return {r: to_hex(scale(i / max(len(found) - 1, 1))) for i, r in enumerate(found)}


def legend(ax: Any, colours: dict[Any, str], markers: dict[Any, str], **kw: Any) -> None:
    """Colour (a patch each) and marker keys, then filled/solid = tuned, hollow/dashed =
    default."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=c, label=k) for k, c in colours.items()]
    handles += [
        Line2D([], [], color="dimgrey", mfc="lightgrey", marker=m, ls="", label=k)
        for k, m in markers.items()
    ]
    ax.legend(handles=[*handles, *kind_handles(lines=True)], fontsize=8, **kw)


NAME_GAP = 0.06  # data units between a bump chart's end marker and its name


def plot_ranks(rungs: list[tuple[int, pd.DataFrame]], look: Styles | None = None) -> Figure:
    """A bump chart: rungs left to right, rank 1 at the top, one line per group, its name at
    both ends so no line needs the legend to be read (``joint_name`` where groups tie).
    ``look``: the report's styles (by default, those of the rungs' groups)."""
    every = pd.concat([g.assign(at=i) for i, (_, g) in enumerate(rungs)], ignore_index=True)
    look = look or Styles.of(every)
    colours, markers = look.colours(every["arch"]), look.markers(every["fusion"])
    fig, ax = new_figure(12, 1.6 + 0.36 * every["rank"].max())
    last = len(rungs) - 1
    for _, line in every.groupby(["arch", "fusion", "tuned"], sort=True):
        line = line.sort_values("at")
        first = line.iloc[0]
        colour = colours[first["arch"]]
        ax.plot(
            line["at"],
            line["rank"],
            color=colour,
            ls="-" if first["tuned"] else "--",
            marker=markers[first["fusion"]],
            mfc=colour if first["tuned"] else "white",
            ms=7,
            lw=1.4,
        )
    names = [
        ax.text(
            at + (-NAME_GAP if at == 0 else NAME_GAP),
            rank,
            joint_name(ends),
            va="center",
            ha="right" if at == 0 else "left",
            fontsize=8,
            color=colours[ends.iloc[0]["arch"]],
        )  # fmt: skip
        for (at, rank), ends in every[every["at"].isin([0, last])].groupby(["at", "rank"])
    ]
    ax.set_xticks(range(len(rungs)), [f"{epochs_text(epochs)}" for epochs, _ in rungs])
    ranks = range(1, int(every["rank"].max()) + 1)
    ax.set_yticks(list(ranks), [f"#{r}" for r in ranks], fontsize=8)
    ax.set_ylim(max(ranks) + 0.6, 0.4)
    ax.set_ylabel("rank (1 = lowest error)")
    ax.grid(axis="x", alpha=0.3)
    # below the rungs' names at any height (anchored to the axes, it covered them when the
    # chart was short: a few groups)
    legend(fig, colours, markers, loc="outside lower center", ncols=8)
    subtitle = "each rung a full training schedule of that many epochs"
    ax.set_title(LADDER_PLOTS["ladder_ranks"] + "\n" + subtitle, fontsize=11)
    hold_names(fig, ax, names, last)
    return fig


def hold_names(fig: Figure, ax: Any, names: list[Any], last: int) -> None:
    """x-limits that hold every end name inside the frame: a long joint name ("... (default and
    tuned = default)") ran over the frame's edge, the line through its words. The names keep
    their width in pixels while the limits change, so the span is solved for: the rungs' span
    plus a margin takes what the widest names on each side leave of the axes. Names that would
    leave too little are wrapped first (a three-way tie's 95 characters)."""
    import textwrap

    def widths() -> tuple[float, float, float]:
        fig.canvas.draw()  # lays the figure out: the names' and the axes' extents as drawn
        renderer = fig.canvas.get_renderer()
        wide = {n: n.get_window_extent(renderer).width for n in names}
        left = max((w for n, w in wide.items() if n.get_horizontalalignment() == "right"),
                   default=0.0)  # fmt: skip
        right = max((w for n, w in wide.items() if n.get_horizontalalignment() == "left"),
                    default=0.0)  # fmt: skip
        return left, right, ax.get_window_extent(renderer).width

    for name in names:  # inside the frame once placed: the layout is not to make room for them
        name.set_in_layout(False)
    left, right, frame = widths()
    if left + right > 0.6 * frame:
        for name in names:
            name.set_text(textwrap.fill(name.get_text(), 40))
        left, right, frame = widths()
    margin = 0.15  # data units between a name and the frame
    span = (last + 2 * (NAME_GAP + margin)) / max(1 - (left + right) / frame, 0.2)
    unit = span / frame  # data units a pixel
    low = -NAME_GAP - margin - left * unit
    ax.set_xlim(low, low + span)


def plot_curves(rungs: list[tuple[int, pd.DataFrame]], look: Styles | None = None) -> Figure:
    """One panel per encoder, one line per fusion and variant (fusion as colour and marker):
    error (log) against the rung's epochs (log), with 95% CI bars."""
    every = pd.concat([g.assign(epochs=e) for e, g in rungs], ignore_index=True)
    encoders = sorted(set(every["arch"]))
    look = look or Styles.of(every)
    colours, markers = look.fusion_colours(every["fusion"]), look.markers(every["fusion"])
    # wide enough for the title and the key's six columns however few encoders (one: 4.6 in,
    # both cut at the sides)
    fig, axes = new_figure(max(4.6 * len(encoders), 11.0), 4.6, ncols=len(encoders))
    for ax, arch in zip(axes, encoders, strict=True):
        mine = every[every["arch"] == arch]
        for (fusion, tuned), line in mine.groupby(["fusion", "tuned"], sort=True):
            line = line.sort_values("epochs")
            colour = colours[fusion]
            ax.errorbar(
                line["epochs"],
                line["test_sum_err_mean"],
                yerr=line["test_sum_err_ci"].fillna(0),
                color=colour,
                ls="-" if tuned else "--",
                marker=markers[fusion],
                mfc=colour if tuned else "white",
                ms=6,
                capsize=3,
                lw=1.3,
                label=f"{fusion} ({'tuned' if tuned else 'default'})",
            )
        ax.set(title=arch, xlabel="epochs of the rung (log)", xscale="log", yscale="log")
        epochs = sorted(set(every["epochs"]))
        ax.set_xticks(epochs, [str(e) for e in epochs])
        ax.minorticks_off()
        plain_log_ticks(ax.yaxis)
        ax.grid(which="both", alpha=0.3)
    # one key for the panels, under them (a key in each repeated it at a size that shrank to
    # 6 px where a browser scaled the figure to the page)
    keyed = {
        label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    fig.legend(keyed.values(), keyed.keys(), loc="outside lower center", ncols=6, fontsize=9)
    axes[0].set_ylim(*error_span(every))  # a 1-2-5 tick inside, however narrow the spread
    axes[0].set_ylabel("test sum error % (log)")
    fig.suptitle(LADDER_PLOTS["ladder_curves"] + " (solid: tuned; dashed: default)", fontsize=11)
    return fig


def plot_time(points: pd.DataFrame, device: str, look: Styles | None = None) -> Figure:
    """Every group at every rung: error against training seconds per run (both log), rung as
    colour, fusion as marker (as in every plot), the seconds' spread as a level bar; the Pareto
    front as a step line, its points named."""
    colours = rung_colours(list(points["rung"]))
    markers = (look or Styles.of(points)).markers(points["fusion"])
    fig, ax = new_figure(11, 6.5)
    ax.set_xscale("log")  # before the points: their level bars end above zero on it
    for r in points.itertuples(index=False):
        error_point(ax, r.train_seconds_mean, r, colours[r.rung], markers[r.fusion],
                    x_sd=r.train_seconds_std)  # fmt: skip
    front = points[points["front"]].sort_values("train_seconds_mean")
    ax.step(front["train_seconds_mean"], front["test_sum_err_mean"], where="post", color="black",
            lw=0.9, ls=":")  # fmt: skip
    # Front points are numbered beside the marker and named in a key: the names themselves
    # overlap where the front is dense (several rungs meet at similar time and error).
    from matplotlib.lines import Line2D

    key = []
    for i, r in enumerate(front.itertuples(index=False), start=1):
        ax.annotate(str(i), (r.train_seconds_mean, r.test_sum_err_mean), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=8,
                    fontweight="bold")  # fmt: skip
        key.append(Line2D([], [], color=colours[r.rung], marker=markers[r.fusion],
                          mfc=colours[r.rung] if r.tuned else "white", ls="",
                          label=f"{i}  {short(r)}, {epochs_text(r.rung)}"))  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel=f"training seconds per run (log; {device})",
           ylabel="test sum error % (log)")  # fmt: skip
    seconds = spread_ends(points["train_seconds_mean"], points["train_seconds_std"])
    ax.set_xlim(*log_span(float(seconds.min()), float(seconds.max())))  # a 1-2-5 tick inside
    ax.set_ylim(*error_span(points))
    plain_log_ticks(ax.xaxis)
    plain_log_ticks(ax.yaxis)
    ax.grid(which="both", alpha=0.3)
    rungs = {epochs_text(k): c for k, c in colours.items()}
    handles = style_handles(rungs, markers, False, colour_of="budget")
    handles.append(Line2D([], [], color="black", ls=":", label="Pareto front"))
    ax.add_artist(
        ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    )
    if key:
        ax.legend(handles=key, fontsize=8, loc="lower left", bbox_to_anchor=(1.01, 0),
                  title="Pareto front", title_fontsize=8)  # fmt: skip
    ax.set_title(LADDER_PLOTS["ladder_time"] + " (lower left is better)", fontsize=11)
    return fig


def ladder_plots(
    rungs: list[tuple[int, pd.DataFrame]],
    points: pd.DataFrame,
    device: str,
    out: Path | None = None,
    look: Styles | None = None,
) -> dict[str, bytes]:
    """PNG bytes by name (``LADDER_PLOTS``) from each rung's groups (epochs, ``Rung.groups``)
    and the equal-time points; a plot without data is left out. Plots an earlier report drew
    into ``out/plots`` from the same figures with the same code are read back, not drawn.
    ``look``: the report's styles (by default, the rungs' groups')."""
    rungs = [(e, g) for e, g in rungs if not g.empty]
    if len(rungs) < 2:
        return {}
    look = look or Styles.of(*(g for _, g in rungs))
    parts = [f"{e}\n{g.to_csv(index=False, float_format='%.17g')}" for e, g in rungs]
    parts += [points.to_csv(index=False, float_format="%.17g"), device, repr(look)]
    stamp = drawing_stamp(parts, [__file__, inspect.getfile(error_point)])
    found = drawn_before(None if out is None else out / "plots", stamp)
    if found is not None:
        return found
    plots = {"ladder_ranks": plot_ranks(rungs, look), "ladder_curves": plot_curves(rungs, look)}
    if not points.empty:
        plots["ladder_time"] = plot_time(points, device, look)
    return stamped(plots, stamp)
