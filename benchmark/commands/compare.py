"""``compare``: the fair comparison (``benchmark.compare``): tune every combination at the final
budget under one parameter cap, train its default and tuned configurations over the same seeds,
write the report. Resumable, and shareable between machines through one Optuna storage."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import replace
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
    int_list,
    interrupts_as_exceptions,
    require_at_least,
    run_workers,
)
from benchmark.config import BATCH_SIZES, SEARCHED, TrainConfig
from benchmark.files import check_writable
from benchmark.progress import StudyProgress, prepare, study_bar, train_with_progress
from benchmark.trials import epochs_spent

POLL_S = 5.0  # how often a compare waiting for other workers' runs looks again
CORE_ARCHS = "gap_cnn,small_cnn,tiny_resnet"
CORE_FUSIONS = "concat,embed_add,late_sum"


# Config fields compare does not take as plain flags: the searched ones (tuning sets them) and
# the epochs, which name the ladder's rungs.
FIXED_BY_COMPARE = (*SEARCHED, "epochs")


def plans_from(args: argparse.Namespace) -> list[Any]:
    """The protocol the flags ask for, one plan per rung of the ``--epochs`` ladder, checked
    before anything is written."""
    from architectures import ENCODERS, FUSIONS, UnknownNameError
    from benchmark import compare, plugins
    from benchmark.comparison import COMPARISON, read_comparison

    check_writable(args.results_dir)
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
        raise UsageError("--worker numbers one of the processes that --jobs starts; give one")
    if not args.seeds:
        raise UsageError("--seeds is empty; expected comma-separated integers such as 0,1,2,3,4")
    try:
        pairs = tuple(
            (a, f) for a in ENCODERS.select(args.arch) for f in FUSIONS.select(args.fusion)
        )
    except UnknownNameError:  # a rerun without --plugin: the plug-ins the protocol recorded
        found = read_comparison(Path(args.results_dir))
        if not found or not found["plan"].get("plugins"):
            raise
        plugins.load_recorded(found["plan"], Path(args.results_dir) / COMPARISON)
        pairs = tuple(
            (a, f) for a in ENCODERS.select(args.arch) for f in FUSIONS.select(args.fusion)
        )
    base = base_config(args, skip=FIXED_BY_COMPARE)
    check_data_dir(base.data_dir)
    rungs = [base.epochs] if args.epochs is None else sorted(set(args.epochs))
    if not rungs or rungs[0] < 1:
        raise UsageError(f"--epochs must be positive integers such as 1,3,9, got {args.epochs}")
    try:  # every rung and seed as the final runs will take them, before hours of tuning
        for epochs in rungs:
            replace(base, epochs=epochs, batch_size=max(BATCH_SIZES)).validate()
        for seed in args.seeds:
            replace(base, seed=seed).validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cap = args.max_params or compare.default_cap(pairs)
    seeds = tuple(args.seeds)
    return [compare.Plan(replace(base, epochs=e), pairs, seeds, args.trials, cap) for e in rungs]


def tune_all(
    plan: Any,
    storage: Any,
    data: Any,
    ex: Any,
    seed: int,
    worker: int | None,
    lap: Callable[..., None],
) -> list[Any]:
    """Stage 1: every combination's study to ``plan.trials`` finished trials (all machines);
    ``lap`` after each trial; ``seed`` and ``worker`` seed the samplers (``tuning.sampler``)."""
    from benchmark import compare, tuning

    studies = []
    for arch, fusion in plan.pairs:
        cfg = plan.config(arch, fusion)
        name = plan.study(arch, fusion)
        study = tuning.open_study(storage, name, cfg, None, plan.max_params)
        study.sampler = tuning.sampler(seed, len(study.trials), worker)
        # multi-fidelity: trials report every epoch and the pruner stops the poor ones early
        if plan.pruner():
            compare.keep_pruner(study, plan.pruner())
        study.pruner = plan.make_pruner()
        with study_bar() as bar:
            tracker = StudyProgress(bar, study, f"{arch} x {fusion}", plan.trials)
            tuning.optimize(
                study, cfg, data, ex, plan.trials, None, plan.max_params, (tracker.refresh, lap),
                on_wait=tracker.waiting,
            )  # fmt: skip
        studies.append(study)
    return studies


def train_all(
    plan: Any,
    storage: Any,
    data: Any,
    ex: Any,
    results_dir: Path,
    records: Any,
    lap: Callable[..., None],
) -> int:
    """Stage 2: the queue of default and tuned runs, shared with other machines; ``lap``
    before each run, so the time of the runs before it is written."""
    from benchmark import compare, plugins, runs, storages

    queue = compare.open_queue(plan, storage)
    total = len(plan.items())
    done = [compare.progress_counts(queue)["complete"]]

    def train(cfg: TrainConfig) -> dict[str, Any]:
        cfg = ex.settle(cfg)  # what config.json keeps: precision and layout as decided
        cfg = replace(cfg, plugins=plugins.used_by([(cfg.arch, cfg.fusion)]))
        run_dir = runs.start_run(cfg, results_dir)
        return train_with_progress(cfg, data, run_dir, ex)

    def on_item(item: str, what: str) -> None:
        lap()
        done[0] += 1
        console.print(f"[{done[0]}/{total}] {item.replace('|', ' ')}: {what}")

    while True:
        compare.run_queue(plan, queue, results_dir, records, train, on_item)
        counts = compare.progress_counts(queue)
        if not counts["running"] + counts["waiting"] + counts["interrupted"]:
            break
        # held by other workers: wait for them, and take over any whose heartbeat stops
        console.print(
            f"runs: {counts['complete']} of {total} complete, {counts['running']} held by "
            f"other workers; waiting (a worker silent for {storages.GRACE_S} s is taken over) ..."
        )
        time.sleep(POLL_S)
        queue = compare.open_queue(plan, storage)  # fails the stale, queues them again
    console.print(
        f"runs at {plan.base.epochs} epoch(s): {counts['complete']} of {total} complete, "
        f"{counts['diverged']} diverged"
    )
    return counts["diverged"]


class StageClock:
    """The wall time of one stage of one rung, added to comparison.json (per rung of the
    ladder; sittings add up). Called between trials or runs, it writes the time so far, so a
    process killed outright loses only the time of the one in progress. On leaving its ``with``,
    interrupted or not, the rest is written, but only if the stage did work (the clock was
    called) or ``counted``: a compare that finds everything complete leaves comparison.json, and
    the report drawn from it, as they were."""

    def __init__(
        self, results_dir: Path, plan: Any, stage: str, where: str, ladder: list[Any],
        counted: bool = False,
    ) -> None:  # fmt: skip
        self.results_dir, self.plan, self.stage, self.where = results_dir, plan, stage, where
        self.rungs = [p.to_dict() for p in ladder]
        self.worked = counted
        self.start = time.perf_counter()

    def __enter__(self) -> StageClock:
        return self

    def __exit__(self, *_: Any) -> None:
        if self.worked:
            self.write()

    def __call__(self, *_: Any) -> None:
        """A trial or run was done (or is about to be): the time so far is the stage's."""
        self.worked = True
        self.write()

    def write(self) -> None:
        from benchmark.comparison import record_stage

        # whole tenths only (comparison.json keeps tenths); the rest counts in the next write
        seconds = round(time.perf_counter() - self.start, 1)
        if seconds > 0:
            record_stage(self.results_dir, self.plan.to_dict(), self.stage, seconds, self.where,
                         self.rungs)  # fmt: skip
            self.start += seconds


