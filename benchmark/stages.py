"""The two stages of ``compare`` over every rung of the ladder, one pass at a time: tuning every
combination's study to its trials, then the final runs from each rung's queue. Each pass takes
whatever other workers sharing the storage do not hold, so one process or many (``--jobs``, other
machines) run the same code; the command (``benchmark.commands.compare``) parses and reports."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmark.comparison import StageClock, epochs_text
from benchmark.config import TrainConfig
from benchmark.errors import DamagedFileError, UsageError
from benchmark.progress import StudyProgress, console, say, study_bar, train_with_progress
from benchmark.wording import plural

POLL_S = 5.0  # how often a compare waiting for other workers' runs looks again


def tune_all(
    plan: Any,
    storage: Any,
    data: Any,
    ex: Any,
    seed: int,
    worker: int | None,
    lap: Callable[..., None],
    at: str = "",
) -> list[Any]:
    """Stage 1, one pass: trials in every combination's study while places are free (fewer
    than ``plan.trials`` finished or running on any machine); a study whose last places other
    workers hold is left to them. ``lap`` after each trial; ``seed`` and ``worker`` seed the
    samplers (``tuning.sampler``); ``at``: the rung in words (``rung_words``)."""
    from benchmark import pruning, tuning

    studies = []
    console.print(
        f"tuning at {at or epochs_text(plan.base.epochs)}, {plural(plan.trials, 'trial')} a study:"
    )
    for arch, fusion in plan.pairs:
        cfg = plan.config(arch, fusion)
        name = plan.study(arch, fusion)
        study = tuning.open_study(storage, name, cfg, None, plan.max_params)
        study.sampler = tuning.sampler(seed, len(study.trials), worker)
        # multi-fidelity: trials report every epoch and the pruner stops the poor ones early
        if plan.pruner():
            hint = "delete it (optuna delete-study) or give another --results-dir"
            pruning.keep_pruner(study, plan.pruner(), hint)
        study.pruner = plan.make_pruner()
        with study_bar() as bar:
            tracker = StudyProgress(bar, study, f"{arch} x {fusion}", plan.trials)
            tuning.optimize(
                study, cfg, data, ex, plan.trials, None, plan.max_params, (tracker.refresh, lap),
                wait=False,
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
    at: str = "",
) -> dict[str, int]:
    """Stage 2, one pass: runs from the queue of default and tuned runs, shared with other
    machines, until none is left to take; ``lap`` before each run, so the time of the runs
    before it is written. The queue's counts after the pass."""
    from benchmark import compare, plugins, rundir, runs

    queue, unreadable = compare.open_queue(plan, storage, results_dir)  # queues them again
    for why in dict(unreadable.values()).values():  # one line a seed, however many runs
        say(f"{why}: training the seed again (the directory is kept)", soft_wrap=True)
    total = len(plan.items())
    done = [compare.progress_counts(queue, unreadable)["complete"]]

    heading = [""]  # the queued item about to train: the run's own first line says it

    def train(cfg: TrainConfig) -> dict[str, Any]:
        cfg = ex.settle(cfg)  # what config.json keeps: precision and layout as decided
        cfg = replace(cfg, plugins=plugins.used_by([(cfg.arch, cfg.fusion)]))
        stopped = compare.find_interrupted(results_dir, cfg)
        if stopped is not None:  # this seed, stopped in an earlier sitting: go on with it
            with ExitStack() as held:
                try:
                    held.enter_context(rundir.claimed(stopped))  # not one another process runs
                    saved = runs.load_config(stopped)
                    state = runs.resume_state(stopped, saved, ex)
                except (UsageError, DamagedFileError) as exc:
                    why = (
                        str(exc)
                        .removeprefix(f"--resume {stopped}: ")
                        .removesuffix("; stop it first")
                    )
                    say(f"not resuming {stopped} ({why}): training the seed afresh", soft_wrap=True)
                    if isinstance(exc, DamagedFileError):  # the report: not one to resume
                        rundir.write_status(stopped, "failed", f"not resumed by compare: {why}")
                else:
                    at = runs.resume_point(state, saved.epochs)
                    said = f"resuming {at}: stopped in an earlier sitting"  # under its header
                    label = heading[0] or None
                    return train_with_progress(saved, data, stopped, ex, state, label, said)
        run_dir = runs.start_run(cfg, results_dir)
        return train_with_progress(cfg, data, run_dir, ex, label=heading[0] or None)

    def on_item(item: str, what: str) -> None:
        lap()
        done[0] += 1
        arch, fusion, variant, seed = item.split("|")
        heading[0] = (
            f"[{done[0]}/{total} at {at or epochs_text(plan.base.epochs)}] {arch} x {fusion} "
            f"{variant}, seed {seed}"
        )
        if what != "training":
            console.print(f"{heading[0]}: {what}")

    compare.run_queue(plan, queue, results_dir, records, train, on_item, unreadable)
    return compare.progress_counts(queue, unreadable)


