"""``tune``: Optuna search over each encoder x fusion's hyperparameters (``benchmark.tuning``).

``--jobs N`` starts N plain worker processes (``tune ... --worker I``) on the same storage, the
way several machines share a study: Optuna hands out the trials, a worker starts one only while
fewer than ``--trials`` are finished or running, and the queued defaults trial runs here first,
once.
"""

from __future__ import annotations

import argparse
import os
import sys
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
    config_overrides,
    console,
    interrupts_as_exceptions,
    require_at_least,
    run_workers,
)
from benchmark.commands.models import (
    check_cap,
    check_models,
    check_tuned_subset,
    model_args_of,
    say_untaken,
)
from benchmark.commands.values import add_model_arg_flag, path_text, processes
from benchmark.config import (
    BATCH_SIZES,
    MNIST_VAL_IMAGES,
    RUN_DIRECTORY_ONLY,
    SEARCHED,
    TrainConfig,
    flag_name,
)
from benchmark.files import check_writable
from benchmark.metrics import CHANCE_JOINT_NOTE, LEARN_MORE
from benchmark.places import TUNED
from benchmark.progress import (
    StudyProgress,
    check_layout,
    prepare,
    say_emulated,
    say_whole,
    study_bar,
)
from benchmark.wording import percent, plural, settings

FIXED_BY_TUNE = (*SEARCHED, *RUN_DIRECTORY_ONLY)  # no flag of tune's sets them


