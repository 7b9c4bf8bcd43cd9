"""``report``: aggregate the finished runs (and bench CSVs) into report.md, report.html,
summary.csv and plots (``benchmark.report``); ``--against DIR`` sets them beside a reference."""

from __future__ import annotations

import argparse
import glob
from collections import Counter
from pathlib import Path
from shlex import quote

from benchmark import rundir
from benchmark.commands.common import (
    OUTPUT,
    UsageError,
    console,
    natural_width,
    print_wide,
)
from benchmark.commands.values import path_text
from benchmark.errors import DamagedFileError
from benchmark.files import check_writable
from benchmark.places import bench_glob, runs_glob
from benchmark.progress import say_whole
from benchmark.wording import plural


def cmd_report(args: argparse.Namespace) -> int:
    """Aggregate the runs (and bench CSVs) into report.md, report.html, summary.csv and plots."""
    from benchmark.comparison import load_comparison
    from benchmark.report import (
        REPORT_FILES,
        answer_lead,
        beside,
        load_inputs,
        rich_table,
        write_report,
    )
    from benchmark.report.load import (
        NOT_A_RUN,
        incomplete_count,
        reference_inputs,
        repeated,
    )
    from benchmark.storages import spec_of_label

    base = Path(args.results_dir)
    runs = args.runs or [runs_glob(base)]
    bench = args.bench or bench_glob(base)
    out = Path(args.out or base)
    # the defaults may match nothing (a directory of tuning studies alone); a given glob not
    if args.bench and not glob.glob(args.bench):
        raise UsageError(f"--bench {args.bench!r} matches no file; expected a glob of bench CSVs")
    if args.storage is not None:
        from benchmark.storages import check_form

        check_form(args.storage, "--storage")  # a typo is one line; no server, a note
    for given in args.runs or []:  # each: a glob typed wrong beside one right left runs out
        check_runs_glob(given)
    check_writable(
        out,
        "--out" if args.out else "--results-dir",
        folders=("plots", "studies"),
        names=REPORT_FILES,
    )
    inputs = load_inputs(runs, bench, base, out, args.storage, chosen=bool(args.runs))
    unfinished = inputs.incomplete[inputs.incomplete["status"] != NOT_A_RUN]  # a stray file: none
    found = [inputs.runs, unfinished, inputs.bench]
    if all(frame.empty for frame in found) and not inputs.studies.digests:
        if inputs.notes:  # there was something to report, damaged: name it
            raise DamagedFileError(f"nothing readable to report in {base}: {inputs.notes[0]}")
        why = misplaced(base) or "no run directory, bench CSV or tuning study in it" + (
            f" (its tuned/ exports name studies in {', '.join(away)}: give "
            f"--storage {quote(spec_of_label(away[0], base))})"
            if (away := storages_elsewhere(base, args.storage))
            else ""
        )
        raise UsageError(
            f"--results-dir {base}: {why}; expected the --results-dir of run, tune, bench or "
            "compare (the committed one: results)"
        )
    against = None
    if args.against:
        reference = Path(args.against)
        if reference.resolve() == base.resolve():
            raise UsageError(f"--against {reference} is the results directory itself")
        if reference.resolve() == out.resolve():  # its own report.md would be replaced
            raise UsageError(
                f"--against {reference} is the --out directory: the report would replace the "
                "reference's own; give another --out"
            )
        theirs = reference_inputs(reference)
        try:
            theirs.comparison = load_comparison(reference)
        except DamagedFileError as exc:  # its budget from its runs: another answer, said so
            theirs.notes.append(f"{exc}; its budget is taken from its runs instead")
        if theirs.runs.empty:
            why = misplaced(reference) or f"no complete run in {reference / 'runs'}"
            raise UsageError(f"--against {reference}: {why}")
        inputs, against = beside(inputs, theirs), str(args.against)
    summary, written = write_report(inputs, out, against)
    if not summary.empty:
        table = rich_table(summary)
        if console.is_terminal and natural_width(table) > console.width:
            # squeezed, every column read "99…": the answer's columns, the rest in report.md
            table = rich_table(summary, narrow=True)
            table.caption = f"every column: {out / 'report.md'}"
        print_wide(table)
    if not inputs.incomplete.empty:
        console.print(f"listed in the report: {incomplete_count(inputs.incomplete)}")
        damaged = inputs.incomplete[inputs.incomplete["status"] == "complete"]  # done, unread
        for row in damaged.head(3).itertuples(index=False):  # named here as a damaged file is
            say_whole(f"damaged, left out: run {row.run}: {row.reason}")
        if len(damaged) > 3:
            console.print(f"and {len(damaged) - 3} more damaged (listed in the report)")
    if not inputs.repeats.empty:
        console.print(f"{repeated(inputs.repeats)} (listed in the report)")
    for note in inputs.notes:
        console.print(note)
    console.print(f"answer: {answer_lead(written[0].read_text())}", markup=False)
    say_whole(written_line(out, written))
    return 0


