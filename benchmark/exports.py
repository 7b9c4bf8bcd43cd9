"""Tuned-parameter exports (``<results>/tuned/<study>.json``): the one owner of their format.

``tune`` writes the best trial of a study there; ``run --tuned`` and ``compare`` read it. An export
is keyed by its study, whose name holds the budget and the parameter cap, so parameters tuned at
one budget are never silently used at another.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from shlex import quote
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmark import files
from benchmark.config import BUDGET_FIELDS, SEARCHED, TrainConfig, fields_of, flag_name
from benchmark.errors import DamagedFileError, UsageError
from benchmark.places import TUNED
from benchmark.storages import storage_label
from benchmark.tuning import (
    check_study,
    finished_count,
    split_params,
)


def tuned_path(results_dir: str | Path, study: str) -> Path:
    """One export per study: another budget or cap is another study, so another file."""
    return Path(results_dir) / TUNED / f"{study}.json"


def best_record(study: optuna.Study, storage: str, results_dir: str | Path) -> dict | None:
    """The best complete trial, split into model_args and train overrides; None if none is.

    Beside it its study's budget and cap, and the storage named relative to the results
    directory (or masked): nothing machine-specific goes into ``results/``.
    """
    check_study(study)  # a storage changed to minimise would export the worst trial
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = study.best_trial
    spent = study.user_attrs["budget"]
    model_args, train_overrides = split_params(best.params, spent["arch"], spent["fusion"])
    return {
        "arch": spent["arch"],
        "fusion": spent["fusion"],
        "study": study.study_name,
        "storage": storage_label(storage, relative_to=results_dir),
        "trial": best.number,
        "value": best.value,
        "metric": "val joint_acc",
        "budget": spent,
        "finished_trials": finished_count(study),
        "model_args": model_args,
        "train": train_overrides,
        "user_attrs": {k: v for k, v in best.user_attrs.items() if k != "worker"},
    }


def export_best(
    study: optuna.Study, storage: str, results_dir: str | Path
) -> tuple[Path, dict[str, Any]] | None:
    """Write ``best_record`` to ``<results>/tuned/<study>.json``; None if no trial completed."""
    record = best_record(study, storage, results_dir)
    if record is None:
        return None
    path = tuned_path(results_dir, study.study_name)
    files.write_json(path, record)
    return path, record


# An export's fields and the types ``export_best`` writes them in: what is read is checked.
EXPORT_TYPES = {
    "study": str,
    "trial": int,
    "value": (int, float),
    "train": dict,
    "model_args": dict,
}


def read_export(path: Path) -> dict[str, Any]:
    """A ``tune`` export, its fields of the types written: a damaged or hand-edited one is one
    line naming the file and the field, not a traceback where a field is used."""
    try:
        tuned = files.parse_json(path.read_text())
        if not isinstance(tuned, dict) or not isinstance(tuned.get("budget"), dict):
            raise TypeError("no budget")
        for key in EXPORT_TYPES:
            tuned[key]  # noqa: B018 - a missing key is a damaged export
        checked = {**tuned, "budget epochs": tuned["budget"].get("epochs")}
        kinds = {**EXPORT_TYPES, "user_attrs": dict, "budget epochs": int}
        if wrong := files.mistyped(checked, kinds):
            raise TypeError(f"{wrong} {checked[wrong]!r}")
        fixed_problem(tuned["budget"].get("fixed", {}))
        if untuned := sorted(set(tuned["train"]) - set(SEARCHED)):  # e.g. a seed, written in
            # by hand: applied, it would override the --seeds typed (tuning sets none of them)
            raise ValueError(f"train holds {', '.join(untuned)}, which tuning never sets")
        return tuned
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        # a file, damaged: exit 1 as every damaged file read (a bad flag is 2)
        raise DamagedFileError(f"{path}: not an export of `tune` ({exc!r})") from None


def fixed_problem(fixed: Any) -> None:
    """A ``TypeError`` for a budget's ``fixed`` that ``tune`` could not have written: its
    settings are compared with a run's by name (``same_budget``), so a key that is no setting
    or model arguments that are no mapping ended in a traceback there."""
    if not isinstance(fixed, dict):
        raise TypeError(f"budget fixed {fixed!r}")
    if unknown := sorted(set(fixed) - {*fields_of("setting"), "model_args"}):
        raise TypeError(f"budget fixed holds {', '.join(map(str, unknown))}, no setting")
    if not isinstance(fixed.get("model_args", {}), dict):
        raise TypeError(f"budget fixed model_args {fixed['model_args']!r}")


def plain_name_problem(name: str) -> str | None:
    """What keeps ``name`` from being a study's name, or None: the export is
    ``tuned/<name>.json``, so a path would write elsewhere, ``.`` or ``..`` a hidden file, a
    control character an unprintable one, and a name too long for a file fail at the end,
    after the study's trials had trained."""
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\"):
        return "a plain name (no path separators)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a plain name (no control characters such as a line end)"
    if len(f"{name}.json".encode()) > 255:  # NAME_MAX on Linux and macOS
        return "a name of at most 250 bytes (its export is a file named after it)"
    return None


