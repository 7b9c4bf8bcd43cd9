"""How the report's scatter and line plots mark groups and scale axes, shared by ``plots`` and
``ladder_plots``: a colour per encoder, a marker per fusion in every plot, filled for tuned and
hollow for default, keyed under headings; error and cost axes whose limits always hold a tick;
markers that would cover each other set apart."""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import Any

import pandas as pd

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
# Where the panels are the encoders (the curves), lines are coloured by fusion in colours that
# mean no encoder (above) and no budget (the time plot's purples): a blue line there had read as
# gap_cnn's. Red, teal and grey first, dark on white; each fusion has its marker there too.
FUSION_COLOURS = ("#b2182b", "#01665e", "#4d4d4d", "#8c510a", "#7f7f00", "#762a83")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
KIND_MARKER = "h"  # tuned (filled) / default (hollow) in legends: no fusion uses it
WIDE = 20.0  # a cost axis whose largest value is this many times its smallest goes log
# a log axis' ticks in each decade by how wide it is (its high over its low): under a decade,
# 1-7; under two, 1, 2, 3 and 5; wider, 1, 2 and 5 (each written in one digit: no 1.5)
LOG_SUBS = ((10.0, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)), (100.0, (1.0, 2.0, 3.0, 5.0)),
            (math.inf, (1.0, 2.0, 5.0)))  # fmt: skip
FLOOR = 0.001  # % error, one test pair in 100,000: where a log axis of errors ends below a 0


def plain_log_ticks(axis: Any) -> None:
    """Log-axis ticks at 1, 2 and 5 per decade, more on a narrow axis (the committed winners'
    0.36-0.47% sat between the ticks 0.2 and 0.5 unread), written as plain numbers (0.3, 0.5,
    1, 2 ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    class Ticks(LogLocator):
        def __call__(self) -> Any:
            low, high = sorted(self.axis.get_view_interval())
            ratio = high / low if low > 0 else math.inf
            self.set_params(subs=next(subs for wide, subs in LOG_SUBS if ratio < wide))
            return super().__call__()

    axis.set_major_locator(Ticks())
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
    interval may; an error cannot). An error of 0 (every test pair right) has no place on a log
    axis: the span then reaches down to ``FLOOR``, and the point is left off the plot."""
    high = max(high, FLOOR)
    low = low if low > 0 else FLOOR
    low, high = log_span(low, high)
    return (low * 100 / high, 100.0) if high > 100 else (low, high)


def error_span(rows: pd.DataFrame) -> tuple[float, float]:
    """The error axis' limits: every mean and every interval end that a log axis can show."""
    mean, half = rows["test_sum_err_mean"], rows["test_sum_err_ci"].fillna(0)
    low = (mean - half).where(mean - half > 0, mean)
    return percent_span(float(low.min()), float((mean + half).max()))


def cost_axis(ax: Any, axis: str, values: pd.Series, ends: pd.Series | None = None) -> None:
    """A cost axis (parameters, seconds): logarithmic when the values span more than ``WIDE``;
    ``ends`` (of bars about them) widen a log axis's limits, not the choice of scale, which one
    group's wide bar had switched."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    known = values.dropna()
    known = known[known > 0]
    target = getattr(ax, f"{axis}axis")
    if known.empty or known.max() / known.min() <= WIDE:
        target.set_major_locator(MaxNLocator(6))
    else:
        held = pd.concat([known, ends.dropna()]) if ends is not None else known
        held = held[held > 0]
        getattr(ax, f"set_{axis}scale")("log")
        getattr(ax, f"set_{axis}lim")(*log_span(float(held.min()), float(held.max()), 1.0))
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
    glyph no encoder or fusion is drawn with: a circle there read as one group's."""
    from matplotlib.lines import Line2D

    solid, dashed = ("-", "--") if lines else ("", "")
    return [
        Line2D([], [], color="black", marker=KIND_MARKER, ls=solid,
               label="tuned: filled" + (", solid" if lines else "")),
        Line2D([], [], color="black", marker=KIND_MARKER, mfc="white", ls=dashed,
               label="default: hollow" + (", dashed" if lines else "")),
    ]  # fmt: skip


@dataclass(frozen=True)
class Styles:
    """What a report's colours and markers mean, decided once for all its plots: a colour per
    encoder (``COLOURS``), a marker and a line colour per fusion (``MARKERS``,
    ``FUSION_COLOURS``), by position in ``encoders`` and ``fusions``. A plot that shows only some
    of a report's fusions still gives each its report-wide shape: decided per plot, in sorted
    order, a user's fusion beside a reference had one shape in one plot and another in the next."""

    encoders: tuple[str, ...]
    fusions: tuple[str, ...]

    @classmethod
    def of(cls, shown: pd.DataFrame, *more: pd.DataFrame) -> Styles:
        """The encoders and fusions of ``shown`` (a summary) and ``more`` (a ladder's groups) in
        sorted order, then the user's own (``yours``): beside a reference, it keeps its styles."""

        def order(column: str) -> tuple[str, ...]:
            theirs: set[str] = set()
            mine: set[str] = set()
            for frame in (shown, *more):
                yours = frame.get("yours", pd.Series(False, frame.index)).astype(bool)
                theirs |= set(frame.loc[~yours, column])
                mine |= set(frame.loc[yours, column])
            return (*sorted(theirs), *sorted(mine - theirs))

        return cls(order("arch"), order("fusion"))

    def colours(self, encoders: Any) -> dict[str, str]:
        return _by_position(self.encoders, encoders, COLOURS)

    def markers(self, fusions: Any) -> dict[str, str]:
        return _by_position(self.fusions, fusions, MARKERS)

    def fusion_colours(self, fusions: Any) -> dict[str, str]:
        return _by_position(self.fusions, fusions, FUSION_COLOURS)


