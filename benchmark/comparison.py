"""What ``compare`` leaves in a results directory for others to read: ``comparison.json`` (the
plan, each stage's wall time, kept by ``StageClock``, and the wall time of ``--jobs`` sittings,
kept by ``Sitting``) and the name prefix of its run queue in the Optuna storage (a work list,
not a study). Free of torch and Optuna, so the report reads it cheaply."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmark import files
from benchmark.errors import DamagedFileError

COMPARISON = "comparison.json"
LOCK = COMPARISON + ".lock"  # held while a worker adds its time
QUEUE_PREFIX = "compare-runs__"


def record_stage(
    results_dir: Path,
    plan: dict[str, Any],
    stage: str,
    seconds: float,
    where: str,
    ladder: list[dict[str, Any]] | None = None,
) -> None:
    """Add ``seconds`` of ``stage`` of ``plan`` (a plan's dict, with its ``key``) to
    ``<results>/comparison.json``: the wall time of each stage, per machine, summed over
    sittings since ``compare`` resumes, and over the workers of a machine (each its time at
    work: waiting for other workers is not counted).

    One rung: ``{"plan", "stages"}``. A ladder (``ladder``: the plan of every rung, lowest
    budget first): each rung's plan and stages under ``rungs``, keyed by its epochs, and the top
    rung's at the top level, since the top rung gives the answer. Stages already recorded for a
    plan (also in a one-rung file of the same protocol) are kept; other plans' are dropped.

    Several workers on one machine each add their own time (the sum is worker time, not the
    machine's wall time), taking turns on the file so that no worker's time is lost."""
    with files.locked(Path(results_dir) / LOCK):
        _add_stage(Path(results_dir), plan, stage, seconds, where, ladder)


def _add_stage(
    results_dir: Path,
    plan: dict[str, Any],
    stage: str,
    seconds: float,
    where: str,
    ladder: list[dict[str, Any]] | None,
) -> None:
    found = load_comparison(results_dir) or {}
    stages_of = {key: stages for key, (_, stages) in recorded(found).items()}
    stages = stages_of.get(plan["key"], {})
    entry = stages.setdefault(stage, {})
    entry[where] = round(entry.get(where, 0.0) + seconds, 1)
    stages_of[plan["key"]] = stages
    path = Path(results_dir) / COMPARISON
    keys = {p["key"] for p in ladder or [plan]}
    kept = {"sittings": [s for s in sittings(found) if set(s["rungs"]) <= keys]}
    if not ladder or len(ladder) == 1:
        files.write_json(path, {"plan": plan, "stages": stages, **kept})
        return
    rungs = {
        str(p["budget"]["epochs"]): {"plan": p, "stages": stages_of.get(p["key"], {})}
        for p in ladder
    }
    top = rungs[str(ladder[-1]["budget"]["epochs"])]
    files.write_json(path, {**top, "rungs": rungs, **kept})


def recorded(found: dict[str, Any]) -> dict[Any, tuple[dict[str, Any], dict[str, Any]]]:
    """Every plan a comparison.json holds (the top level's and each rung's), by key: the plan
    and its stage times."""
    held = [found, *(found.get("rungs") or {}).values()]
    return {
        r["plan"].get("key"): (r["plan"], r.get("stages") or {})
        for r in held
        if isinstance(r, dict) and isinstance(r.get("plan"), dict)
    }


def rungs_of(comparison: dict[str, Any] | None) -> list[tuple[int, dict[str, Any]]]:
    """(epochs, {"plan", "stages"}) of each rung of ``comparison.json``, lowest budget first;
    a one-rung file is its own single rung. Entries of an unexpected shape are left out."""
    if not isinstance(comparison, dict):
        return []
    rungs = comparison.get("rungs")
    entries = rungs.values() if isinstance(rungs, dict) else [comparison]
    found = []
    for entry in entries:
        plan = entry.get("plan") if isinstance(entry, dict) else None
        epochs = files.lookup(plan, "budget.epochs")
        if isinstance(plan, dict) and isinstance(epochs, int) and not isinstance(epochs, bool):
            found.append((epochs, entry))
    return sorted(found, key=lambda e: e[0])


def dropped_by(found: dict[str, Any] | None, keys: list[str]) -> list[dict[str, Any]]:
    """The plans ``found`` (a comparison.json) holds stage times of that a protocol of plan
    ``keys`` would drop on its first record (``record_stage`` keeps only its own rungs'): hours
    of measured cost, so ``compare`` refuses before any work rather than lose them."""
    plans = recorded(found or {}).items()
    return [plan for key, (plan, stages) in plans if stages and key not in keys]


def recorded_flags(found: dict[str, Any] | None) -> str:
    """The ``compare`` flags of the protocol ``found`` (a comparison.json) holds, as far as its
    plans record them (``--arch ... --epochs 1,3,9``): what a user is told to give to go on with
    it. Every rung of the file counts, the ones not started yet too (``record_stage`` writes the
    whole ladder's plans). Empty where a plan's shape is not the one ``compare`` writes, or where
    it holds what these flags cannot give (fixed settings, plug-ins): a command that left them
    out would be another protocol, refused again."""
    plans = [plan for plan, _ in recorded(found or {}).values()]
    try:
        top = max(plans, key=lambda plan: plan["budget"]["epochs"])
        if any(plan.get("fixed") or plan.get("plugins") for plan in plans):
            return ""
        epochs = sorted({int(plan["budget"]["epochs"]) for plan in plans})
        pairs = [tuple(pair) for pair in top["pairs"]]
        archs, fusions = (
            list(dict.fromkeys(a for a, _ in pairs)),
            list(dict.fromkeys(f for _, f in pairs)),
        )
        flags = []
        if len(pairs) == len(archs) * len(fusions) == len(set(pairs)):  # every arch x fusion
            flags += [f"--arch {','.join(archs)}", f"--fusion {','.join(fusions)}"]
        flags += [f"--seeds {','.join(str(int(s)) for s in top['seeds'])}"]
        flags += [f"--trials {int(top['trials'])}"]
        if top.get("max_params") is not None:
            flags.append(f"--max-params {int(top['max_params'])}")
        budget = top["budget"]
        if budget.get("train_subset") is not None:
            flags.append(f"--train-subset {int(budget['train_subset'])}")
        if budget.get("holdout_pairs"):
            flags.append(f"--holdout-pairs {int(budget['holdout_pairs'])}")
        if top.get("precision") in ("fp32", "bf16"):
            flags.append(f"--precision {top['precision']}")
        flags.append(f"--epochs {','.join(map(str, epochs))}")
    except (KeyError, TypeError, ValueError):
        return ""
    return " ".join(flags)


def sittings(found: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``compare --jobs`` sittings a comparison.json records (``Sitting``), well-formed
    ones only: where, how many worker processes, wall seconds, the rung keys they worked on."""
    shape = {"where": str, "processes": int, "seconds": (int, float), "rungs": list}
    return [
        s
        for s in (found or {}).get("sittings") or []
        if isinstance(s, dict) and all(isinstance(s.get(k), t) for k, t in shape.items())
    ]


class Sitting:
    """The wall time of a ``compare --jobs N`` sitting on one machine, added to comparison.json
    as a sitting of its own when its workers recorded any stage time (a sitting that found
    everything complete leaves the file as it was). The stages sum the workers' time, N times
    the machine's at most; this is the machine's."""

    def __init__(self, results_dir: Path, ladder: list[Any], where: str, processes: int) -> None:
        self.results_dir, self.where, self.processes = Path(results_dir), where, processes
        self.keys = [plan.key() for plan in ladder]

    def stages(self) -> Any:
        found = read_comparison(self.results_dir) or {}
        rungs = [r for r in (found.get("rungs") or {}).values() if isinstance(r, dict)]
        return [found.get("stages"), *(r.get("stages") for r in rungs)]

    def __enter__(self) -> Sitting:
        self.before, self.start = self.stages(), time.perf_counter()
        return self

    def __exit__(self, *_: Any) -> None:
        if self.stages() == self.before:
            return
        sitting = {"where": self.where, "processes": self.processes, "rungs": self.keys}
        sitting["seconds"] = round(time.perf_counter() - self.start, 1)
        with files.locked(self.results_dir / LOCK):
            found = load_comparison(self.results_dir)
            if found is not None:
                found["sittings"] = [*sittings(found), sitting]
                files.write_json(self.results_dir / COMPARISON, found)


def epochs_text(epochs: int) -> str:
    """A rung's name: ``1 epoch``, ``9 epochs``."""
    return f"{epochs} epoch" + ("" if epochs == 1 else "s")


def read_comparison(results_dir: Path) -> dict[str, Any] | None:
    """The last ``compare`` plan written to ``results_dir``; None if none (or damaged)."""
    try:
        return load_comparison(results_dir)
    except DamagedFileError:
        return None


def load_comparison(results_dir: Path) -> dict[str, Any] | None:
    """``read_comparison`` for a writer: None where there is no comparison.json, and a damaged
    one (an edit gone wrong) named in one line, since writing over it would lose the hours of
    stage times it holds."""
    path = Path(results_dir) / COMPARISON
    if not path.exists():
        return None
    try:
        found = files.parse_json(path.read_text())
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = exc.strerror if isinstance(exc, OSError) else f"not valid JSON: {exc}"
        raise DamagedFileError(
            f"{path}: unreadable ({reason}); repair it or move it away"
        ) from None
    if not isinstance(found, dict) or not isinstance(found.get("plan"), dict):
        raise DamagedFileError(f"{path}: not a compare record (no plan); repair it or move it away")
    if problem := shape_problem(found):
        raise DamagedFileError(f"{path}: {problem}; repair it or move it away")
    return found


INT, TEXT = (int,), (str,)
# What a plan's fields hold, where present (``compare`` writes them all; older files lack some).
PLAN_FIELDS = {
    "key": TEXT,
    "seeds": (list,),
    "trials": INT,
    "max_params": (int, type(None)),
    "budget": (dict,),
    "fixed": (dict,),
    "studies": (list,),
    "pairs": (list,),
}
# the JSON types of config.BUDGET_FIELDS, as a plan records them (a test holds the two equal)
BUDGET_TYPES = {"epochs": INT, "train_subset": (int, type(None)), "holdout_pairs": INT}


# the least value of a plan's numbers that compare writes (its flags refuse less)
PLAN_LEAST = {"trials": 1, "max_params": 1}
BUDGET_LEAST = {"epochs": 1, "train_subset": 1, "holdout_pairs": 0}


def range_problem(where: str, plan: dict[str, Any]) -> str | None:
    """What in a plan of the right types ``compare`` could not have written, or None: no seeds
    or combinations, -1 epochs, 0 trials. Its flags, given back to the user (and re-parsed by
    ``--status``), were refused as though typed, exit 2; the file is the one to name."""
    if empty := next((k for k in ("seeds", "pairs") if plan.get(k) == []), None):
        return f"{where}.{empty} is empty"
    budget = plan.get("budget", {})
    least = [(f"{where}.{k}", plan.get(k), n) for k, n in PLAN_LEAST.items()]
    least += [(f"{where}.budget.{k}", budget.get(k), n) for k, n in BUDGET_LEAST.items()]
    least += [(f"{where}.seeds[{i}]", seed, 0) for i, seed in enumerate(plan.get("seeds", []))]
    return next(
        (
            f"{name} is {v!r}, less than compare writes ({n})"
            for name, v, n in least
            if v is not None and v < n
        ),
        None,
    )


def shape_problem(found: dict[str, Any]) -> str | None:
    """What in a comparison.json is not of the shape ``compare`` writes (its plans' fields and
    the stage times, top level and per rung), or None: a report or a compare that took a
    hand-edited value for another type failed far from the file, in a traceback."""
    plans = {"plan": found["plan"]}
    rungs = found.get("rungs", {})
    if not isinstance(rungs, dict) or not all(isinstance(r, dict) for r in rungs.values()):
        return "rungs is not an object of rung records"
    plans |= {f"rungs.{k}.plan": r.get("plan") for k, r in rungs.items()}
    for where, plan in plans.items():
        if not isinstance(plan, dict):
            return f"{where} is not an object"
        if (key := files.mistyped(plan, PLAN_FIELDS)) is not None:
            return f"{where}.{key} is {plan[key]!r}"
        if (key := files.mistyped(plan.get("budget", {}), BUDGET_TYPES)) is not None:
            return f"{where}.budget.{key} is {plan['budget'][key]!r}"
        seeds = dict(enumerate(plan.get("seeds", [])))
        if (key := files.mistyped(seeds, dict.fromkeys(seeds, INT))) is not None:
            return f"{where}.seeds[{key}] is {seeds[key]!r}"
        if problem := range_problem(where, plan):
            return problem
    stages = [("stages", found.get("stages", {}))]
    stages += [(f"rungs.{k}.stages", r.get("stages", {})) for k, r in rungs.items()]
    for where, times in stages:
        per_machine = times.values() if isinstance(times, dict) else [None]
        if not all(
            isinstance(m, dict) and all(files.is_number(t) and t >= 0 for t in m.values())
            for m in per_machine
        ):  # (a negative time was shown as it was: "-5.0 s")
            return f"{where} is not seconds per stage and machine"
    return None


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
        # whole tenths only (comparison.json keeps tenths); the rest counts in the next write
        seconds = round(time.perf_counter() - self.start, 1)
        if seconds > 0:
            record_stage(self.results_dir, self.plan.to_dict(), self.stage, seconds, self.where,
                         self.rungs)  # fmt: skip
            self.start += seconds
