"""``run``: train one run or a grid (arch x fusion x seed), or ``--resume`` an interrupted one."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from dataclasses import replace
from itertools import product
from pathlib import Path
from shlex import quote
from typing import Any

from benchmark.commands.common import (
    OUTPUT,
    UsageError,
    add_config_file_flags,
    add_config_flags,
    add_plugin_flag,
    add_results_dir_flag,
    add_tuned_flags,
    apply_tuned_flags,
    base_config,
    check_data_dir,
    config_overrides,
    console,
    interrupts_as_exceptions,
    natural_width,
    print_wide,
)
from benchmark.commands.models import (
    dry_runs,
    grid_variants,
    named,
    pop_model_arg_sweeps,
)
from benchmark.commands.values import add_model_arg_flag, path_text, seed_list
from benchmark.config import TrainConfig, flag_name
from benchmark.errors import DamagedFileError
from benchmark.estimate import estimate
from benchmark.files import check_writable
from benchmark.metrics import CHANCE, CHANCE_NOTE, LEARN_MORE
from benchmark.places import RUNS
from benchmark.progress import (
    RunsProgress,
    check_layout,
    notes_to_stderr,
    prepare,
    run_label,
    say,
    say_emulated,
    say_probe,
    show_value,
    train_with_progress,
)
from benchmark.trackers import check_available, destination
from benchmark.wording import duration, plural


def pop_sweeps(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The config flags given a comma list of several values (``--lr 1e-3,3e-3``), each value
    once (``--epochs 1,1`` trained the same run twice; ``--seeds 0,0`` and ``--model-arg``
    lists were taken once already); each flag in ``args`` is left holding its first value, so
    that ``base_config`` sees plain values."""
    sweeps = {}
    for name, listed in config_overrides(args).items():
        if isinstance(listed, list):
            values = list(dict.fromkeys(listed))  # equal values once: 1e-3 and 0.001 too
            setattr(args, name, values[0])
            if len(values) > 1:
                sweeps[name] = values
    return sweeps


def grid_configs(
    args: argparse.Namespace,
    base: TrainConfig,
    sweeps: dict[str, list[Any]] | None = None,
    arg_sweeps: dict[str, list[Any]] | None = None,
) -> list[TrainConfig]:
    """Every arch x fusion x swept setting x swept model argument x seed the flags ask for,
    validated before anything is written (the models' dry run waits for ``--tuned``'s values:
    ``dry_run``). A combination that does not take a swept model argument trains once."""
    from architectures import ENCODERS, FUSIONS
    from benchmark import plugins

    archs = ENCODERS.select(args.arch) if args.arch is not None else [base.arch]
    fusions = FUSIONS.select(args.fusion) if args.fusion is not None else [base.fusion]
    if args.seeds is not None and args.seed is not None:
        raise UsageError("give --seed or --seeds, not both")
    seeds = (
        args.seeds
        if args.seeds is not None
        else [args.seed if args.seed is not None else base.seed]
    )
    sweeps = sweeps or {}
    points = [dict(zip(sweeps, values, strict=True)) for values in product(*sweeps.values())]
    typed = [key for key, _ in args.model_arg or []]  # not a config file's: it keeps them
    variants = grid_variants(
        product(archs, fusions), base.model_args, arg_sweeps or {}, typed, args.tuned
    )
    configs = []
    for arch, fusion, point in product(archs, fusions, points):
        used = plugins.used_by([(arch, fusion)])  # config.json keeps the plug-ins of its model
        for model_args, seed in product(variants[arch, fusion], seeds):
            cfg = replace(base, arch=arch, fusion=fusion, seed=seed, **point)
            cfg = replace(cfg, model_args=model_args, plugins=used)
            try:
                cfg.validate()
            except (ValueError, TypeError) as exc:  # TypeError: a config file's "x" for 1
                raise UsageError(TrainConfig.in_flag_words(str(exc))) from None
            configs.append(cfg)
    return configs


def dry_run(configs: list[TrainConfig]) -> None:
    """Each model the grid will train, built and run on 28x28 images on the meta device
    (``dry_runs``: once per model however many seeds and sweeps train it)."""
    dry_runs((c.arch, c.fusion, c.model_args) for c in configs)