def _by_position(order: tuple[str, ...], shown: Any, values: tuple[str, ...]) -> dict[str, str]:
    """``values`` by each name's position in ``order``, for the names in ``shown`` (in order)."""
    present = set(shown)
    return {n: values[i % len(values)] for i, n in enumerate(order) if n in present}


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


def spread_bar(x: float, sd: float, log: bool = True) -> tuple[float, float]:
    """How far a bar of +- ``sd`` about ``x`` reaches below and above it: nothing for no spread
    (one seed: NaN); on a log axis its lower end kept above zero, where the axis has no place."""
    sd = 0.0 if pd.isna(sd) else float(sd)
    return (min(sd, 0.9 * x) if log else sd), sd


def spread_ends(x: pd.Series, sd: pd.Series) -> pd.Series:
    """Both ends of every ``spread_bar`` on a log axis (for its limits, which must hold them)."""
    bars = [spread_bar(a, b) for a, b in zip(x, sd, strict=True)]
    return pd.Series([a - low for a, (low, _) in zip(x, bars, strict=True)] +
                     [a + high for a, (_, high) in zip(x, bars, strict=True)])  # fmt: skip


def error_point(
    ax: Any, x: float, r: Any, colour: Any, marker: str, dodge: float = 0.0, x_sd: float = 0.0
) -> None:
    """One group's test sum error with its interval at ``x``: filled when tuned, hollow when
    default (the convention of every scatter of the report); ``dodge`` points to the right;
    ``x_sd``: a horizontal bar of +- that much (the spread of a group's seconds)."""
    from matplotlib.transforms import offset_copy

    ci = 0 if pd.isna(r.test_sum_err_ci) else r.test_sum_err_ci
    below, above = spread_bar(x, x_sd, ax.get_xscale() == "log")  # the scale set before
    ax.errorbar(
        x,
        r.test_sum_err_mean,
        yerr=ci,
        xerr=[[below], [above]] if above else None,
        marker=marker,
        color=colour,
        mfc=colour if r.tuned else "white",
        ms=7,
        capsize=2,
        lw=0.8,
        transform=offset_copy(ax.transData, fig=ax.figure, x=dodge, units="points"),
    )
    # (matplotlib leaves an artist drawn with an offset out of the limits it scales to)
    ax.update_datalim(
        [(x - below, r.test_sum_err_mean - ci), (x + above, r.test_sum_err_mean + ci)]
    )
    ax.autoscale_view()


def dodges(x: pd.Series, error: pd.Series, step: float = 8.0) -> pd.Series:
    """Horizontal offsets in points that set apart markers which would cover each other: groups
    within 2% of the x span and 6% of each other's error (such as two tuned models of one size
    at one parameter count) spread ``step`` points apart about their place. The span is taken
    as ``cost_axis`` draws it: of the logarithms where that axis is logarithmic."""
    if x.min() > 0 and x.max() / x.min() > WIDE:
        x = x.map(math.log10)
    span = float(x.max() - x.min()) or 1.0
    out = pd.Series(0.0, index=x.index)
    order = list(x.sort_values(kind="stable").index)
    while order:
        first = order.pop(0)
        near = [first] + [
            i
            for i in order
            if x[i] - x[first] <= 0.02 * span
            and abs(error[i] - error[first]) <= 0.06 * error[first]
        ]
        order = [i for i in order if i not in near]
        for k, i in enumerate(near):
            out[i] = (k - (len(near) - 1) / 2) * step
    return out


def scatter(
    ax: Any, rows: pd.DataFrame, x: str, colours: dict, markers: dict, sd: str | None = None
) -> None:
    """Each row's error at its ``x``, with a horizontal bar of +- the ``sd`` column if named."""
    from matplotlib.transforms import offset_copy

    offsets = dodges(rows[x], rows["test_sum_err_mean"])
    for i, r in zip(rows.index, rows.itertuples(index=False), strict=True):
        colour = colours[r.arch]
        x_sd = getattr(r, sd) if sd else 0.0
        error_point(ax, getattr(r, x), r, colour, markers[r.fusion], offsets[i], x_sd)
        if r.yours:
            ax.plot(
                getattr(r, x), r.test_sum_err_mean, "o", mfc="none", mec="black", ms=14, mew=1.6,
                transform=offset_copy(ax.transData, fig=ax.figure, x=offsets[i], units="points"),
            )  # fmt: skip