def rung_words(plan: Any, plans: list[Any]) -> str:
    """``3 epochs, rung 2 of 3``: where a ladder's progress is (its run counter starts again at
    each rung, and "[1/16 at 3 epochs]" said nothing of the rungs left); one rung: its epochs."""
    at = epochs_text(plan.base.epochs)
    return f"{at}, rung {plans.index(plan) + 1} of {len(plans)}" if len(plans) > 1 else at


def each_rung(
    plans: list[Any],
    stage: str,
    clock: Callable[[Any, str], StageClock],
    work: Callable[[Any, StageClock], Any],
) -> tuple[dict[int, Any], bool]:
    """One pass of a stage over every rung, lowest first, each under its stage's clock: what
    ``work(plan, lap)`` returned by rung, and whether any of it trained."""
    out, worked = {}, False
    for plan in plans:
        with clock(plan, stage) as lap:
            out[plan.base.epochs] = work(plan, lap)
        worked |= lap.worked
    return out, worked


def tune_ladder(
    plans: list[Any],
    storage: Any,
    spec: str,
    data: Any,
    ex: Any,
    seed: int,
    worker: int | None,
    results_dir: Path,
    clock: Callable[[Any, str], StageClock],
) -> tuple[dict[int, dict[tuple[str, str], Any]], bool]:
    """Stage 1 of every rung: each study to ``--trials`` finished trials, then each study's
    best exported; the records by rung and combination, and whether this process trained.

    A pass trains wherever a place is free, lowest rung first, and this process waits only once
    other workers hold every place left in the ladder: waiting for each study's last trials in
    turn kept sixteen workers on one GPU a third busy. A place whose trial failed elsewhere is
    trained in the next pass."""
    from benchmark import compare
    from benchmark.tuning import finished_count

    worked = False
    while True:
        studies, did = each_rung(
            plans, "tune", clock,
            lambda plan, lap: tune_all(
                plan, storage, data, ex, seed, worker, lap, rung_words(plan, plans)
            ),
        )  # fmt: skip
        worked |= did
        every = [study for rung in studies.values() for study in rung]
        if not compare.tuning_finished(every):
            say(waiting_words(every), soft_wrap=True)
            compare.wait_for_tuning(every)
        if all(
            finished_count(study) >= plan.trials
            for plan in plans
            for study in studies[plan.base.epochs]
        ):
            break
    records, spent = {}, {}
    for plan in plans:
        records[plan.base.epochs], spent[plan.base.epochs] = compare.export_rung(
            plan, studies[plan.base.epochs], spec, results_dir
        )
    console.print(SPENT, markup=False)
    console.print(spent_table(plans, spent))
    return records, worked


SPENT = "tuning: epochs trained, of what the counted trials would train unpruned"


