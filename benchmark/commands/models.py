"""The models a command will build: each combination's share of ``--model-arg`` and the dry run
that every model of a grid passes before anything is written. Shared by the commands that train
or measure models (``run``, ``tune``, ``compare``, ``bench``, ``datapath``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from itertools import product
from typing import Any

from benchmark.commands.values import is_list_text, parse_value
from benchmark.config import SIZING
from benchmark.errors import UsageError, one_line
from benchmark.progress import console, passing_bar
from benchmark.wording import settings

SHOWN = 8  # models named in one line; the rest are counted


def named(models: list[str]) -> str:
    """``a, b and 3 more``: the first ``SHOWN`` of ``models``, the rest counted."""
    more = f" and {len(models) - SHOWN} more" if len(models) > SHOWN else ""
    return ", ".join(models[:SHOWN]) + more


def model_args_of(
    pairs: Iterable[tuple[str, str]], model_args: dict[str, Any], strict: bool = True
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each combination's share of ``model_args``: in a grid, a model argument is for the
    combinations whose encoder or fusion takes it (a timm ViT's img_size=28 beside gap_cnn).
    One that no combination takes is a typo: a ``UsageError`` naming the valid ones, unless not
    ``strict`` (a tune worker, given one combination of its grid). Values are checked."""
    from architectures import arg_names, split_overrides, taken_overrides
    from architectures.registry import did_you_mean

    pairs = list(pairs)
    try:
        shares = {pair: taken_overrides(*pair, model_args) for pair in pairs}
        taken = {key for share in shares.values() for key in share}
        if strict and (untaken := [key for key in model_args if key not in taken]):
            if len(pairs) == 1:
                split_overrides(*pairs[0], model_args)  # its one line: unknown, and the valid
            valid = sorted({k for pair in pairs for k in arg_names(*pair)})
            raise UsageError(
                f"unknown hyperparameter {untaken[0]!r}{did_you_mean(untaken[0], valid)} for any "
                f"of the {len(pairs)} combinations; valid: {', '.join(valid) or '(none)'}"
            )
        for pair, share in shares.items():
            split_overrides(*pair, share)
    except (ValueError, TypeError) as exc:  # TypeError: a config file's "x" for 1
        raise UsageError(str(exc)) from None
    return shares


def pop_model_arg_sweeps(args: argparse.Namespace) -> dict[str, list[Any]]:
    """The ``--model-arg``s given a comma list (``width=8,16``: ``run`` and ``bench`` sweep
    them), each value read as a single one is; each is left holding its first value, as a swept
    config flag is (``run.pop_sweeps``), so that the checks of one value see plain values."""
    sweeps = {}
    for i, (key, value) in enumerate(args.model_arg or []):
        if is_list_text(value):
            values = [parse_value(part.strip()) for part in value.split(",")]
            if "" in values:
                raise UsageError(
                    f"--model-arg {key}={value}: an empty value; expected a comma list such as "
                    f"{key}=8,16"
                )
            values = list(dict.fromkeys(values))  # width=8,8 is width=8, not a sweep of one
            args.model_arg[i] = (key, values[0])
            if len(values) > 1:
                sweeps[key] = values
    return sweeps


