"""How long a run or a grid will take, said before it starts: from the training rate of earlier
runs of the same setup in the results directory, else from the CPU probe's figure scaled by
each model's MACs per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.config import MIN_TRAINED, TrainConfig
from benchmark.progress import probed_here

# An evaluated image costs about a third of a trained one: forward only (a backward pass costs
# about two forwards), the encoder once for all ten addends. Used for estimates only.
EVAL_COST = 1 / 3
# The share of the probe model's time per trained image that no MAC count scales (the fusion,
# the loss, the optimizer, moving the batch). The committed fp32 runs of gap_cnn, small_cnn and
# tiny_resnet x concat fit it at 27% on the 2-core Xeon and 7% on a 2-core EPYC: time per
# image = that share + the rest x MACs / the probe model's. Scaled by MACs alone, a model of
# few MACs (an MLP plug-in) was estimated at "<1 s" for an epoch that took a minute.
FIXED_SHARE = 0.15


def estimate(
    work: list[tuple[TrainConfig, Any, tuple[int, int, int]]], results_dir: Path
) -> tuple[float, str] | None:
    """Seconds that ``work`` (config, execution, (train, val, test) images of its data) will
    take, and what the figure rests on: the training images/s (and, compiled, the seconds spent
    compiling) of earlier runs of the same model, device, precision, layout, compile and batch
    size in ``results_dir``, else the CPU probe's figure for the variant scaled by MACs per
    image. None when some run has neither."""
    earlier = earlier_rates(results_dir)
    total, bases = 0.0, set()
    for cfg, ex, (n_train, n_val, n_test) in work:
        found = training_rate(cfg, ex, earlier)
        if found is None:
            return None
        rate, basis, compiling = found
        trained = cfg.steps_per_epoch(n_train) * cfg.batch_size * cfg.epochs
        evaluated = n_val * (cfg.epochs + 1) + n_test  # each epoch's validation, then the last
        total += (trained + EVAL_COST * evaluated) / rate + compiling
        bases.add(basis)
    return total, " and ".join(sorted(bases))


def earlier_rates(results_dir: Path) -> dict[tuple[Any, ...], list[tuple[float, float]]]:
    """(training images/s, seconds spent compiling) of the finished runs in ``results_dir`` that
    trained ``MIN_TRAINED`` images or more, by (arch, fusion, device with its CPU's features,
    precision, memory layout, compiled or not, batch size, model arguments): each changes the
    rate (channels_last trained 1.5x as fast as contiguous on a 2-core EPYC), and a compiled run
    also spends 5-50 s compiling."""
    from benchmark import machines, rundir

    rates: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
    for _, found in rundir.complete_runs(results_dir):
        rate, config = found.get("train_images_per_s"), found.get("config", {})
        seconds = found.get("train_seconds")
        if not isinstance(seconds, (int, float)) or not isinstance(rate, (int, float)):
            continue
        if rate > 0 and rate * seconds >= MIN_TRAINED:
            machine = machines.with_features(
                str(found.get("device")), found.get("cpu_features", "")
            )
            layout = bool(found.get("channels_last", config.get("channels_last")))
            key = rate_key(
                (found["arch"], found["fusion"], machine, rundir.run_precision(found), layout),
                bool(config.get("compile")),
                config.get("batch_size"),
                config.get("model_args"),
            )
            compiling = found.get("compile_seconds")
            compiling = float(compiling) if isinstance(compiling, (int, float)) else 0.0
            rates.setdefault(key, []).append((float(rate), compiling))
    return rates


def rate_key(
    way: tuple[str, str, str, str, bool], compile: bool, batch_size: Any, model_args: Any
) -> tuple[Any, ...]:
    """``earlier_rates``' key, as ``training_rate`` looks it up: ``way`` is (arch, fusion,
    machine, precision, channels_last); model arguments compare equal in any order."""
    return (*way, compile, batch_size, json.dumps(model_args or {}, sort_keys=True))


def training_rate(
    cfg: TrainConfig, ex: Any, earlier: dict[tuple[Any, ...], list[tuple[float, float]]]
) -> tuple[float, str, float] | None:
    """Training images/s expected of ``cfg`` run as ``ex`` says, where it comes from, and the
    seconds it will spend compiling (the median of earlier runs; 0 where none is known)."""
    import statistics

    from benchmark import hardware
    from benchmark.bench import model_cost

    machine = hardware.machine_name(ex.device)
    way = (cfg.arch, cfg.fusion, machine, ex.precision, ex.channels_last)
    key = rate_key(way, ex.compile, cfg.batch_size, cfg.model_args)  # wider models: slower
    if earlier.get(key):
        rates, compiling = zip(*earlier[key], strict=True)
        basis = "earlier runs in this results directory"
        return statistics.median(rates), basis, statistics.median(compiling)
    if ex.device.type != "cpu":
        return None
    record = ex.probe if ex.probe and probed_here(ex.probe) else None  # another's: not here
    record = record or hardware.read_cache(hardware.cache_path()).get(hardware.machine_key())
    if not hardware.valid_record(record):  # never probed here: no figure (not worth a probe)
        return None
    figure = record["images_per_s"].get(hardware.variant_name(ex.precision, ex.channels_last))
    if not figure:
        return None
    macs = model_cost(cfg.arch, cfg.fusion, cfg.model_args)[1]
    default_macs = model_cost(*hardware.PROBE_MODEL, {})[1]
    basis = "the CPU probe's figure scaled by MACs"
    if ex.compile:  # the probe trains eager: no figure of compiling or of compiled speed
        basis += " (eager; compiling not counted)"
    share = FIXED_SHARE + (1 - FIXED_SHARE) * macs / default_macs
    return figure / share, basis, 0.0
