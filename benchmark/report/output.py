"""The report's output primitives, shared by every section: number cells, markdown tables and
PNG figures (Agg canvas, no metadata, so equal inputs give equal bytes)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
MISSING = "-"


def fmt(value: Any, spec: str) -> str:
    return MISSING if pd.isna(value) else format(value, spec)


def error_cell(mean: Any, half: Any) -> str:
    """Error % with the half-width of its 95% interval."""
    return fmt(mean, ".2f") + ("" if pd.isna(half) else f" ± {half:.2f}")


def p_cell(p: float) -> str:
    return "<0.001" if p < 0.001 else fmt(p, ".3f")


def markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(c) for c in table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)
    ]
    return "\n".join(lines)


def new_figure(width: float, height: float, ncols: int = 0) -> tuple[Figure, Any]:
    """A figure on the Agg canvas (no pyplot, no global state) and its axes: one, or a row of
    ``ncols`` (sharing y); imported here so that other commands do not pay for matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    if ncols:
        return fig, fig.subplots(1, ncols, sharey=True, squeeze=False)[0]
    return fig, fig.subplots()


def png_bytes(fig: Figure) -> bytes:
    """PNG without the Software / date metadata, so equal figures give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