def model_variants(
    shares: dict[tuple[str, str], dict[str, Any]],
    sweeps: dict[str, list[Any]],
    typed: Iterable[str] = (),
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Each combination's model arguments (its share, ``model_args_of``) once per value of each
    swept one it takes, and once where it takes none; every value checked. A ``typed`` argument
    (one given as ``--model-arg``) at the model's default is left out and said: ``width=16`` on
    gap_cnn is its default configuration (the same config, the same report group)."""
    from architectures import default_args, split_overrides

    typed = set(typed)
    variants: dict[tuple[str, str], list[dict[str, Any]]] = {}
    defaulted: dict[str, dict[str, None]] = {}  # what was left out: the combinations, in order
    try:
        for pair, share in shares.items():
            taken = {key: values for key, values in sweeps.items() if key in share}
            defaults = default_args(*pair)
            variants[pair] = []
            for point in product(*taken.values()):
                model_args = {**share, **dict(zip(taken, point, strict=True))}
                split_overrides(*pair, model_args)
                same = {k: v for k, v in model_args.items() if k in typed and v == defaults[k]}
                for key, value in same.items():
                    defaulted.setdefault(f"{key}={value}", {})[" x ".join(pair)] = None
                variants[pair].append({k: v for k, v in model_args.items() if k not in same})
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None
    if defaulted:
        said = "; ".join(f"{arg} ({named(list(by))})" for arg, by in defaulted.items())
        console.print(f"model args at the model's default, left out (its default model): {said}")
    return variants


def grid_variants(
    pairs: Iterable[tuple[str, str]],
    model_args: dict[str, Any],
    sweeps: dict[str, list[Any]],
    typed: Iterable[str],
    tuned: bool,
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The model arguments of a grid's combinations, as ``run`` and ``bench`` expand them: each
    one's share of ``model_args`` (what it does not take said once), then ``model_variants``.
    Under ``--tuned`` a ``typed`` argument pins its value against the tuned one, default or not,
    so none is left out as a default."""
    shares = model_args_of(pairs, model_args)
    say_untaken(shares, model_args, sweeps)
    return model_variants(shares, sweeps, () if tuned else typed)


def say_untaken(
    shares: dict[tuple[str, str], dict[str, Any]],
    model_args: dict[str, Any],
    sweeps: dict[str, list[Any]] | None = None,
) -> None:
    """One line per set of model arguments some combinations of the grid do not take, naming
    them (a swept one with its values, as typed): so a grid does not quietly build a model
    without what was asked."""
    model_args = {**model_args, **{k: ",".join(map(str, v)) for k, v in (sweeps or {}).items()}}
    left: dict[str, list[str]] = {}
    for (arch, fusion), share in shares.items():
        if dropped := {k: v for k, v in model_args.items() if k not in share}:
            left.setdefault(settings(dropped), []).append(f"{arch} x {fusion}")
    for args, pairs in left.items():
        console.print(f"model args {args}: not taken by {named(pairs)}, built without them")


def dry_runs(models: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """``check_model`` for each model (arch, fusion, model arguments; one named again, by seeds
    or sweeps, counts once), all of them before the command refuses: a timm family (``--arch
    'timm:vit_*'``) is refused once, naming every member that cannot run on 28x28 images, not
    one member per try. A bad model argument (``width=0``: no model that cannot run, a value to
    fix) is its own line at once. A bar shows a long check (a ViT's takes up to half a second)
    and goes when done."""
    from architectures import CannotRunError, check_model, model_key

    models = list({model_key(*model): model for model in models}.values())
    failed: list[tuple[str, CannotRunError]] = []  # the model and why
    shown = passing_bar(models, f"checking {len(models)} models") if len(models) > SHOWN else models
    for arch, fusion, model_args in shown:
        try:
            check_model(arch, fusion, model_args)
        except CannotRunError as exc:
            failed.append((f"{arch} x {fusion}", exc))
        except (ValueError, TypeError) as exc:  # TypeError: a config file's "x" for 1
            raise UsageError(str(exc)) from None
    if len(failed) == 1:
        raise UsageError(str(failed[0][1]))
    if failed:
        sizes = {name: exc.sizes for name, exc in failed[1:] if exc.sizes}
        raise UsageError(
            f"{len(failed)} of {len(models)} models cannot run on 1x28x28 images (leave them out "
            f"of --arch): {failed[0][1]}; also {named([name for name, _ in failed[1:]])}"
            + sizing_hints(sizes)
        )


def sizing_hints(sizes: dict[str, dict[str, int]]) -> str:
    """The sizes that run each model of ``sizes`` (its name, the model arguments that run it
    on 28x28 images: a ViT left at 224 pixels), models of equal sizes named together: the
    models named after the first failing one have no line of their own."""
    from architectures import model_arg_flags

    runs_with: dict[str, list[str]] = {}
    for name, args in sizes.items():
        arch = name.split(" x ")[0]
        if arch not in (archs := runs_with.setdefault(model_arg_flags(args), [])):
            archs.append(arch)
    return "".join(
        f"; {named(archs)} {'runs' if len(archs) == 1 else 'run'} on 28x28 with {flags}"
        for flags, archs in runs_with.items()
    )


def check_models(shares: dict[tuple[str, str], dict[str, Any]]) -> None:
    """Each combination's meta-device dry run with its model arguments (``dry_runs``, as ``run``
    gives its grid): a model that cannot take 28x28 images stops ``tune`` or ``compare`` in one
    line before the data loads or a storage is created, not in a traceback from the first
    trial; so does a model argument held fixed that the search would replace."""
    from benchmark.tuning import searched_model_args

    dry_runs((arch, fusion, model_args) for (arch, fusion), model_args in shares.items())
    try:
        check_spaces(shares)
        for (arch, fusion), model_args in shares.items():
            searched_model_args(arch, fusion, model_args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


SPACE_DRAWS = 20  # points of each search space drawn before a study runs it


def scratch_study() -> Any:
    """An in-memory study of a seeded random sampler, made without Optuna's "study created"
    line: for drawing points of a search space before any real study runs it."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)


def check_spaces(pairs: Iterable[tuple[str, str]]) -> None:
    """A ``ValueError`` naming what is wrong with the search spaces of the (arch, fusion)
    ``pairs``, each encoder's and fusion's checked once however many pairs share it (a
    plug-in's, mostly), found before a study runs them rather than as a traceback from a
    trial: a space that raises or returns no dict, or suggests a name that is not one of its
    entry's hyperparameters (the defaults trial needs a default for each) or that the training
    space uses (Optuna keeps one distribution per name), or a value the entry's declared ranges
    refuse. Each space runs on ``SPACE_DRAWS`` points of a seeded random sampler."""
    from architectures import ENCODERS, FUSIONS
    from architectures.registry import did_you_mean
    from benchmark.config import SEARCHED

    trained = set(SEARCHED)  # every name training's space may suggest (aug_* only when augmenting)
    pairs = list(pairs)
    wanted = [(ENCODERS, name) for name, _ in pairs] + [(FUSIONS, name) for _, name in pairs]
    entries = {(registry.kind, name): registry.get(name) for registry, name in wanted}
    for entry in entries.values():
        if entry.search_space is None:
            continue
        # a study of its own: two encoders may both suggest "width", each with its own choices
        study = scratch_study()
        space = f"{entry.name}'s search space ({entry.origin})"
        for _ in range(SPACE_DRAWS):
            trial = study.ask()
            try:
                found = entry.search_space(trial)
            except Exception as exc:  # noqa: BLE001 - whatever a plug-in's space raises
                raise ValueError(f"{space} raised {one_line(exc)}") from None
            if not isinstance(found, dict):
                raise ValueError(f"{space} returned {type(found).__name__}, expected a dict")
            names = set(trial.params) | set(found)
            if clash := sorted(names & trained):
                raise ValueError(f"{space} suggests {clash[0]!r}, a name training tunes: rename it")
            if unknown := sorted(names - set(entry.defaults)):
                known = ", ".join(entry.defaults) or "none"
                raise ValueError(
                    f"{space} suggests {unknown[0]!r}{did_you_mean(unknown[0], entry.defaults)}, "
                    f"not one of {entry.name}'s hyperparameters ({known})"
                )
            for key, value in found.items():
                try:
                    entry.check(key, value)
                except ValueError as exc:
                    raise ValueError(f"{space} suggests {exc}") from None


def check_tuned_subset(train_subset: int | None) -> None:
    """``--train-subset`` of ``tune`` or ``compare`` holds a batch of every size tuning tries
    (said so: neither command has the ``--batch-size`` that ``TrainConfig``'s rule names)."""
    from benchmark.config import BATCH_SIZES

    if train_subset is not None and train_subset < max(BATCH_SIZES):
        raise UsageError(
            f"--train-subset must be >= {max(BATCH_SIZES)} (the largest batch size tuned), "
            f"got {train_subset}"
        )


def check_cap(shares: dict[tuple[str, str], dict[str, Any]], max_params: int) -> None:
    """Each combination's search space can meet ``max_params``: its defaults, or one of the
    random points drawn after them (as many in all as a study may reject in a row), fit under
    it. A cap none can meet stopped ``tune`` after 100 rejected trials written into its study;
    here it is one line before a study exists. The defaults come first and mostly fit: one
    model counted per combination."""
    from benchmark.config import TrainConfig
    from benchmark.tuning import OVER_CAP_IN_A_ROW, count_model_params, default_params, suggest

    for (arch, fusion), held in shares.items():
        study = scratch_study()
        study.enqueue_trial(default_params(arch, fusion))
        sizes = []
        for _ in range(OVER_CAP_IN_A_ROW):
            model_args, _ = suggest(study.ask(), arch, fusion)
            cfg = TrainConfig(arch=arch, fusion=fusion, model_args={**held, **model_args})
            sizes.append(count_model_params(cfg))
            if sizes[-1] <= max_params:
                break
        else:
            raise UsageError(
                f"--max-params {max_params:,}: neither the defaults nor {len(sizes) - 1} random "
                f"points of {arch} x {fusion}'s search space fit under it (the smallest had "
                f"{min(sizes):,} parameters); give a larger cap"
            )


def held_for_every(
    pairs: tuple[tuple[str, str], ...], model_args: dict[str, Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each combination's share of the model arguments the protocol holds: the sizes that fit a
    model to 28 pixels (``SIZING``: a ViT's img_size and patch_size) go to the combinations that
    take them, as in ``run``'s grid; any other argument is held for every combination (the
    report compares them as one configuration), so one that a combination does not take is a
    usage error."""
    from architectures import arg_names

    shares = model_args_of(pairs, {k: v for k, v in model_args.items() if k in SIZING})
    for arch, fusion in pairs:
        valid = arg_names(arch, fusion)
        if untaken := [key for key in model_args if key not in valid and key not in SIZING]:
            raise UsageError(
                f"{arch} x {fusion} takes no {untaken[0]!r} (valid: {', '.join(valid) or 'none'}); "
                "compare holds each --model-arg but a model's sizes (img_size, patch_size) for "
                "every combination: compare those that take it, and tune and run the others apart"
            )
    return {
        pair: {**{k: v for k, v in model_args.items() if k not in SIZING}, **share}
        for pair, share in shares.items()
    }
