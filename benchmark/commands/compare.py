"""``compare``: the fair comparison (``benchmark.compare``): tune every combination at the final
budget under one parameter cap, train its default and tuned configurations over the same seeds,
write the report. Resumable, and shareable between machines through one Optuna storage."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

from benchmark.commands.common import (
    EXIT_FAILED,
    OUTPUT,
    UsageError,
    add_config_file_flags,
    add_config_flags,
    add_plugin_flag,
    base_config,
    check_data_dir,
    console,
    interrupts_as_exceptions,
    print_wide,
    require_at_least,
    run_workers,
)
from benchmark.commands.models import (
    check_cap,
    check_models,
    check_tuned_subset,
    held_for_every,
    say_untaken,
)
from benchmark.commands.values import (
    add_model_arg_flag,
    budget_list,
    parse_recorded,
    path_text,
    processes,
    seed_list,
)
from benchmark.comparison import (
    COMPARISON,
    Sitting,
    StageClock,
    dropped_by,
    epochs_text,
    load_comparison,
    recorded_flags,
)
from benchmark.config import BATCH_SIZES, SEARCHED, TrainConfig
from benchmark.files import check_writable
from benchmark.places import RUNS, TUNED, bench_glob, runs_glob
from benchmark.progress import check_layout, prepare, say_emulated
from benchmark.trackers import destination
from benchmark.wording import listing, plural

CORE_ARCHS = "gap_cnn,small_cnn,tiny_resnet"
CORE_FUSIONS = "concat,embed_add,late_sum"


# Config fields compare does not take as plain flags: the searched ones (tuning sets them) and
# the epochs, which name the ladder's rungs.
FIXED_BY_COMPARE = (*SEARCHED, "epochs")

AGAIN = (  # said when a compare is interrupted
    "interrupted: finished trials and runs are kept; run the same command again to go on (a "
    "final run stopped goes on from its last finished epoch)"
)


def plans_from(args: argparse.Namespace) -> list[Any]:
    """The protocol the flags ask for, one plan per rung of the ``--epochs`` ladder, checked
    before anything is written."""
    from architectures import ENCODERS, FUSIONS, UnknownNameError
    from benchmark import compare, plugins
    from benchmark.comparison import read_comparison

    check_writable(args.results_dir, folders=(RUNS, TUNED))
    require_at_least(
        [
            ("--trials", args.trials, 1),
            ("--max-params", args.max_params, 1),
            ("--seed", args.seed, 0),
            ("--worker", args.worker, 0),
            ("--jobs", args.jobs, 1),
            ("--sharing", args.sharing, 1),
        ]
    )
    if args.jobs > 1 and args.worker is not None:
        raise UsageError(
            "--jobs starts its worker processes and numbers them itself; give --jobs N or "
            "--worker I (one process of those started by hand), not both"
        )
    if args.sharing is not None and args.sharing < args.jobs:
        raise UsageError(f"--sharing must be at least --jobs ({args.jobs}), got {args.sharing}")
    try:
        pairs = tuple(product(ENCODERS.select(args.arch), FUSIONS.select(args.fusion)))
    except UnknownNameError:  # a rerun without --plugin: the plug-ins the protocol recorded
        found = read_comparison(Path(args.results_dir))
        if not found or not found["plan"].get("plugins"):
            raise
        plugins.load_recorded(found["plan"], Path(args.results_dir) / COMPARISON)
        pairs = tuple(product(ENCODERS.select(args.arch), FUSIONS.select(args.fusion)))
    base = base_config(args, skip=FIXED_BY_COMPARE)
    check_data_dir(base.data_dir)
    rungs = [base.epochs] if args.epochs is None else sorted(set(args.epochs))
    check_tuned_subset(args.train_subset)
    try:  # every rung as the final runs will take it (seeds: their flag's type), before tuning
        for epochs in rungs:
            replace(base, epochs=epochs, batch_size=max(BATCH_SIZES)).validate()
    except ValueError as exc:
        raise UsageError(TrainConfig.in_flag_words(str(exc))) from None
    shares = held_for_every(pairs, base.model_args)
    if args.worker is None:  # said once, by the process a person started
        say_untaken(shares, base.model_args)
    check_models(shares)
    cap = args.max_params or compare.default_cap(pairs, base.model_args)
    check_cap(shares, cap)
    seeds = tuple(args.seeds)
    return [compare.Plan(replace(base, epochs=e), pairs, seeds, args.trials, cap) for e in rungs]


def worker_argv(args: argparse.Namespace, index: int, threads: int | None) -> list[str]:
    """Worker ``index`` of ``--jobs``: this compare as typed, with one process and its own
    number (later flags win), no report (the parent writes it once all are done) and, on a
    CPU, its share of the cores unless ``--threads`` was given."""
    argv = [sys.executable, "-m", "benchmark", *args.argv, "--jobs", "1", "--no-report"]
    argv += ["--worker", str(index), "--sharing", str(args.sharing or args.jobs)]
    if threads is not None and args.threads is None:
        argv += ["--threads", str(threads)]
    return argv


def in_workers(
    args: argparse.Namespace, plans: list[Any], storage: Any, spec: str, device: Any
) -> list[str]:
    """``--jobs N``: N compare processes share the protocol through the storage, as N machines
    would (on one GPU, each keeps it busy while the others launch kernels); this process shows
    their progress. What went wrong, by worker."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from benchmark import compare

    results_dir = Path(args.results_dir)
    sharing = args.sharing or args.jobs
    threads = max(1, (os.cpu_count() or 1) // sharing) if device.type == "cpu" else None
    commands = [worker_argv(args, i, threads) for i in range(1, args.jobs + 1)]
    console.print(
        f"compare in {args.jobs} worker processes (--worker 1-{args.jobs})"
        + (f", {plural(threads, 'CPU thread')} each" if threads and args.threads is None else "")
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as bar:
        tasks = [
            bar.add_task(stage, total=total)
            for stage, _, total in compare.ladder_progress(plans, storage, results_dir)
        ]

        def refresh() -> None:
            for task, (_, done, _) in zip(
                tasks, compare.ladder_progress(plans, storage, results_dir), strict=True
            ):
                bar.update(task, completed=done)

        return run_workers(commands, spec, refresh)


def show_status(
    plans: list[Any], spec: str, local: Path | None, results_dir: Path, other: str | None = None
) -> int:
    """``--status``: where the ladder stands in its storage, on every machine sharing it; trains
    nothing and writes nothing (a storage file not there yet is not created). ``other``: the
    flags of another protocol that results_dir's comparison.json holds ("" where they cannot
    be written out), said first (a status of the defaults' protocol beside a finished ladder
    read as nothing done)."""
    from benchmark import compare, stages, storages

    label = storages.storage_label(spec)
    if other is not None:
        held = f" ({other})" if other else ""  # the flags whole, to copy: soft-wrapped
        note = f"note: {results_dir / COMPARISON} holds another protocol{held}; "
        console.print(note + "this status is of the protocol these flags ask for", soft_wrap=True)
    if local is not None and (not local.exists() or local.stat().st_size == 0):
        made = "is empty" if local.exists() else "does not exist yet"  # emptied: said before
        console.print(f"nothing started: {label} {made}")
        return 0
    with storages.storage_errors(spec):
        found = compare.ladder_status(plans, storages.open_to_read(spec), results_dir)
    table = stages.status_table(found, f"the ladder in {label}")
    print_wide(table)  # a storage's URL is wider than the table: a title line of its own
    if any(rung["trials_running"] or rung["runs_running"] for rung in found):
        console.print(  # under the table, not its caption: wrapped to its width, ragged
            "running: as the storage holds it; the work of a worker killed outright shows as "
            "running until the next compare takes it over"  # not told from live work
        )
    return 0


# compare's flags of how the work is done: --status reads, and they change nothing there
WORK_FLAGS = ("--tune-only", "--no-report", "--jobs", "--worker", "--sharing", "--seed")
WHERE_FLAGS = {"--status", "--results-dir", "--storage", "--plugin", *WORK_FLAGS}  # no protocol


def typed_flags(args: argparse.Namespace) -> set[str]:
    """The flags the command line named (``--jobs=2`` as ``--jobs``), not their defaults."""
    return {word.split("=", 1)[0] for word in args.argv[1:] if word.startswith("-")}


def as_recorded(args: argparse.Namespace, found: dict[str, Any] | None) -> argparse.Namespace:
    """``--status`` given no flag of a protocol: the flags of the one ``found`` (comparison.json)
    holds, as far as its plans record them, so the status is of it (it was of the defaults'
    protocol, beside a note, and read as nothing done); ``args`` where there are none."""
    import shlex

    if typed_flags(args) - WHERE_FLAGS or not (flags := recorded_flags(found)):
        return args
    where = Path(args.results_dir) / COMPARISON
    again = parse_recorded(add_parser, ["compare", *shlex.split(flags), *args.argv[1:]], where)
    again.argv = args.argv
    console.print(f"the protocol {where} holds: {flags}", soft_wrap=True)
    return again


def rung_of(plan: dict[str, Any]) -> str:
    """``9 epochs``: a recorded plan's budget, as the refusal to drop it names it."""
    epochs = (plan.get("budget") or {}).get("epochs")
    return epochs_text(epochs) if isinstance(epochs, int) else "budget unknown"


def cmd_compare(args: argparse.Namespace) -> int:
    """Tune every combination at each budget of the ladder (one cap), train default and tuned
    over the same seeds at each, and write the report; run it again to finish what an
    interruption left."""
    try:
        return protocol(args)
    except KeyboardInterrupt:  # at any stage, its start and the report included
        if not args.status:
            console.print(AGAIN)
        raise


def protocol(args: argparse.Namespace) -> int:
    """``compare``'s work, checks first (``cmd_compare`` says what an interruption keeps)."""
    import optuna

    from benchmark import compare, stages, storages
    from benchmark.data import load_mnist
    from benchmark.hardware import machine_name

    results_dir = Path(args.results_dir)
    found = load_comparison(results_dir)  # damaged: said now, not after hours of work
    if args.status:  # a flag of the work had made it the defaults' status, in silence
        if idle := [flag for flag in WORK_FLAGS if flag in typed_flags(args)]:
            verb = "changes" if len(idle) == 1 else "change"
            console.print(f"note: --status only reads; {listing(idle)} {verb} nothing there")
        args = as_recorded(args, found)
    plans = plans_from(args)
    ladder = [plan.base.epochs for plan in plans]  # lowest first
    spec = storages.storage_spec(args.storage, results_dir)
    local = storages.check_storage(spec, held=found is not None)  # a stage was done in it
    dropped = dropped_by(found, [plan.key() for plan in plans])
    if args.status:
        return show_status(
            plans, spec, local, results_dir, recorded_flags(found) if dropped else None
        )
    if dropped:
        held = listing([f"{p.get('key')} ({rung_of(p)})" for p in dropped])
        plans_held = f"{'plan' if len(dropped) == 1 else 'plans'} {held}"
        flags = recorded_flags(found)
        ran = f" (as its plans record it: {flags})" if flags else ""
        raise UsageError(
            f"{results_dir / COMPARISON} holds stage times of another protocol that this compare "
            f"would drop ({plans_held}: they differ in a rung, or in the combinations, seeds, "
            f"trials, cap, precision or fixed settings); give the command that protocol ran{ran}, "
            "pass another --results-dir, or move the file away to start over"
        )
    if not args.no_report:  # as report checks: not after hours of work, at the last stage
        from benchmark.report import REPORT_FILES

        check_writable(results_dir, folders=("plots", "studies"), names=REPORT_FILES)
    _, ex = prepare(plans[0].base)  # decided once, for every trial and run of this process
    check_layout([arch for plan in plans for arch, _ in plan.pairs], ex)
    say_emulated([ex])
    ex = replace(ex, sharing=args.sharing or 1)  # a worker of --jobs: its timings are shared
    # the data before a new storage: missing MNIST must not leave a new optuna.db behind; a
    # ladder its storage holds complete trains nothing, so it needs none
    storage = None if local is not None and not local.exists() else storages.open_storage(spec)
    with storages.storage_errors(spec):
        complete = storage is not None and compare.ladder_complete(plans, storage, results_dir)
    data = None if complete else load_mnist(plans[0].base.data_dir).to(ex.device)
    if storage is None:
        storage = storages.open_storage(spec)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # the machine as comparison.json and the header name it, with the CPU's features (EPYCs alike)
    where = f"{socket.gethostname()} ({machine_name(ex.device)})"
    if args.jobs > 1:
        with storages.storage_errors(spec), Sitting(results_dir, plans, where, args.jobs):
            died = in_workers(args, plans, storage, spec, ex.device)
        if died:
            for line in died:
                console.print(f"[red]{line}[/red]", soft_wrap=True)
            return EXIT_FAILED
        console.print(f"the {args.jobs} workers are done; the studies and the report:")
    first = plans[0]
    pairs, seeds = len(first.pairs), len(first.seeds)
    console.print(
        f"compare {plural(pairs, 'combination')} x {{default, tuned}} x {plural(seeds, 'seed')}, "
        f"{plural(first.trials, 'trial')} each, cap "
        f"{first.max_params:,} parameters, at {', '.join(map(str, ladder))} "
        f"epoch{'s' if ladder != [1] else ''}; storage "
        f"{storages.storage_label(spec)}; on {where}"
    )
    if first.base.log != "none":  # the final runs are mirrored (trials have no run directory)
        console.print(destination(first.base.log, results_dir), soft_wrap=True, markup=False)
    with interrupts_as_exceptions(), storages.storage_errors(spec):

        def clock(plan: Any, stage: str) -> StageClock:
            return StageClock(results_dir, plan, stage, where, plans)

        # tuning of every rung first: the timed final runs come together
        records, tuned = stages.tune_ladder(
            plans, storage, spec, data, ex, args.seed, args.worker, results_dir, clock
        )
        if args.tune_only:
            console.print("--tune-only: every rung is tuned; run again without it to train")
            return 0
        failed, trained = stages.train_ladder(plans, storage, data, ex, results_dir, records, clock)
        worked = args.jobs > 1 or tuned or trained  # the workers did the work: the report counts
    if not args.no_report:
        from benchmark.report import answer_lead, load_inputs, write_report

        def report() -> None:
            found = runs_glob(results_dir), bench_glob(results_dir)
            write_report(load_inputs(*found, results_dir, storage=spec), results_dir)

        with StageClock(results_dir, plans[-1], "report", where, plans, counted=worked):
            report()
        if worked:  # its own time is in comparison.json now: said as a rerun would say it,
            report()  # which changed report.md once (a rerun adds no time: it stays the same)
        console.print(
            f"answer: {answer_lead((results_dir / 'report.md').read_text())}", markup=False
        )
        console.print(f"report: {results_dir / 'report.md'}", soft_wrap=True, markup=False)
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="the fair comparison: tune all at each budget of a ladder, default + tuned x "
        "seeds, report",
        description=cmd_compare.__doc__,
    )
    p.add_argument("--arch", default=CORE_ARCHS, help=f"encoder(s) [{CORE_ARCHS}]")
    p.add_argument("--fusion", default=CORE_FUSIONS, help=f"fusion(s) [{CORE_FUSIONS}]")
    add_model_arg_flag(p, held=True)
    p.add_argument(
        "--seeds", type=seed_list, default=[0, 1, 2, 3, 4], help="final runs' seeds [0,1,2,3,4]"
    )
    p.add_argument(
        "--trials", type=int, default=20, metavar="N", help="finished trials per study [20]"
    )
    p.add_argument(
        "--max-params",
        type=int,
        metavar="N",
        help="parameter cap of every tuned model [the largest default model of the selection]",
    )
    p.add_argument(
        "--storage",
        type=path_text,
        metavar="URL",
        help="Optuna storage shared by every machine [$OPTUNA_STORAGE, else the results "
        "directory's optuna.db]",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="sampler seed: with --worker, the same trials are drawn every time [0]",
    )
    p.add_argument(
        "--jobs",
        type=processes,
        default=1,
        metavar="N",
        help="worker processes sharing the protocol through the storage, as N machines would "
        "(at most 4 per core); "
        "on a CPU each gets cores / N threads (cores / --sharing where given), and their final "
        "runs' timings are shared ones [1]",
    )
    p.add_argument(
        "--worker",
        type=int,
        metavar="I",
        help="this process's number among those sharing the storage, which seeds its samplers "
        "with --seed: one compare draws the same trials every time [its process id, so that "
        "processes started at once never draw alike]",
    )
    p.add_argument(
        "--sharing",
        type=int,
        metavar="N",
        help="processes training on this machine, this one included, for workers started by "
        "hand: their final runs' timings are named shared, apart from the machine's own [--jobs]",
    )
    p.add_argument(
        "--epochs",
        type=budget_list,
        metavar="E[,E...]",
        help="the ladder of budgets, each rung the whole protocol at that many epochs, such as "
        "1,3,9 [4]",
    )
    p.add_argument(
        "--tune-only",
        action="store_true",
        help="tune every rung and stop (the final runs carry timings and want a quiet machine)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the report stage")
    p.add_argument(
        "--status",
        action="store_true",
        help="say where every rung stands (tuning trials and final runs, done and running on "
        "every machine sharing the storage) and stop: trains and writes nothing",
    )
    p.add_argument(
        "--results-dir",
        type=path_text,
        default=OUTPUT,
        metavar="DIR",
        help=f"runs, tuned/, optuna.db, report [{OUTPUT}; the reference: results]",
    )
    add_config_file_flags(p, print_flag=False)
    add_config_flags(p, skip=FIXED_BY_COMPARE, title="the budget and the settings of every run")
    add_plugin_flag(p, cmd_compare)