def varying(configs: list[TrainConfig], names: tuple[str, ...]) -> tuple[str, ...]:
    """The fields among ``names`` that take more than one value over ``configs``: what tells a
    sweep's runs apart."""
    return tuple(n for n in names if len({repr(getattr(c, n)) for c in configs}) > 1)


def swept_args(cfg: TrainConfig, names: Iterable[str]) -> dict[str, Any]:
    """The swept model arguments ``cfg``'s model takes, with its values: a default one too,
    which its config leaves out (``model_variants``)."""
    from architectures import default_args

    resolved = {**default_args(cfg.arch, cfg.fusion), **cfg.model_args}
    return {name: resolved[name] for name in names if name in resolved}


TEXT_FIELDS = ("arch", "fusion", "model args")  # summary columns shown as they are, left-aligned
DEFAULTS = "defaults"  # the model args cell of a run that overrode none


def summary_table(rows: list[dict[str, Any]], fields: tuple[str, ...], joined: bool = False) -> Any:
    """The finished runs' test metrics, one row each, numbered, with a column for each field in
    ``fields`` (what differs between the runs), or with ``joined`` one column holding them all
    (it wraps: narrow terminals); what all rows share is in the title. Numbers never wrap."""
    from rich import box
    from rich.table import Table

    from benchmark import metrics
    from benchmark.benchfile import model_args_text

    same = [n for n in ("arch", "fusion") if n not in fields]
    shared = " x ".join(str(rows[0][n]) for n in same) if rows else ""
    # --model-arg overrides: in the title when every run took the same, else a column
    overrides = [model_args_text(m.get("config", {})) or DEFAULTS for m in rows]
    if len(set(overrides)) > 1:
        fields = (*fields, "model args")
    elif rows and overrides[0] != DEFAULTS:
        shared += f"{', ' if shared else ''}{overrides[0]}"
    if rows and "seed" not in fields:
        shared += f"{', ' if shared else ''}seed {rows[0]['seed']}"
    title = (f"{shared}: " if shared else "") + "test accuracy % (every image x all 10 addends)"
    caption = "joint: both right; consis.: sum = digit + addend"  # as predicted
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, padding=0)
    table.add_column("#", justify="right", no_wrap=True)
    labels = ["run"] if joined and fields else list(fields)
    for name in labels:
        table.add_column(name, justify="left" if joined or name in TEXT_FIELDS else "right")
    number_columns = ["params"] + [m.label.removesuffix(" acc") for m in metrics.METRICS]
    for name in [*number_columns, "train s", "img/s"]:
        table.add_column(name if len(name) <= 7 else name[:6] + ".", justify="right", no_wrap=True)
    for i, (m, override) in enumerate(zip(rows, overrides, strict=True), start=1):
        config = {**m.get("config", {}), **{n: m[n] for n in ("arch", "fusion", "seed")}}
        config["model args"] = override
        values = [show_value(config.get(name)) for name in fields]
        if joined and fields:
            values = [
                " ".join(
                    v if n in TEXT_FIELDS else f"{n}={v}"
                    for n, v in zip(fields, values, strict=True)
                    if (n, v) != ("model args", DEFAULTS)  # nothing to add
                )
            ]
        table.add_row(
            str(i),
            *values,
            f"{m['params']:,}",
            *(f"{100 * m['test'][name]:.2f}" for name in metrics.names()),
            f"{m['train_seconds']:.1f}",
            f"{m['train_images_per_s']:,.0f}",
        )
    return table


