"""``report``: aggregate the finished runs (and bench CSVs) into report.md, summary.csv and
plots (``benchmark.report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.common import OUTPUT, UsageError, console, print_wide


def cmd_report(args: argparse.Namespace) -> int:
    """Aggregate the runs (and bench CSVs) into report.md, summary.csv and plots."""
    from benchmark.report import load_inputs, rich_table, write_report

    base = Path(args.results_dir)
    args.runs = args.runs or str(base / "runs" / "*")
    args.bench = args.bench or str(base / "bench" / "*.csv")
    out = Path(args.out or base)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; expected a directory (created if missing)")
    inputs = load_inputs(args.runs, args.bench, base)
    if inputs.runs.empty and inputs.incomplete.empty:
        raise UsageError(
            f"--runs {args.runs!r} matches no run directory; expected a glob such as results/runs/*"
        )
    summary, written = write_report(inputs, out)
    if not summary.empty:
        print_wide(rich_table(summary))
    if not inputs.incomplete.empty:
        console.print(f"{len(inputs.incomplete)} incomplete run(s) listed in the report")
    for note in inputs.notes:
        console.print(note)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="aggregate runs into report.md, summary.csv, plots",
        description=cmd_report.__doc__,
    )
    p.add_argument(
        "--results-dir",
        default=OUTPUT,
        metavar="DIR",
        help=f"report on DIR/runs/* and DIR/bench/*.csv, into DIR [{OUTPUT}; the committed "
        "reference: results]",
    )
    p.add_argument("--runs", metavar="GLOB", help="run directories [DIR/runs/*]")
    p.add_argument("--out", metavar="DIR", help="where report.md, summary.csv, plots/ go [DIR]")
    p.add_argument("--bench", metavar="GLOB", help="bench CSVs [DIR/bench/*.csv]")
    p.set_defaults(func=cmd_report)
