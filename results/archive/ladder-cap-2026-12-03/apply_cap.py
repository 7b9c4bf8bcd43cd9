"""Bring the committed 9-epoch rung under the epoch cap (``compare.TUNE_SHARE``), once.

Run from the repository root: ``python results/archive/ladder-cap-2026-12-03/apply_cap.py``.
The rung's studies ran one trial at a time (no two trials of a study overlap), so the cap's
decisions can be replayed exactly from their stored curves: at each epoch where a trial went on,
the epochs the study would then have promised (``pruning.promised_epochs``: the trials before it,
its next rung, one epoch for each trial still to come) against the cap.

- A study the cap never stops anywhere is what the capped rule would have produced: its
  recorded rule is updated.
- A study the cap first stops at trial N keeps its trials before N (the capped rule makes the
  same decisions there) and loses the rest, to be tuned again by ``compare``; the whole study as
  it was is copied to ``optuna.db`` in this folder first.
- ``comparison.json``: the 9-epoch rung's plan gets its new key and rule, its stages kept, less
  the wall time of the trials removed (their own start-to-end time, on the machine that ran
  them). The rung's old run queue, a work list, is deleted: the new key has its own.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna

from benchmark import compare, files, pruning
from benchmark.cli import build_parser
from benchmark.commands.compare import plans_from
from benchmark.comparison import COMPARISON, QUEUE_PREFIX
from benchmark.trials import counts_towards_budget

RESULTS = Path("results")
HERE = Path(__file__).parent
STORAGE = f"sqlite:///{RESULTS / 'optuna.db'}"
ARCHIVE = f"sqlite:///{HERE / 'optuna.db'}"
# The machine each study's removed trials ran on: the 9-epoch rung was tuned in two sittings,
# on the AMD EPYC until 17:06 and on the Xeon from 21:05 (2026-12-02, trial start times).
EPYC = "vm (cpu: AMD EPYC (2 threads))"
XEON = "vm (cpu: Intel(R) Xeon(R) Processor (2 threads))"


def first_stop(study: optuna.Study, plan: compare.Plan) -> int | None:
    """The number of the first trial the cap would have stopped earlier than it stopped."""
    epochs, cap = plan.base.epochs, plan.epoch_cap()
    counted = [t for t in study.get_trials(deepcopy=False) if counts_towards_budget(t)]
    spent = 0
    for index, trial in enumerate(counted):
        last = int(max(trial.intermediate_values, default=0))
        still_to_come = plan.trials - index - 1
        for epoch in range(1, last):
            promised = spent + pruning.halving_rung_after(epoch, epochs) + still_to_come
            if not trial.user_attrs.get("defaults") and promised > cap:
                return trial.number
        spent += last
    return None


def main() -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = build_parser().parse_args(["compare", "--epochs", "1,3,9", "--results-dir", "results"])
    plans = plans_from(args)
    nine = plans[-1]
    found = json.loads((RESULTS / COMPARISON).read_text())
    for plan in plans[:-1]:  # the lower rungs are not capped: their protocol is as it was
        assert found["rungs"][str(plan.base.epochs)]["plan"]["key"] == plan.key()
    old = found["rungs"]["9"]
    if old["plan"]["key"] == nine.key():
        print("already applied")
        return 0
    removed_s = {EPYC: 0.0, XEON: 0.0}
    for arch, fusion in nine.pairs:
        name = nine.study(arch, fusion)
        study = optuna.load_study(study_name=name, storage=STORAGE)
        stop = first_stop(study, nine)
        if stop is None:
            study.set_user_attr("pruner", nine.pruner())
            print(f"{name}: never stopped by the cap; rule recorded as {nine.pruner()!r}")
            continue
        kept = [t for t in study.trials if t.number < stop]
        gone = [t for t in study.trials if t.number >= stop]
        seconds = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in gone)
        removed_s[EPYC if gone[0].datetime_start.hour < 18 else XEON] += seconds
        optuna.copy_study(from_study_name=name, from_storage=STORAGE, to_storage=ARCHIVE)
        attrs = dict(study.user_attrs, pruner=nine.pruner())
        optuna.delete_study(study_name=name, storage=STORAGE)
        fresh = optuna.create_study(study_name=name, storage=STORAGE, direction="maximize")
        for key, value in attrs.items():
            fresh.set_user_attr(key, value)
        fresh.add_trials(kept)
        assert [t.number for t in fresh.trials] == [t.number for t in kept]
        print(
            f"{name}: first stopped by the cap at trial {stop}; kept trials 0-{stop - 1}, "
            f"removed {len(gone)} ({seconds:.0f} s of tuning), archived whole"
        )
    optuna.delete_study(study_name=QUEUE_PREFIX + old["plan"]["key"], storage=STORAGE)
    tune = old["stages"]["tune"]
    for where, seconds in removed_s.items():
        if seconds:
            tune[where] = round(tune[where] - seconds, 1)
    rung = {"plan": nine.to_dict(), "stages": old["stages"]}
    rungs = {**found["rungs"], "9": rung}
    files.write_json(RESULTS / COMPARISON, {**rung, "rungs": rungs})
    print(
        f"comparison.json: 9-epoch key {old['plan']['key']} -> {nine.key()}; tune stage less "
        + ", ".join(f"{s:.0f} s on {w}" for w, s in removed_s.items() if s)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