def find_export(
    cfg: TrainConfig, results_dir: Path, study: str | None = None, any_budget: bool = False
) -> Path:
    """The export ``run --tuned`` uses for ``cfg``: the named study's, else the one tuned at
    ``cfg``'s budget; one at another budget only with ``any_budget``."""
    if study is not None:
        if (problem := plain_name_problem(study)) is not None:  # a file outside tuned/
            raise UsageError(f"--tuned-study must be {problem}, got {study!r}")
        path = tuned_path(results_dir, study)
        if not path.is_file():
            raise UsageError(f"--tuned: {path} not found (no export of study {study!r})")
        return path
    prefix = f"{files.slug(cfg.arch)}__{cfg.fusion}__e"
    found = sorted((Path(results_dir) / TUNED).glob(f"{prefix}*.json"))
    if not found:
        raise UsageError(
            f"--tuned: no export for {cfg.arch} x {cfg.fusion} in {Path(results_dir) / TUNED};"
            f" run `python -m benchmark tune --arch {quote(cfg.arch)} --fusion {quote(cfg.fusion)} "
            f"{''.join(quote(f) + ' ' for f in tune_flags(cfg))}"
            f"--results-dir {quote(str(results_dir))}` first"
        )
    spent = {p: read_export(p)["budget"] for p in found}  # each file read once
    same = [p for p in found if same_budget(spent[p], cfg)]
    candidates = same or (found if any_budget else [])
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(p.stem for p in found)
    if not candidates:
        at = "; ".join(f"{p.stem} ({budget_flags(spent[p], cfg)})" for p in found)
        pick = "add --tuned-any-budget" if len(found) == 1 else "choose one with --tuned-study"
        raise UsageError(
            f"--tuned: {cfg.arch} x {cfg.fusion} was tuned at another budget than the one asked "
            f"({budget_asked(cfg)}): {at}; give the flags of one of those, tune at the one "
            f"asked, or {pick}"
        )
    raise UsageError(f"--tuned: several exports fit ({names}); choose one with --tuned-study")


def budget_values(spent: dict[str, Any]) -> dict[str, Any]:
    """An export's budget as ``TrainConfig`` values: its budget fields and every setting held
    fixed while tuning (those it did not record at their defaults). Model arguments held fixed
    are ``held_model_args``: a run may set others on top."""
    defaults = TrainConfig()
    fixed = {k: getattr(defaults, k) for k in fields_of("setting")} | spent.get("fixed", {})
    fixed.pop("model_args", None)
    return {k: spent.get(k) for k in BUDGET_FIELDS} | fixed


def held_model_args(spent: dict[str, Any]) -> dict[str, Any]:
    return spent.get("fixed", {}).get("model_args", {})


def same_budget(spent: dict[str, Any], cfg: TrainConfig) -> bool:
    """``cfg`` trains at the export's budget, with each model argument its study held fixed."""
    held = held_model_args(spent).items()
    return all(getattr(cfg, k) == v for k, v in budget_values(spent).items()) and all(
        cfg.model_args.get(k) == v for k, v in held
    )


def budget_asked(cfg: TrainConfig) -> str:
    """``epochs 4`` or ``epochs 1, train_subset 2000``: the budget ``cfg`` asks an export for."""
    return ", ".join(
        f"{k} {getattr(cfg, k)}" for k in BUDGET_FIELDS if getattr(cfg, k) not in (None, 0, False)
    )


def budget_flags(spent: dict[str, Any], cfg: TrainConfig) -> str:
    """How to change ``cfg``'s budget to an export's, in flags as a user would type them:
    "with --epochs 1 --optimizer sgd --model-arg img_size=28, without --train-subset"."""
    ways = (("with", "given"), ("without", "dropped"))
    flags = flags_to(spent, cfg)
    return ", ".join(f"{how} {' '.join(flags[key])}" for how, key in ways if flags[key])