def waiting_words(studies: list[Any]) -> str:
    """What compare waits for; on a storage without heartbeats (a journal) also what ends the
    wait for a trial whose worker on another machine was killed, which nothing here can tell
    from one still training: compare run again on that machine fails it (``fail_stale``)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    said = "waiting for tuning trials still running on other workers ..."
    if studies and not is_heartbeat_enabled(studies[0]._storage):
        said += (
            " (a journal has no heartbeat: a trial whose worker on another machine was killed "
            "is held until compare runs again on that machine)"
        )
    return said


def spent_table(plans: list[Any], spent: dict[int, dict[tuple[str, str], tuple[int, int]]]) -> Any:
    """What tuning trained, combination by rung: the epochs each study's trials trained against
    what its counted trials would have trained unpruned, and the share (the pruner's saving)."""
    from rich.table import Table

    table = Table()  # its title is a line of its own (``SPENT``): a narrow table cut it
    table.add_column("combination")
    for plan in plans:
        table.add_column(epochs_text(plan.base.epochs), justify="right")
    for pair in plans[0].pairs:
        cells = []
        for plan in plans:
            trained, unpruned = spent[plan.base.epochs][pair]
            cells.append(f"{trained} of {unpruned}, {trained / unpruned:.0%}" if unpruned else "-")
        table.add_row(" x ".join(pair), *cells)
    return table


def status_table(found: list[dict[str, int]], title: str) -> Any:
    """``compare --status``'s table: each rung's tuning trials and final runs done against those
    wanted, and what else the storage holds of them (running, queued, diverged, interrupted)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("rung", "tuning trials", "final runs"):
        table.add_column(column, justify="left" if column == "rung" else "right")
    for rung in found:
        trials = f"{rung['trials']} of {rung['trials_wanted']}"
        runs = f"{rung['runs']} of {rung['runs_wanted']}"
        trials += f", {rung['trials_running']} running" if rung["trials_running"] else ""
        trials += f", {rung['trials_queued']} queued" if rung["trials_queued"] else ""
        runs += f", {rung['runs_running']} running" if rung["runs_running"] else ""
        runs += f", {rung['runs_diverged']} diverged" if rung["runs_diverged"] else ""
        stopped = rung["runs_interrupted"]
        runs += f", {stopped} interrupted (the next compare goes on with it)" if stopped else ""
        unreadable = rung["runs_unreadable"]
        runs += f", {unreadable} unreadable here (trains again)" if unreadable else ""
        table.add_row(epochs_text(rung["epochs"]), trials, runs)
    return table


def train_ladder(
    plans: list[Any],
    storage: Any,
    data: Any,
    ex: Any,
    results_dir: Path,
    records: dict[int, Any],
    clock: Callable[[Any, str], StageClock],
) -> tuple[int, bool]:
    """Stage 2 of every rung: default and tuned over the seeds; how many runs diverged, and
    whether this process trained. Passes go through every rung's queue, lowest first, and this
    process waits only once other workers hold every run left; a worker silent for
    ``storages.GRACE_S`` is taken over in the next pass."""
    from benchmark import storages

    worked = False
    while True:
        counts, did = each_rung(
            plans, "runs", clock,
            lambda plan, lap: train_all(
                plan, storage, data, ex, results_dir, records[plan.base.epochs], lap,
                rung_words(plan, plans),
            ),
        )  # fmt: skip
        worked |= did
        # running on other workers, or interrupted there (the next pass queues them again)
        held = sum(c["running"] + c["waiting"] + c["interrupted"] for c in counts.values())
        if not held:
            break
        console.print(
            f"runs: {held} held by other workers; waiting (a worker silent for "
            f"{storages.GRACE_S} s is taken over) ..."
        )
        time.sleep(POLL_S)
    for plan in plans:
        c = counts[plan.base.epochs]
        console.print(
            f"runs at {epochs_text(plan.base.epochs)}: {c['complete']} of {len(plan.items())} "
            f"complete, {c['diverged']} diverged"
        )
    return sum(c["diverged"] for c in counts.values()), worked