def tune_rung(
    plan: Any,
    storage: Any,
    spec: str,
    data: Any,
    ex: Any,
    args: argparse.Namespace,
    lap: Callable[..., None],
) -> dict[tuple[str, str], Any]:
    """Stage 1 of a rung: its studies to ``--trials`` finished trials (waiting for other
    machines' last trials), then each study's best exported; the records by combination.
    ``lap`` after each trial writes the stage's time so far."""
    from benchmark import compare, exports
    from benchmark.tuning import finished_count

    while True:
        studies = tune_all(plan, storage, data, ex, args.seed, args.worker, lap)
        if not compare.tuning_finished(studies):
            console.print("waiting for tuning trials still running on other machines ...")
            compare.wait_for_tuning(studies)
        # a last trial of another machine that failed leaves its place to be trained again
        # (a journal storage: workers stop rather than wait for it)
        if all(finished_count(study) >= plan.trials for study in studies):
            break
    records = {}
    for (arch, fusion), study in zip(plan.pairs, studies, strict=True):
        trained, unpruned = epochs_spent(study)
        share = f"{trained / unpruned:.0%}" if unpruned else "-"
        console.print(
            f"study {study.study_name}: trained {trained} epochs, {share} of the {unpruned} "
            f"its counted trials would have trained unpruned"
        )
        record = exports.export_best(study, spec, args.results_dir)
        if record is None:
            raise UsageError(f"study {study.study_name}: no complete trial to train with")
        records[(arch, fusion)] = record[1]
    return records