def worker_argv(args: argparse.Namespace, cfg: TrainConfig, study: str, index: int) -> list[str]:
    """The command line of worker ``index``: this study, the same settings, no --jobs. The
    storage goes by environment variable, so that a password never reaches argv."""
    argv = [sys.executable, "-m", "benchmark", "tune", "--arch", cfg.arch, "--fusion", cfg.fusion]
    argv += ["--study", study, "--trials", str(args.trials), "--seed", str(args.seed)]
    argv += ["--results-dir", str(args.results_dir), "--pruner", args.pruner]
    argv += ["--worker", str(index)]
    for plugin in args.plugin:  # the workers resolve the same names
        argv += ["--plugin", plugin]
    if args.config:
        argv += ["--config", args.config]
    for key, value in args.model_arg or []:  # as typed (the worker takes its combination's)
        argv += ["--model-arg", f"{key}={value}"]
    for flag, value in (
        ("--timeout", args.timeout),
        ("--val-subset", args.val_subset),
        ("--max-params", args.max_params),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for name, value in {**config_overrides(args, FIXED_BY_TUNE), "threads": cfg.threads}.items():
        flag = flag_name(name)
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def tune_study(
    args: argparse.Namespace, cfg: TrainConfig, storage: Any, data: list[Any], ex: Any
) -> int:
    """Bring one study to ``--trials`` finished trials, then export its best; an exit status.

    ``data`` is a one-element cache: this process loads MNIST once for every study.
    """
    from benchmark import exports, pruning, storages, tuning

    spec = storages.storage_spec(args.storage, args.results_dir)
    name = args.study or tuning.study_name(cfg, args.val_subset, args.max_params)
    study = tuning.open_study(storage, name, cfg, args.val_subset, args.max_params)
    done = tuning.finished_count(study)
    before = len(study.trials)
    study.sampler = tuning.sampler(args.seed, before, args.worker)
    hint = f"give --pruner {study.user_attrs.get('pruner')} or another --study NAME"
    pruning.keep_pruner(study, args.pruner, hint, strict=False)  # the counts mixed two rules
    study.pruner = pruning.make_pruner(args.pruner, cfg.epochs)

    def optimize(trials: int, tracker: StudyProgress | None = None) -> None:
        if not data:
            data.append(tuning.load_data(cfg, args.val_subset, ex))
        tuning.optimize(
            study, cfg, data[0], ex, trials, args.timeout, args.max_params,
            (tracker.refresh,) if tracker else (), on_wait=tracker.waiting if tracker else None,
        )  # fmt: skip

    if args.worker is not None:
        optimize(args.trials)
        return 0
    count = f"{done} of {args.trials} trials finished"
    if done > args.trials:  # "5 of 2": --trials is a total, not more trials
        count = f"{done} trials finished, more than --trials {args.trials}: nothing to tune"
    console.print(
        f"{cfg.arch} x {cfg.fusion}: {count}"
        + (f", cap {args.max_params:,} parameters" if args.max_params else "")
        + (f", held: {settings(cfg.model_args)}" if cfg.model_args else "")
    )  # the count first and the storage on a line of its own: a URL had wrapped "0 of / 2"
    say_whole(f"study {name} in {storages.storage_label(spec)}")
    jobs = min(args.jobs, args.trials - done)
    died: list[str] = []
    try:
        with study_bar() as bar:
            label = f"{cfg.arch} x {cfg.fusion}"
            tracker = StudyProgress(bar, study, label, max(args.trials, done))
            if jobs > 1 and tuning.waiting_count(study):
                # SQLite has no row locks: two workers could pop the same queued trial (the
                # defaults) and both tell it. Run the queued trials here, then the workers.
                optimize(min(args.trials, done + tuning.waiting_count(study)), tracker)
            if jobs > 1:
                threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
                worker_cfg = replace(cfg, threads=threads)  # share the cores, don't oversubscribe
                commands = [worker_argv(args, worker_cfg, name, i + 1) for i in range(jobs)]
                died = run_workers(commands, spec, tracker.refresh)
            elif jobs == 1:
                optimize(args.trials, tracker)
            tracker.refresh()  # the last trials, where another worker finished them
    except KeyboardInterrupt:
        finished = tuning.finished_count(study)
        only = f"--arch {cfg.arch} --fusion {cfg.fusion} --trials {finished}"  # not a grid
        now = f", or with {only} to export the best of those now" if finished else ""
        console.print(
            f"interrupted: study {name} keeps its {plural(finished, 'finished trial')}, its best "
            f"not exported yet; run the same command again to continue it{now}",
            markup=False,
        )
        raise
    for line in died:
        console.print(f"[red]{line}[/red]", soft_wrap=True)
    exported = exports.export_best(study, spec, args.results_dir)
    if exported is None:
        console.print(f"no complete trial in study {name}: nothing exported")
    else:
        path, record = exported
        say_whole(  # values as text (a categorical "[a]" is no markup), the path whole
            f"best: trial {record['trial']} val joint acc {percent(record['value'])}; "
            f"model {settings(record['model_args'])}; "
            f"train {settings(record['train'])} -> {path}"
        )
        if record["value"] < CHANCE_JOINT_NOTE:  # exported all the same, as asked: said plainly
            console.print(
                f"note: its {percent(record['value'])} val joint acc (digit and sum both right) "
                f"says the trials learned next to nothing at this budget; {LEARN_MORE}"
            )
    finished = tuning.finished_count(study)
    if died and finished < args.trials:
        console.print(
            f"[red]study {name} has {finished} of {args.trials} finished trials; run the same "
            f"command again to finish it[/red]"
        )
        return EXIT_FAILED
    return 0


def check_flags(args: argparse.Namespace) -> None:
    from benchmark import exports

    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout}")
    require_at_least(
        (flag, value, 1)
        for flag, value in (
            ("--trials", args.trials),
            ("--jobs", args.jobs),
            ("--val-subset", args.val_subset),
            ("--max-params", args.max_params),
        )
    )
    if args.val_subset is not None and args.val_subset > MNIST_VAL_IMAGES:
        raise UsageError(  # more would score on all of them under a study named for a subset
            f"--val-subset must be <= the {MNIST_VAL_IMAGES:,} validation images (unset for all "
            f"of them), got {args.val_subset}"
        )
    check_writable(args.results_dir, folders=(TUNED,))
    if args.study is not None and (problem := exports.plain_name_problem(args.study)):
        raise UsageError(f"--study must be {problem}, got {args.study!r}")
    check_tuned_subset(args.train_subset)


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune each arch x fusion in turn (Optuna TPE + pruning) and export the best parameters."""
    import optuna

    from architectures import ENCODERS, FUSIONS
    from benchmark import storages
    from benchmark.data import resolve_root

    check_flags(args)
    base = replace(base_config(args, skip=FIXED_BY_TUNE), seed=args.seed)
    archs = ENCODERS.select(args.arch) if args.arch is not None else [base.arch]
    fusions = FUSIONS.select(args.fusion) if args.fusion is not None else [base.fusion]
    pairs = [(a, f) for a in archs for f in fusions]
    if args.study and len(pairs) > 1:
        raise UsageError("--study names one study: give one --arch and one --fusion with it")
    check_data_dir(base.data_dir)
    try:
        replace(base, batch_size=max(BATCH_SIZES)).validate()
    except ValueError as exc:
        raise UsageError(TrainConfig.in_flag_words(str(exc))) from None
    shares = model_args_of(pairs, base.model_args, strict=args.worker is None)
    if args.worker is None:
        say_untaken(shares, base.model_args)
    check_models(shares)
    if args.max_params is not None:
        check_cap(shares, args.max_params)
    spec = storages.storage_spec(args.storage, args.results_dir)
    held = any((Path(args.results_dir) / TUNED).glob("*.json"))  # exported from its studies
    local = storages.check_storage(spec, held=held)
    new = local is not None and not local.exists()  # a mistyped path would start afresh: said
    resolve_root(base.data_dir)  # missing MNIST fails here, before a storage file is created
    base, ex = prepare(base)  # decided once for every study of this process
    check_layout([arch for arch, _ in pairs], ex)
    storage = storages.open_storage(spec)
    if new and args.worker is None:
        console.print(f"a new storage: {storages.storage_label(spec)}", soft_wrap=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    say_emulated([ex])
    data: list[Any] = []
    with interrupts_as_exceptions(), storages.storage_errors(spec):
        for arch, fusion in pairs:
            cfg = replace(base, arch=arch, fusion=fusion, model_args=shares[arch, fusion])
            status = tune_study(args, cfg, storage, data, ex)
            if status:
                return status
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="Optuna search of hyperparameters per arch x fusion",
        description=cmd_tune.__doc__,
    )
    p.add_argument(
        "--arch", help="encoder(s): comma list, wildcards, all [--config's, else gap_cnn]"
    )
    p.add_argument(
        "--fusion", help="fusion(s): comma list, wildcards, all [--config's, else concat]"
    )
    add_model_arg_flag(p, held=True)
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        default=40,
        help="finished (complete + pruned) trials wanted in each study, earlier sessions "
        "included: a re-run completes the remainder [40]",
    )
    p.add_argument(
        "--timeout", type=float, metavar="S", help="seconds after which no new trial starts"
    )
    p.add_argument(
        "--storage",
        type=path_text,
        metavar="URL",
        help="SQLAlchemy URL (sqlite:///PATH, postgresql+psycopg2://USER@HOST/DB) or journal "
        "file (journal:PATH or PATH.log) [$OPTUNA_STORAGE, else the results directory's optuna.db]",
    )
    p.add_argument(
        "--study",
        metavar="NAME",
        help="study name [<arch>__<fusion>__e<epochs>, then the cap and any other fixed settings: "
        "see docs/protocol.md]",
    )
    p.add_argument(
        "--jobs",
        type=processes,
        default=1,
        metavar="N",
        help="worker processes on the study, at most 4 per core [1]",
    )
    p.add_argument(
        "--val-subset", type=int, metavar="N", help="score each trial on N validation images"
    )
    p.add_argument(
        "--max-params",
        type=int,
        metavar="N",
        help="parameter cap: a suggestion with more parameters is rejected before training "
        "(and not counted) [none]",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="training seed of every trial; it seeds the sampler too, with the process's id, so "
        "tunes started at once on one study never draw alike and a tune run again draws anew [0]",
    )
    p.add_argument(
        "--pruner",
        choices=("median", "hyperband", "halving"),
        default="median",
        help="what stops a trial early on its per-epoch validation [median]",
    )
    p.add_argument(
        "--results-dir",
        type=path_text,
        default=OUTPUT,
        metavar="DIR",
        help=f"optuna.db and tuned/ [{OUTPUT}]",
    )
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by --jobs for its workers
    add_config_file_flags(p, print_flag=False)
    add_config_flags(p, skip=FIXED_BY_TUNE, title="training settings held fixed while tuning")
    add_plugin_flag(p, cmd_tune)
