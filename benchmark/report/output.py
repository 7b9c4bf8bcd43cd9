"""The report's output primitives, shared by every section: number cells, markdown tables and
PNG figures (Agg canvas, no metadata, so equal inputs give equal bytes)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
MISSING = "-"


def fmt(value: Any, spec: str) -> str:
    return MISSING if pd.isna(value) else format(value, spec)


def seconds_cell(value: Any, spec: str = ".1f") -> str:
    """Training seconds to a tenth: a tiny run under 0.05 s reads "<0.1", where "0.0" read as
    training that cost nothing."""
    return "<0.1" if 0 < value < 0.05 else fmt(value, spec)


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


def png_bytes(fig: Figure, stamp: str | None = None) -> bytes:
    """PNG without the Software / date metadata, so equal figures give equal bytes; ``stamp``,
    if given, is kept as its Comment (what the figure was drawn from, see ``png_stamp``).

    Drawn once on the Agg canvas, laid out and rendered in that one draw: ``savefig`` draws a
    figure with a layout engine twice (the first only to lay it out) for the same pixels, and
    drawing is most of a report's time (a third less with one draw, on the ladder tests)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    original, dpi = fig.canvas, fig.dpi  # pyplot's (Optuna's plots), perhaps a GUI's: kept
    canvas = FigureCanvasAgg(fig)
    try:
        fig.set_dpi(DPI)
        canvas.draw()
        buf = io.BytesIO()
        metadata = {"Software": None, **({"Comment": stamp} if stamp else {})}
        imsave(buf, canvas.buffer_rgba(), format="png", origin="upper", dpi=DPI, metadata=metadata)
    finally:
        fig.set_dpi(dpi)
        fig.set_canvas(original)
    return buf.getvalue()


def png_stamp(blob: bytes) -> str | None:
    """The Comment ``png_bytes`` stored in a PNG (its text chunks come before the image data);
    None if there is none or ``blob`` is no PNG."""
    at = 8  # the signature
    while blob.startswith(b"\x89PNG\r\n\x1a\n") and at + 8 <= len(blob):
        size, kind = int.from_bytes(blob[at : at + 4], "big"), blob[at + 4 : at + 8]
        if kind == b"IDAT":
            break
        if kind == b"tEXt":
            key, _, text = blob[at + 8 : at + 8 + size].partition(b"\0")
            if key == b"Comment":
                return text.decode("latin-1")
        at += 12 + size
    return None


def short_hash(chunks: Iterable[bytes | str]) -> str:
    """The first 16 hex digits of the SHA-256 of ``chunks`` in order (text as UTF-8): the stamp
    of what a figure or a digest was made from, so an equal stamp means an equal result."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk.encode() if isinstance(chunk, str) else chunk)
    return digest.hexdigest()[:16]


def sources(*modules: str) -> list[bytes]:
    """The text of the code files ``modules`` (``__file__`` of each), for a stamp."""
    return [Path(module).read_bytes() for module in modules]


def drawing_stamp(parts: list[str], code: list[str]) -> str:
    """A short hash of what a set of figures is drawn from: ``parts`` (their data, as text),
    the files of the ``code`` that draws them and matplotlib's version (read from the installed
    package, so a report whose figures are all drawn already never imports matplotlib)."""
    return short_hash([metadata.version("matplotlib"), *parts, *sources(*code)])


def drawn_before(directory: Path | None, stamp: str) -> dict[str, bytes] | None:
    """The figures an earlier report drew into ``directory`` with ``stamp`` (each PNG's comment
    is the stamp and the names of the figures drawn with it), if all of them are still there;
    else None (draw them)."""
    if directory is None:
        return None
    for path in sorted(directory.glob("*.png")):
        comment = png_stamp(path.read_bytes())
        if comment and comment.split(" ")[0] == stamp:
            names = comment.split(" ")[1].split(",") if " " in comment else []
            break
    else:
        return None
    found = {}
    for name in names:
        path = directory / f"{name}.png"
        blob = path.read_bytes() if path.is_file() else b""
        if png_stamp(blob) != comment:
            return None
        found[name] = blob
    return found


def stamped(figures: dict[str, Figure], stamp: str) -> dict[str, bytes]:
    """PNG bytes by name, each carrying ``stamp`` and the names drawn with it (``drawn_before``)."""
    comment = f"{stamp} {','.join(figures)}"
    return {name: png_bytes(fig, comment) for name, fig in figures.items()}
