"""The report's *Bench measurements* section: every ``bench`` row, and what its A/B rows say
of compiled against eager training on each machine."""

from __future__ import annotations

import pandas as pd

from benchmark.benchfile import HEADINGS, ab_text, combination_of
from benchmark.machines import with_features
from benchmark.report.output import fmt, markdown_table
from benchmark.wording import plural


def figure(*keys: str) -> dict[str, tuple[str, str]]:
    """``BENCH_TABLE`` entries of measured figures, named and formatted as bench names them."""
    return {HEADINGS[key][0]: (key, HEADINGS[key][1]) for key in keys}


# The bench section's table: header -> (bench column, format).
BENCH_TABLE = {
    "device": ("device", ""),
    "cpu features": ("cpu_features", ""),  # hardware.cpu_features: rows since it was recorded
    "precision": ("precision", ""),
    "infer batch": ("batch_size", ".0f"),
    "train batch": ("train_batch_size", ".0f"),
    "channels last": ("channels_last", ""),
    "compile": ("compile", ""),
    **figure("params"),
    "MACs/img": ("macs_per_image", ",.0f"),
    **figure("infer_images_per_s", "latency_ms_b1", "train_images_per_s"),
    **figure("compile_seconds", "train_compile_seconds"),
    "train vs eager (A/B)": ("ab", ""),  # benchfile.ab_text: bench --compile-ab rows only
    **figure("peak_mem_mb"),
    "torch": ("torch", ""),
    "commit": ("commit", ""),
    "error": ("error", ""),
}
# Rows from before ``cpu_features``: VMs name CPUs with and without AVX-512 alike, so such a
# machine's line must not read as that of a CPU of the same name whose features are given.
UNRECORDED = ", CPU features not recorded"
OPTIONAL = ("ab", "cpu_features")  # BENCH_TABLE columns shown only where a row has one


def compile_text(bench: pd.DataFrame) -> str:
    """Per machine with ``bench --compile-ab`` rows, the range of compiled/eager training over
    its configurations: whether ``--compile`` pays there, in one line rather than from rows
    scattered through the table; empty without such rows."""
    rows = bench[bench["ab_ratio"].notna()]
    where = [
        with_features(d, f)
        if isinstance(f, str) and f
        else f"{d}{UNRECORDED if d.startswith('cpu') else ''}"
        for d, f in zip(rows["device"], rows["cpu_features"], strict=True)
    ]
    lines = []
    # an Index, not the list: pandas takes a one-item list as a list of keys (a tuple came out)
    for machine, ratios in rows["ab_ratio"].groupby(pd.Index(where), sort=True):
        low, high = f"{ratios.min():.2f}x", f"{ratios.max():.2f}x"
        span = low if low == high else f"{low[:-1]}-{high}"
        lines.append(f"- {machine}: {span} over {plural(len(ratios), 'configuration')}")
    if not lines:
        return ""
    intro = (
        "Compiled against eager training (`bench --compile-ab`: each configuration's median "
        "over its rounds, compile time left out; above 1x compiling pays):"
    )
    return intro + "\n\n" + "\n".join(lines)


def bench_section(bench: pd.DataFrame) -> str:
    if bench.empty:
        return ""
    parts = ["## Bench measurements"]
    rows = bench.sort_values(["arch", "fusion", "device", "precision", "batch_size"], kind="stable")
    compiled = rows["compile"].eq(True)  # blank in rows of no compile column: eager
    rows = rows.assign(
        ab=[ab_text(r) for r in rows.to_dict("records")],
        cpu_features=rows["cpu_features"].astype(object).fillna("-"),
        # an eager row compiled nothing: "-", as bench prints it, not the 0.0 rows recorded
        **{key: rows[key].where(compiled) for key in ("compile_seconds", "train_compile_seconds")},
    )
    # left out where no row has one: the A/B, and the CPU features of rows from before them
    shown = {
        h: c for h, c in BENCH_TABLE.items() if c[0] not in OPTIONAL or rows[c[0]].ne("-").any()
    }
    table = pd.DataFrame(
        {"combination": [combination_of(r) for r in rows.to_dict("records")]}
        | {
            header: rows[column].map(lambda v, spec=spec: fmt(v, spec))
            for header, (column, spec) in shown.items()
        }
    )
    parts += [*filter(None, [compile_text(bench)]), markdown_table(table), COLUMNS]
    return "\n\n".join(parts)


COLUMNS = (  # said under the table: its headers are short
    "*infer img/s*: images a second through the forward pass at *infer batch*; *latency b1 ms*: "
    "one image's forward pass; *train img/s*: training images a second (forward, backward and "
    "optimizer step) at *train batch*; *compile s*: every compile of the row, kept out of the "
    "timed part; *train compile s*: the training step's share of it, what a compiled run pays."
)
