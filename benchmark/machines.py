"""How a timing names its machine, the one way for metrics.json's ``device``, bench rows and
datapath reports: the machine, its CPU's features where recorded (VMs name different CPUs alike)
and, where several processes trained side by side on it, how many shared it."""

from __future__ import annotations

SHARED_BY = ", shared by "  # metrics.json's device, when several processes shared the machine
WITH_FEATURES = " with "  # a timing device and its CPU's features (``with_features``)


def timing_device(device: str, sharing: int) -> str:
    """The ``device`` a run's timings name: the machine's, and, when ``sharing`` processes
    trained side by side on it, how many (their timings are shared ones)."""
    return f"{device}{SHARED_BY}{sharing} processes" if sharing > 1 else device


def with_features(device: str, features: str) -> str:
    """A device as runs' timings, bench rows and datapath reports name it, with its CPU's
    features where they were recorded (they tell apart CPUs that VMs name alike): ``cpu: AMD
    EPYC (2 threads) with avx2``."""
    if not features:
        return device
    machine, shared, rest = device.partition(SHARED_BY)
    return f"{machine}{WITH_FEATURES}{features}{shared}{rest}"


def without_features(device: str) -> str:
    """A timing device as a run that did not record its CPU's features names it."""
    machine, shared, rest = device.partition(SHARED_BY)
    return machine.split(WITH_FEATURES)[0] + shared + rest


def features_of(device: str) -> str:
    """The CPU features a timing device names ("" where its runs did not record them)."""
    return device.partition(SHARED_BY)[0].partition(WITH_FEATURES)[2]


def machine_of(device: str) -> str:
    """The machine a timing device names as bench rows name it: without how many processes
    shared it or its CPU's features."""
    return without_features(device).split(SHARED_BY)[0]