def print_summary(
    rows: list[dict[str, Any]], run_dirs: list[Path], fields: tuple[str, ...]
) -> None:
    """The summary table at the console's width (into a pipe: $COLUMNS, else 80), its fields
    in one wrapping column when their own columns do not fit; then each row's run directory,
    whole (to copy: a table cell would cut it); then the command that compares them."""
    if not rows:
        return
    table = summary_table(rows, fields)
    if natural_width(table) > console.width:
        table = summary_table(rows, fields, joined=True)
    print_wide(table)  # its title, wider than the table, on a line of its own
    for i, run_dir in enumerate(run_dirs, start=1):
        say(f"{i:>3}  {run_dir}", soft_wrap=True)
    guessing = [i for i, r in enumerate(rows, start=1) if r["test"]["digit_acc"] < CHANCE_NOTE]
    if guessing:  # a smoke run "finished" at 11% digit accuracy: it predicted one class
        one = len(guessing) == 1
        say(
            f"{'run' if one else 'runs'} {', '.join(map(str, guessing))}: digit accuracy "
            f"{CHANCE}, so {'it' if one else 'they'} learned nothing; {LEARN_MORE}"
        )
    if run_dirs:  # a run directory is <results>/runs/<run-id>
        results = run_dirs[0].parent.parent
        say(f"next: python -m benchmark report --results-dir {quote(str(results))}", soft_wrap=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Train one run or a grid (arch x fusion x seed), one after another."""
    from benchmark import rundir, runs
    from benchmark.data import load_mnist
    from benchmark.hardware import machine_name

    if args.resume:
        return resume(args)
    with notes_to_stderr(args.print_config):  # its stdout: the JSON alone
        sweeps = pop_sweeps(args)
        arg_sweeps = pop_model_arg_sweeps(args)
        base = base_config(args)
        configs = grid_configs(args, base, sweeps, arg_sweeps)
        configs = apply_tuned_flags(args, configs, config_overrides(args))
        dry_run(configs)  # as trained: a study may hold a timm ViT's img_size fixed
    results_dir = Path(args.results_dir)
    for data_dir in dict.fromkeys(cfg.data_dir for cfg in configs):  # a sweep may name several
        check_data_dir(data_dir)  # a printed config naming a file there is no config to run
    if args.print_config:
        resolved = [cfg.to_dict() for cfg in configs]
        print(json.dumps(resolved[0] if len(resolved) == 1 else resolved, indent=2))
        return 0
    check_writable(results_dir, folders=(RUNS,))
    for cfg in configs:  # every tracker asked for exists (a sweep may name several)
        check_available(cfg.log)
    # each run's execution decided once, here (a sweep may name several devices or threads)
    decided = [prepare(cfg) for cfg in configs]
    for cfg, ex in decided:
        check_layout([cfg.arch], ex)
    datasets: dict[tuple[str | None, str], Any] = {}
    for cfg, ex in decided:  # every MNIST copy on every device the grid names, loaded, checked
        if (cfg.data_dir, str(ex.device)) not in datasets:
            datasets[cfg.data_dir, str(ex.device)] = load_mnist(cfg.data_dir).to(ex.device)
    say_probe([cfg for cfg, _ in decided])  # after the data: a damaged file is the one line
    work = [(cfg, ex, datasets[cfg.data_dir, str(ex.device)]) for cfg, ex in decided]
    fields = varying(configs, ("arch", "fusion", *sweeps, "seed"))
    seconds = announce(work, sweeps, results_dir, arg_sweeps)
    shown_fields = tuple(f for f in fields if f not in ("arch", "fusion", "seed"))
    labels = [run_label(cfg, shown_fields, swept_args(cfg, arg_sweeps)) for cfg in configs]
    say_repeats(decided, labels, results_dir)
    several_ways = len({(str(ex.device), ex.describe()) for _, ex in decided}) > 1
    steps = sum(cfg.steps_per_epoch(len(data.train)) * cfg.epochs for cfg, _, data in work)
    finished: list[dict[str, Any]] = []
    run_dirs: list[Path] = []
    with interrupts_as_exceptions(), RunsProgress(len(work), steps, seconds) as shown:
        for i, (cfg, ex, data) in enumerate(work):
            run_dir = runs.start_run(cfg, results_dir)
            label = labels[i]
            label += f" ({machine_name(ex.device)}, {ex.describe()})" if several_ways else ""
            try:
                finished.append(shown.train(cfg, data, run_dir, ex, label))
                run_dirs.append(run_dir)
            except KeyboardInterrupt:
                done = rundir.completed_anyway(run_dir)
                if done is not None:  # the signal came as this run's files closed: it is done
                    finished.append(done)
                    run_dirs.append(run_dir)
                    if i + 1 == len(work):  # and so is the grid
                        break
                grid = (  # a grid's count: what is kept and what is left (one run: nothing)
                    f": {plural(len(finished), 'run')} finished and kept, "
                    f"{plural(len(work) - i - 1, 'run')} of the grid not started"
                    if len(work) > 1
                    else ""
                )
                if done is not None:  # nothing to resume
                    say(f"interrupted{grid}")
                    raise
                say(f"interrupted{grid}; resume this one with")
                say(f"  {rundir.resume_command(run_dir)}", soft_wrap=True)
                raise
    print_summary(finished, run_dirs, fields)
    return 0


def say_repeats(
    decided: list[tuple[TrainConfig, Any]], labels: list[str], results_dir: Path
) -> None:
    """Before training: the runs (their progress labels) that repeat a configuration and seed
    already complete in ``results_dir``, whose report counts each seed of a group once: a
    command typed twice is noticed while it can still be stopped."""
    from benchmark import rundir

    done = rundir.complete_seeds(results_dir)
    again = []
    for i, (cfg, ex) in enumerate(decided):
        key = rundir.planned_seed(cfg, ex.precision)
        if key in done:
            number = f"[{i + 1}/{len(decided)}] " if len(decided) > 1 else ""
            again.append(f"{number}{labels[i]} (as {done[key]})")
    if not again:
        return
    which = (
        "this run repeats"
        if len(decided) == 1
        else f"{len(again)} of these runs {'repeats' if len(again) == 1 else 'repeat'}"
    )
    say(
        f"note: {which} a configuration and seed already complete in {results_dir / 'runs'} "
        f"(the report counts a seed once): {named(again)}",
        soft_wrap=True,
    )


SHORT = 60.0  # seconds: an estimate under this says what it leaves out


def announce(
    work: list[tuple[TrainConfig, Any, Any]],
    sweeps: dict[str, list[Any]],
    results_dir: Path,
    arg_sweeps: dict[str, list[Any]] | None = None,
) -> float | None:
    """Before the first run: the grid's size, where it runs and how long it should take (from
    earlier runs or the CPU probe: ``estimate.estimate``); returns that estimate in seconds."""
    from benchmark.hardware import machine_name

    configs = [cfg for cfg, _, _ in work]
    if len(configs) > 1:
        sizes = [
            (len({c.arch for c in configs}), "encoders"),
            (len({c.fusion for c in configs}), "fusions"),
            *((len(v), f"--{k.replace('_', '-')} values") for k, v in sweeps.items()),
            *((len(v), f"{k} values") for k, v in (arg_sweeps or {}).items()),
            (len({c.seed for c in configs}), "seeds"),
        ]
        parts = " x ".join(f"{n} {what}" for n, what in sizes if n > 1)
        if math.prod(n for n, _ in sizes) > len(configs):  # some take no swept model argument
            parts += ", each model argument where taken"
        say(f"grid: {len(configs)} runs ({parts})")
    ways = {(machine_name(ex.device), ex.describe()) for _, ex, _ in work}
    if len(ways) == 1:
        say("on {}, {}".format(*next(iter(ways))))
    say_emulated([ex for _, ex, _ in work])
    for kind in dict.fromkeys(cfg.log for cfg in configs if cfg.log != "none"):
        say(destination(kind, results_dir), soft_wrap=True)
    found = estimate(
        [(cfg, ex, (len(d.train), len(d.val), len(d.test))) for cfg, ex, d in work], results_dir
    )
    if found is None:
        say("time: no estimate (no earlier run of these models here, no CPU probe figure)")
        return None
    # start-up and the first steps' warm-up are not in an estimate: a few seconds, most of a
    # smoke run's time (a 2,048-image run of gap_cnn x concat was estimated at 2 s)
    unsaid = " (start-up and warm-up not counted)" if found[0] < SHORT else ""
    say(
        f"time: about {duration(found[0])} of training and evaluation{unsaid}, "
        f"estimated from {found[1]}"
    )
    return found[0]


def resume(args: argparse.Namespace) -> int:
    """Continue ``--resume RUN_DIR`` from its last finished epoch (optimizer and RNGs restored)."""
    from benchmark import rundir, runs
    from benchmark.data import load_mnist

    run_dir = Path(args.resume)
    grid = ("arch", "fusion", "seed", "seeds", "model_arg")
    given = [*config_overrides(args), *(k for k in grid if getattr(args, k) is not None)]
    given += [k for k in ("tuned", "tuned_study", "tuned_any_budget") if getattr(args, k)]
    given += [k for k in ("config", "print_config") if getattr(args, k)]
    if given:
        flags = ", ".join(map(flag_name, sorted(given)))
        raise UsageError(f"--resume continues the saved config; drop {flags}")
    if not (run_dir / rundir.CONFIG).exists():
        what = f"no {rundir.CONFIG} there" if run_dir.is_dir() else "no such directory"
        raise UsageError(f"--resume {run_dir}: {what}; expected a run directory")
    home = run_dir.resolve().parent.parent  # <results-dir>/runs/<run-id>
    if args.results_dir != OUTPUT and Path(args.results_dir).resolve() != home:
        raise UsageError(
            f"--resume continues {run_dir} where it is, in {run_dir.parent.parent}; drop "
            f"--results-dir {args.results_dir}"
        )
    closed = (
        rundir.read_status(run_dir)[0] == "complete" and not (run_dir / rundir.CHECKPOINT).exists()
    )
    if closed and not (run_dir / rundir.METRICS).exists():  # it wrote them before the status
        raise DamagedFileError(  # nothing resumes it: trained again, it overwrote model.pt
            f"{run_dir / rundir.METRICS}: missing from a complete run (its weights are "
            f"{rundir.MODEL}, and no {rundir.CHECKPOINT} is left to resume); put it back, or "
            "train a new run"
        )
    if closed:  # else the claim closes it (if killed)
        rundir.check_metrics(run_dir)  # damaged: named, not called complete
        raise UsageError(f"--resume {run_dir}: the run is already complete")
    with rundir.claimed(run_dir):  # held from here to the end: one resume at a time
        if (run_dir / rundir.METRICS).exists():  # another resume finished it just before
            raise UsageError(f"--resume {run_dir}: the run is already complete")
        cfg = runs.load_config(run_dir)  # checked: a damaged config.json is one line naming it
        cfg, ex = prepare(cfg)  # as saved: precision and layout were written in at the start
        check_layout([cfg.arch], ex)
        check_available(cfg.log)
        state = runs.resume_state(run_dir, cfg, ex)
        data = load_mnist(cfg.data_dir).to(ex.device)
        start = runs.resume_point(state, cfg.epochs) + (
            "" if state else f" (no {rundir.CHECKPOINT}: stopped before an epoch ended, or removed)"
        )
        console.print(f"resuming {run_dir} {start} ({ex.describe()}, as saved)")
        with interrupts_as_exceptions():
            try:
                metrics = train_with_progress(cfg, data, run_dir, ex, state=state)
            except KeyboardInterrupt:
                metrics = rundir.completed_anyway(run_dir)  # the signal came as it closed
                if metrics is None:
                    say("interrupted; resume with")
                    say(f"  {rundir.resume_command(run_dir)}", soft_wrap=True)
                    raise
    print_summary([metrics], [run_dir], ())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="train arch x fusion x seed runs", description=cmd_run.__doc__)
    p.add_argument("--arch", help="encoder(s): comma list, wildcards, or all [gap_cnn]")
    p.add_argument("--fusion", help="fusion(s): comma list, wildcards, or all [concat]")
    p.add_argument("--seed", type=int, metavar="S", help="one seed [0]")
    p.add_argument("--seeds", type=seed_list, help="several seeds, e.g. 0,1,2 (one run each)")
    add_model_arg_flag(p, sweeps=True)
    add_results_dir_flag(p, "where runs/ is written")
    p.add_argument(
        "--resume", type=path_text, metavar="RUN_DIR", help="continue an interrupted run"
    )
    add_tuned_flags(p, "train")
    add_config_file_flags(p)
    add_config_flags(p, sweep=True)
    add_plugin_flag(p, cmd_run)