def tune_flags(cfg: TrainConfig) -> list[str]:
    """The flags that tune a study at ``cfg``'s budget and settings, as typed: "run it first"
    with none of them tuned at the defaults (4 epochs on every image: hours on a CPU), and the
    run asking again refused that export as of another budget."""
    asked = {k: getattr(cfg, k) for k in BUDGET_FIELDS}
    return flags_to(asked | {"fixed": {k: getattr(cfg, k) for k in fields_of("setting")}})["given"]


def flags_to(spent: dict[str, Any], cfg: TrainConfig | None = None) -> dict[str, list[str]]:
    """The flags ``given`` and ``dropped`` that take ``cfg`` (the defaults) to ``spent``."""
    cfg = cfg or TrainConfig()
    given: list[str] = []
    dropped: list[str] = []
    for key, value in held_model_args(spent).items():
        if cfg.model_args.get(key) != value:
            given += ["--model-arg", f"{key}={value}"]
    for name, value in budget_values(spent).items():
        if getattr(cfg, name) == value:
            continue
        flag = flag_name(name)
        if value is None:
            dropped.append(flag)
        elif isinstance(value, bool):
            given.append(flag if value else "--no-" + flag[2:])
        else:
            given += [flag, str(value)]
    return {"given": given, "dropped": dropped}


def apply_tuned(
    cfg: TrainConfig,
    explicit: Collection[str],
    results_dir: Path,
    study: str | None = None,
    any_budget: bool = False,
) -> TrainConfig:
    """``run --tuned``: ``cfg`` with the exported best parameters, except the flags typed.

    ``explicit`` names the TrainConfig fields given on the command line; ``cfg.model_args`` holds
    the ``--model-arg`` ones. Both win over the tuned values. ``tuned_from`` records the study,
    its budget and the export's path relative to the results directory.
    """
    path = find_export(cfg, Path(results_dir), study, any_budget)
    record = read_export(path)
    pair = (record.get("arch", cfg.arch), record.get("fusion", cfg.fusion))
    if pair != (cfg.arch, cfg.fusion) and study is not None:  # a named study may be any pair's
        raise UsageError(
            f"--tuned-study {study} tuned {pair[0]} x {pair[1]}, not {cfg.arch} x {cfg.fusion}: "
            "an export applies to its own combination only"
        )
    if pair != (cfg.arch, cfg.fusion):  # found by its name, of another pair: copied or renamed
        raise DamagedFileError(
            f"{path}: an export of {pair[0]} x {pair[1]} under {cfg.arch} x {cfg.fusion}'s name "
            "(copied or renamed?); tune this combination, or give --tuned-study"
        )
    return apply_record(cfg, record, explicit, os.path.relpath(path, results_dir))


def apply_record(
    cfg: TrainConfig, record: dict[str, Any], explicit: Collection[str] = (), source: str = ""
) -> TrainConfig:
    """``cfg`` with a tuned record's parameters (an export, or ``best_record`` of a study). Values
    the record cannot hold on its own (hand-edited, damaged) are a damaged file or storage, exit
    1; values that clash with the flags typed (``--train-subset`` under its batch size) a usage
    error, exit 2."""
    bare = TrainConfig(arch=cfg.arch, fusion=cfg.fusion)
    try:
        with_record(bare, record, (), source)
    except UsageError as exc:
        raise DamagedFileError(str(exc).removeprefix("--tuned ")) from None
    return with_record(cfg, record, explicit, source)


def with_record(
    cfg: TrainConfig, record: dict[str, Any], explicit: Collection[str], source: str
) -> TrainConfig:
    from architectures import split_overrides

    try:
        values = {
            **cfg.to_dict(),
            **{k: v for k, v in record["train"].items() if k not in explicit},
            # the trial's model: the arguments its study held fixed, then those it tuned
            "model_args": {
                **held_model_args(record["budget"]),
                **record["model_args"],
                **cfg.model_args,
            },
            "tuned_from": {
                "study": record["study"],
                "trial": record["trial"],
                "value": record["value"],
                "budget": record["budget"],
                "file": source,
                # the study's best was its defaults trial: the report names the group the default
                **({"defaults": True} if (record.get("user_attrs") or {}).get("defaults") else {}),
            },
        }
        out = TrainConfig.from_dict(values)
        out.validate()
        split_overrides(out.arch, out.fusion, out.model_args)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--tuned {source}: {exc}") from None
    return out
