"""``compare``: the fair comparison (``benchmark.compare``): tune every combination at the final
budget under one parameter cap, train its default and tuned configurations over the same seeds,
write the report. Resumable, and shareable between machines through one Optuna storage."""

from __future__ import annotations

import argparse
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark.commands.common import (
    OUTPUT,
    UsageError,
    add_config_file_flags,
    add_config_flags,
    base_config,
    console,
    int_list,
    interrupts_as_exceptions,
    progress,
    require_at_least,
)
from benchmark.config import BATCH_SIZES, SEARCHED, TrainConfig

CORE_ARCHS = "gap_cnn,small_cnn,tiny_resnet"
CORE_FUSIONS = "concat,embed_add,late_sum"


def plan_from(args: argparse.Namespace) -> Any:
    """The protocol the flags ask for, checked before anything is written."""
    from architectures import ENCODERS, FUSIONS
    from benchmark import compare

    require_at_least([("--trials", args.trials, 1), ("--max-params", args.max_params, 1)])
    if not args.seeds:
        raise UsageError("--seeds is empty; expected comma-separated integers such as 0,1,2,3,4")
    pairs = tuple((a, f) for a in ENCODERS.select(args.arch) for f in FUSIONS.select(args.fusion))
    base = base_config(args, skip=SEARCHED)
    try:
        replace(base, batch_size=max(BATCH_SIZES)).validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    cap = args.max_params or compare.default_cap(pairs)
    return compare.Plan(base, pairs, tuple(args.seeds), args.trials, cap)


def tune_all(plan: Any, storage: Any, data: Any, seed: int) -> list[Any]:
    """Stage 1: every combination's study to ``plan.trials`` finished trials (all machines)."""
    import optuna

    from benchmark import tuning
    from benchmark.commands.tune import Tracker

    studies = []
    for arch, fusion in plan.pairs:
        cfg = plan.config(arch, fusion)
        name = plan.study(arch, fusion)
        study = tuning.open_study(storage, name, cfg, None, plan.max_params)
        study.sampler = optuna.samplers.TPESampler(
            seed=tuning.sampler_seed(seed, len(study.trials), os.getpid())
        )
        study.pruner = tuning.make_pruner("median", cfg.epochs)
        with progress() as bar:
            tracker = Tracker(bar, study, f"tune {arch} x {fusion}", plan.trials)
            tuning.optimize(
                study, cfg, data, plan.trials, None, plan.max_params, (tracker.refresh,)
            )
        studies.append(study)
    return studies


def train_all(plan: Any, storage: Any, data: Any, results_dir: Path, records: Any) -> int:
    """Stage 2: the queue of default and tuned runs, shared with other machines."""
    from benchmark import compare, runs
    from benchmark.commands.run import train_with_progress

    queue = compare.open_queue(plan, storage)
    total = len(plan.items())
    done = [compare.progress_counts(queue)["complete"]]

    def train(cfg: TrainConfig) -> dict[str, Any]:
        run_dir = runs.start_run(cfg, results_dir)
        return train_with_progress(cfg, data, run_dir)

    def on_item(item: str, what: str) -> None:
        done[0] += 1
        console.print(f"[{done[0]}/{total}] {item.replace('|', ' ')}: {what}")

    compare.run_queue(plan, queue, results_dir, records, train, on_item)
    counts = compare.progress_counts(queue)
    console.print(
        f"runs: {counts['complete']} of {total} complete, {counts['running']} running elsewhere, "
        f"{counts['diverged']} diverged"
    )
    return counts["diverged"]


@contextmanager
def stage_timer(results_dir: Path, plan: Any, stage: str, where: str) -> Iterator[None]:
    """Add the stage's wall time to comparison.json, also when it is interrupted (sittings
    add up)."""
    from benchmark import compare

    start = time.perf_counter()
    try:
        yield
    finally:
        compare.record_stage(results_dir, plan, stage, time.perf_counter() - start, where)


def cmd_compare(args: argparse.Namespace) -> int:
    """Tune every combination at one budget and cap, train default and tuned over the same
    seeds, and write the report; run it again to finish what an interruption left."""
    import optuna

    from benchmark import compare, tuned, tuning
    from benchmark.commands.run import prepare_device
    from benchmark.data import load_mnist
    from benchmark.hardware import device_name

    plan = plan_from(args)
    results_dir = Path(args.results_dir)
    spec = tuning.storage_spec(args.storage, results_dir)
    storage = tuning.open_storage(spec)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    device = prepare_device(plan.base)
    where = f"{socket.gethostname()} ({device_name(device)})"
    console.print(
        f"compare {len(plan.pairs)} combinations x {{default, tuned}} x {len(plan.seeds)} seeds, "
        f"{plan.trials} trials each, cap {plan.max_params:,} parameters, "
        f"{plan.base.epochs} epochs; storage {tuning.storage_label(spec)}; on {where}"
    )
    data = load_mnist(plan.base.data_dir).to(device)
    with interrupts_as_exceptions():
        with stage_timer(results_dir, plan, "tune", where):
            studies = tune_all(plan, storage, data, args.seed)
            if not compare.tuning_finished(studies):
                console.print("waiting for tuning trials still running on other machines ...")
                compare.wait_for_tuning(studies)
        records = {}
        for (arch, fusion), study in zip(plan.pairs, studies, strict=True):
            record = tuned.export_best(study, spec, results_dir)
            if record is None:
                raise UsageError(f"study {study.study_name}: no complete trial to train with")
            records[(arch, fusion)] = record[1]
        with stage_timer(results_dir, plan, "runs", where):
            failed = train_all(plan, storage, data, results_dir, records)
    if not args.no_report:
        from benchmark.report import load_inputs, write_report

        with stage_timer(results_dir, plan, "report", where):
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
        "--seeds", type=int_list, default=[0, 1, 2, 3, 4], help="seeds of the final runs [0-4]"
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
    p.add_argument("--no-report", action="store_true", help="skip the report stage")
    p.add_argument(
        "--results-dir",
        default=OUTPUT,
        metavar="DIR",
        help=f"runs, tuned/, optuna.db, report [{OUTPUT}; the reference: results]",
    )
    add_config_file_flags(p, print_flag=False)
    add_config_flags(p, skip=SEARCHED, title="the budget and the settings of every run")
    p.set_defaults(func=cmd_compare)
