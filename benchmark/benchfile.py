"""The results files of ``bench`` (and ``datapath``'s naming): the CSV columns, where a file goes,
and appending to and reading back the CSV. Torch-free, so the report reads bench rows without
loading the training stack (``benchmark.bench`` measures them)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark import files
from benchmark.errors import DamagedFileError, UsageError
from benchmark.files import slug
from benchmark.wording import settings

if TYPE_CHECKING:
    import pandas as pd
    import torch

# bench --compile-ab, on the compiled row: rounds taken in turn with its eager twin, and the
# per-round ratio of compiled to eager training speed (median, quartiles)
AB = ("ab_rounds", "ab_ratio", "ab_ratio_q1", "ab_ratio_q3")
FIGURES = (
    "params",
    "macs_per_image",
    "infer_images_per_s",
    "latency_ms_b1",
    "train_images_per_s",
    "peak_mem_mb",
    "compile_seconds",  # every compile of the row: inference, batch 1 and training
    "train_compile_seconds",  # the training step's alone: what a compiled run pays
    *AB,
    "timing_spread",  # bench.measure_pair's: upper over lower quartile of the timed calls
)
COLUMNS = (
    "arch",
    "fusion",
    "model_args",  # JSON of the --model-arg overrides; blank: the entries' defaults
    "tuned_from",  # bench --tuned: the study whose best trial's model and training step it is
    "device",
    "device_type",
    "cpu_features",  # hardware.cpu_features: blank for a GPU and in rows written before it
    "precision",
    "batch_size",
    "train_batch_size",
    "channels_last",
    "compile",
    *FIGURES,
    "torch",
    "commit",
    "error",
)
# read back as numbers (a damaged cell becomes NaN, never a string that stops the report)
NUMBERS = ("batch_size", "train_batch_size", *FIGURES)
# Columns added since the first layout, oldest first: a file of an earlier layout lacks a tail of
# them, and appending brings it to COLUMNS, its cells blank where new.
ADDED = (
    ("train_compile_seconds",),
    AB,
    ("cpu_features",),
    ("model_args",),
    ("tuned_from",),
    ("timing_spread",),
)
NOISY = 1.5  # a timing spread above this is said (the CPU probe takes its passes again there)
EARLIER = tuple(
    tuple(c for c in COLUMNS if c not in set().union(*ADDED[i:])) for i in range(len(ADDED))
)


def model_args_cell(model_args: dict[str, Any]) -> str:
    """A row's ``model_args``: the overrides as JSON, blank for the defaults (as rows written
    before the column read)."""
    return json.dumps(model_args, sort_keys=True) if model_args else ""


def model_args_text(row: Any) -> str:
    """A row's model arguments (a CSV cell's JSON, or ``datapath``'s report's object) as
    ``img_size=28, patch_size=7`` (a float to four significant digits); blank for the
    defaults."""
    cell = row.get("model_args")
    shown = cell if isinstance(cell, dict) else {}
    if isinstance(cell, str) and cell.strip():
        shown = files.parse_json(cell)
    return settings(shown, ", ")


def combination_of(row: Any) -> str:
    """``arch x fusion``, then the study a row's configuration was tuned by and the model
    arguments it was measured with: ``timm:vit_tiny_patch16_224 x concat (img_size=28,
    patch_size=7)``, ``gap_cnn x late_sum (tuned by gap_cnn__late_sum__e9__p227165;
    dropout=0.0983, head_dropout=0.005487)``."""
    study = row.get("tuned_from")
    said = [f"tuned by {study}"] if isinstance(study, str) and study else []
    said += [args] if (args := model_args_text(row)) else []
    return f"{row['arch']} x {row['fusion']}" + (f" ({'; '.join(said)})" if said else "")


# A measured figure's header and format in both tables of bench rows (bench's own and the
# report's): one name for a figure everywhere.
HEADINGS = {
    "params": ("params", ",.0f"),
    "infer_images_per_s": ("infer img/s", ",.0f"),
    "latency_ms_b1": ("latency b1 ms", ".3f"),
    "train_images_per_s": ("train img/s", ",.0f"),
    "compile_seconds": ("compile s", ".1f"),
    "train_compile_seconds": ("train compile s", ".1f"),
    "peak_mem_mb": ("peak mem MB", ",.1f"),
}


def ab_text(row: Any) -> str:
    """``1.17x (1.10-1.25)``: a compiled row's training speed over its eager twin's, the median
    and quartiles of its rounds; ``-`` for a row measured otherwise."""
    ratio, q1, q3 = (float(row.get(c, math.nan)) for c in AB[1:])
    if math.isnan(ratio):  # not an A/B row
        return "-"
    return f"{ratio:.2f}x ({q1:.2f}-{q3:.2f})"


def results_path(
    results_dir: str | Path, kind: str, device: torch.device, precision: str, suffix: str
) -> Path:
    """``<results>/<kind>/<device>-<precision><suffix>``: the file name says the machine and
    precision, so two machines sharing a results folder append to files of their own.

    A CPU is ``cpu-`` and its model (``cpu-intel-xeon-platinum-8480-bf16.csv``; the row's
    ``device`` field adds the thread count); a GPU is its name (``nvidia-h100-80gb-hbm3-bf16.csv``).
    """
    from benchmark import hardware  # torch: only where a device is at hand anyway

    if device.type == "cpu":
        name = "-".join(filter(None, ("cpu", cpu_slug(hardware.cpu_model()))))
    else:
        name = hardware.device_name(device)
    return Path(results_dir) / kind / (slug(f"{name}-{precision}").lower() + suffix)


def cpu_slug(model: str) -> str:
    """A CPU model name as a file name's part, without trademark marks, ``CPU`` and the clock,
    which add nothing to the name: ``Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz`` is
    ``intel-xeon-platinum-8480``."""
    model = re.sub(r"\((R|TM)\)|\bCPU\b|@.*$", " ", model, flags=re.IGNORECASE)
    return "-".join(re.findall(r"[a-z0-9]+", model.lower()))


def read_table(path: Path) -> list[list[str]]:
    """A bench CSV's rows, header first, each of the header's width: a file that is not text, is
    empty, ends in a row cut off, holds a row of another width, the header again or a model_args
    cell that is not a JSON object is a ``DamagedFileError`` naming it (appended to, or read by
    pandas, such a file glues or shifts cells without a word, or stops the report)."""
    try:
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except UnicodeDecodeError:
        raise DamagedFileError(f"{path}: not a bench CSV (not UTF-8 text)") from None
    except csv.Error as exc:
        raise DamagedFileError(f"{path}: not a bench CSV ({exc})") from None
    if not rows:
        raise DamagedFileError(f"{path}: empty, not a bench CSV")
    if not text.endswith("\n"):
        raise DamagedFileError(f"{path}: its last row is cut off (no line end)")
    args = rows[0].index("model_args") if "model_args" in rows[0] else None
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise DamagedFileError(
                f"{path}: row {line} has {len(row)} cells where the header has {len(rows[0])}"
            )
        if row == rows[0]:  # two files joined: every number of the row reads as missing
            raise DamagedFileError(f"{path}: row {line} repeats the header")
        if args is not None and row[args].strip() and not is_object(row[args]):
            raise DamagedFileError(
                f"{path}: row {line}'s model_args is {row[args]!r}, not a JSON object"
            )
    return rows


def is_object(text: str) -> bool:
    try:
        return isinstance(files.parse_json(text), dict)
    except ValueError:
        return False


def check_header(path: Path) -> None:
    """An existing results file must be whole and have our columns (or an earlier layout of
    them, which appending upgrades), or appended rows would be misread. Checked before ``bench``
    measures anything."""
    if path.exists() and tuple(read_table(path)[0]) not in (COLUMNS, *EARLIER):
        raise UsageError(
            f"{path} has other columns than this version writes; move it away or pass "
            f"another --results-dir"
        )


def blank_if_nan(value: Any) -> Any:
    """A CSV cell: blank for a figure not measured (csv writes a float NaN as ``nan``)."""
    return "" if isinstance(value, float) and math.isnan(value) else value


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Read, append, write atomically: an interrupt leaves the old file or the new, never half;
    under a lock beside it, so that two ``bench`` processes appending to one file at once keep
    both rows (each read the file, and the second rename dropped the first's row). A file of
    an earlier layout is rewritten in this one first, its rows' new cells blank. A figure not
    measured (NaN: an eager row's compile seconds, a CPU's peak memory) is a blank cell too, not
    the text ``nan``, for whatever else reads the CSV."""
    with files.locked(path.with_name(path.name + ".lock")):
        existing = path.read_text() if path.exists() else ""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        earlier = csv.DictReader(io.StringIO(existing))
        if tuple(earlier.fieldnames or ()) != COLUMNS:  # a new file, or one of an earlier layout
            writer.writeheader()
            writer.writerows(earlier)
            existing = ""
        writer.writerow({k: blank_if_nan(v) for k, v in row.items()})
        files.write_text(path, existing + buf.getvalue())


def read_rows(paths: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """Bench CSV rows with every column (missing ones empty) and the file's name in ``file``,
    and notes on files that could not be read (a bad file never stops a report)."""
    import numpy as np
    import pandas as pd  # here: ``bench``, which only appends, does not need it

    frames, notes = [], []
    for path in paths:
        try:
            unknown = set(read_table(path)[0]).difference(COLUMNS, *EARLIER)
            if unknown:  # some of ours may be missing (NaN), none may be foreign: shifted cells
                named = ", ".join(sorted(unknown)[:3])
                raise DamagedFileError(f"{path}: not a bench CSV (columns such as {named})")
            frames.append(pd.read_csv(path).assign(file=Path(path).name))
        except (OSError, ValueError, DamagedFileError) as exc:  # pandas' ParserError: a ValueError
            notes.append(f"bench file skipped: {str(exc).splitlines()[0]}")
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    for column in COLUMNS:
        if column not in rows:
            rows[column] = pd.Series(np.nan, index=rows.index, dtype=object)
    for column in NUMBERS:
        rows[column] = pd.to_numeric(rows[column], errors="coerce")
    return rows, notes