def worker_argv(args: argparse.Namespace, index: int, threads: int | None) -> list[str]:
    """Worker ``index`` of ``--jobs``: this compare as typed, with one process and its own
    number (later flags win), no report (the parent writes it once all are done) and, on a
    CPU, its share of the cores unless ``--threads`` was given."""
    argv = [sys.executable, "-m", "benchmark", *args.argv, "--jobs", "1", "--no-report"]
    argv += ["--worker", str(index), "--sharing", str(args.jobs)]
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

    threads = max(1, (os.cpu_count() or 1) // args.jobs) if device.type == "cpu" else None
    commands = [worker_argv(args, i, threads) for i in range(1, args.jobs + 1)]
    console.print(
        f"compare in {args.jobs} worker processes (--worker 1-{args.jobs})"
        + (f", {threads} CPU thread(s) each" if threads and args.threads is None else "")
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as bar:
        tasks = [
            bar.add_task(stage, total=total)
            for stage, _, total in compare.ladder_progress(plans, storage)
        ]

        def refresh() -> None:
            for task, (_, done, _) in zip(
                tasks, compare.ladder_progress(plans, storage), strict=True
            ):
                bar.update(task, completed=done)

        return run_workers(commands, spec, refresh)


def cmd_compare(args: argparse.Namespace) -> int:
    """Tune every combination at each budget of the ladder (one cap), train default and tuned
    over the same seeds at each, and write the report; run it again to finish what an
    interruption left."""
    import optuna

    from benchmark import storages
    from benchmark.data import load_mnist
    from benchmark.hardware import device_name

    plans = plans_from(args)
    ladder = [plan.base.epochs for plan in plans]  # lowest first
    results_dir = Path(args.results_dir)
    spec = storages.storage_spec(args.storage, results_dir)
    storages.check_storage(spec)
    _, ex = prepare(plans[0].base)  # decided once, for every trial and run of this process
    ex = replace(ex, sharing=args.sharing)  # a worker of --jobs: its timings are shared ones
    # the data before the storage: missing MNIST must not leave a new optuna.db behind
    data = load_mnist(plans[0].base.data_dir).to(ex.device)
    storage = storages.open_storage(spec)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.jobs > 1:
        with storages.storage_errors(spec):
            died = in_workers(args, plans, storage, spec, ex.device)
        if died:
            for line in died:
                console.print(f"[red]{line}[/red]", soft_wrap=True)
            return EXIT_FAILED
        console.print(f"the {args.jobs} workers are done; the studies and the report:")
    where = f"{socket.gethostname()} ({device_name(ex.device)})"
    first = plans[0]
    console.print(
        f"compare {len(first.pairs)} combinations x {{default, tuned}} x {len(first.seeds)} "
        f"seeds, {first.trials} trials each, cap {first.max_params:,} parameters, at "
        f"{', '.join(map(str, ladder))} epoch{'s' if ladder != [1] else ''}; storage "
        f"{storages.storage_label(spec)}; on {where}"
    )
    failed = 0
    with interrupts_as_exceptions(), storages.storage_errors(spec):
        records, worked = {}, args.jobs > 1  # the workers did the work: the report counts
        for plan in plans:  # tuning of every rung first: the timed final runs come together
            with StageClock(results_dir, plan, "tune", where, plans) as lap:
                records[plan.base.epochs] = tune_rung(plan, storage, spec, data, ex, args, lap)
            worked |= lap.worked
        if args.tune_only:
            console.print("--tune-only: every rung is tuned; run again without it to train")
            return 0
        for plan in plans:
            with StageClock(results_dir, plan, "runs", where, plans) as lap:
                record = records[plan.base.epochs]
                failed += train_all(plan, storage, data, ex, results_dir, record, lap)
            worked |= lap.worked
    if not args.no_report:
        from benchmark.report import load_inputs, write_report

        with StageClock(results_dir, plans[-1], "report", where, plans, counted=worked):
            inputs = load_inputs(
                str(results_dir / "runs" / "*"), str(results_dir / "bench" / "*.csv"), results_dir
            )
            write_report(inputs, results_dir)
        console.print(f"report: {results_dir / 'report.md'}")
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="the fair comparison: tune all at one budget, default + tuned x seeds, report",
        description=cmd_compare.__doc__,
    )
    p.add_argument("--arch", default=CORE_ARCHS, help=f"encoder(s) [{CORE_ARCHS}]")
    p.add_argument("--fusion", default=CORE_FUSIONS, help=f"fusion(s) [{CORE_FUSIONS}]")
    p.add_argument(
        "--seeds",
        type=int_list,
        default=[0, 1, 2, 3, 4],
        help="seeds of the final runs [0,1,2,3,4]",
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
        metavar="URL",
        help="Optuna storage shared by every machine [$OPTUNA_STORAGE, else "
        "sqlite:///<results-dir>/optuna.db]",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="sampler seed [0]")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the protocol through the storage, as N machines would; "
        "on a CPU each gets cores / N threads, and their final runs' timings are shared ones [1]",
    )
    p.add_argument(
        "--worker",
        type=int,
        metavar="I",
        help="this process's number among those sharing the storage, which seeds its samplers "
        "with --seed: one compare draws the same trials every time [its process id, so that "
        "processes started at once never draw alike]",
    )
    p.add_argument("--sharing", type=int, default=1, help=argparse.SUPPRESS)  # set by --jobs
    p.add_argument(
        "--epochs",
        type=int_list,
        metavar="E[,E...]",
        help="the ladder of budgets: each rung is the whole protocol at that many epochs, "
        "e.g. 1,3,9 [4]",
    )
    p.add_argument(
        "--tune-only",
        action="store_true",
        help="tune every rung and stop (tuning may share the machine; the final runs carry "
        "timings and want it quiet)",
    )
    p.add_argument("--no-report", action="store_true", help="skip the report stage")
    p.add_argument(
        "--results-dir",
        default=OUTPUT,
        metavar="DIR",
        help=f"runs, tuned/, optuna.db, report [{OUTPUT}; the reference: results]",
    )
    add_config_file_flags(p, print_flag=False)
    add_config_flags(p, skip=FIXED_BY_COMPARE, title="the budget and the settings of every run")
    add_plugin_flag(p, cmd_compare)