def check_runs_glob(given: str) -> None:
    """A ``UsageError`` for a ``--runs`` glob that matches no run directory: a path typed wrong
    is named, not reported on as no runs, or as one unreadable run; with ``--runs`` repeated,
    each glob is held to it (one typed wrong was passed over where another matched)."""
    from benchmark.report.load import find_run_dirs

    matched = find_run_dirs(given)
    if not any(found.is_dir() for found in matched):
        more = ", ..." if len(matched) > 1 else ""
        first = f"{matched[0]}{' (a broken link)' * (not matched[0].exists())}" if matched else ""
        links = any(found.is_symlink() for found in matched)
        noun = plural(len(matched), *(("file or link", "files or links") if links else ("file",)))
        files_only = f" (only {noun}: {first}{more})" if matched else ""
        raise UsageError(
            f"--runs {given!r} matches no run directory{files_only}; expected a "
            "glob of run directories such as results/runs/*"
        )
    if not any(map(rundir.is_run_dir, matched)):  # it wrote an empty report
        holder = next((d for d in matched if holds_runs(d)), None)
        hint = (
            f"; {holder} holds run directories: give {quote(str(holder / '*'))}" if holder else ""
        )
        raise UsageError(
            f"--runs {given!r} matches no run directory (none holds a file a run "
            f"writes, such as config.json){hint}; expected a glob of run directories such as "
            "results/runs/*"
        )


def misplaced(folder: Path) -> str:
    """Why a results directory given holds nothing to read, where that is a slip to name: it
    does not exist, or it is the runs/ folder inside one (its run directories are one level
    up from where they are looked for)."""
    if not folder.exists():
        return "no such directory"
    if holds_runs(folder):
        return (
            f"it holds run directories itself; give the results directory above it, {folder.parent}"
        )
    return ""


def storages_elsewhere(base: Path, storage: str | None) -> list[str]:
    """The storages the results directory's tuned/ exports name, other than the one read (its
    optuna.db, or ``--storage``), as the exports record them: studies tuned into a journal
    file were not found, and the report said there was no tuning study."""
    import json

    from benchmark.places import OPTUNA_DB, TUNED
    from benchmark.storages import storage_label

    read = storage_label(storage or f"sqlite:///{base / OPTUNA_DB}", base)
    named = set()
    for path in sorted((base / TUNED).glob("*.json")):
        try:
            found = json.loads(path.read_text()).get("storage")
        except (OSError, ValueError, AttributeError):  # a damaged export: its own message
            continue
        if isinstance(found, str) and found != read:
            named.add(found)
    return sorted(named)


def holds_runs(folder: Path) -> bool:
    """Whether run directories lie directly in ``folder`` (a runs/ folder, given in place of
    a glob of its runs or of the results directory above it)."""
    return any(map(rundir.is_run_dir, entries(folder)))


def entries(folder: Path) -> list[Path]:
    """What ``folder`` holds; nothing where it is not a folder this user may read."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def written_line(out: Path, written: list[Path]) -> str:
    """What a report wrote, in one line: its own files by name, those of its folders (plots,
    the studies' CSVs and plots: a hundred for the committed ladder) counted."""
    folders = Counter(p.parent for p in written if p.parent != out)
    counted = [f"{plural(n, 'file')} in {folder}/" for folder, n in sorted(folders.items())]
    return "wrote " + ", ".join([*(str(p) for p in written if p.parent == out), *counted])


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="aggregate runs into report.md, report.html, summary.csv, plots",
        description=cmd_report.__doc__,
    )
    p.add_argument(
        "--results-dir",
        type=path_text,
        default=OUTPUT,
        metavar="DIR",
        help=f"report on DIR/runs/*, DIR/bench/*.csv, DIR/comparison.json and DIR/optuna.db, "
        f"into DIR [{OUTPUT}; the committed reference: results]",
    )
    p.add_argument(
        "--runs",
        type=path_text,
        metavar="GLOB",
        action="append",
        help="run directories [DIR/runs/*]; repeat to take several",
    )
    p.add_argument(
        "--out",
        type=path_text,
        metavar="DIR",
        help="where report.md, report.html, summary.csv, plots/ and (with studies) studies/ go "
        "[DIR]",
    )
    p.add_argument("--bench", type=path_text, metavar="GLOB", help="bench CSVs [DIR/bench/*.csv]")
    p.add_argument(
        "--storage",
        type=path_text,
        metavar="URL",
        help="the Optuna storage the studies were tuned in, where it is not DIR/optuna.db: the "
        "--storage of tune or compare (a PostgreSQL URL, journal:PATH, sqlite:///PATH), read "
        "only; $OPTUNA_STORAGE is not read here, so a report shows its directory's own "
        "studies unless told [DIR/optuna.db]",
    )
    p.add_argument(
        "--against",
        type=path_text,
        metavar="DIR",
        help="set your runs beside the reference groups of another results directory (the "
        "committed one: results) at its budget, tested against its best",
    )
    p.set_defaults(func=cmd_report)
